# shellcheck shell=bash
# The benchmarks' fixed target: nginx on loopback, pinned to one core, answering every request
# with one fixed JSON body. Sourced by bench.sh and conformance.sh, which set WORK (a scratch
# directory they remove), PORT, URL, TARGET_CPU and define `log`.
NGINX_PID=""

# nginx_start BODY: writes the configuration, starts nginx and waits until it answers.
nginx_start() {
    local body=$1
    mkdir -p "$WORK/nginx/logs"
    cat >"$WORK/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    keepalive_timeout 60s;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:${PORT} reuseport backlog=4096;
        location / { default_type application/json; return 200 '${body}'; }
    }
}
CONF
    taskset -c "$TARGET_CPU" /usr/sbin/nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf"
    for _ in $(seq 50); do [[ -s "$WORK/nginx/nginx.pid" ]] && break; sleep 0.1; done
    NGINX_PID=$(cat "$WORK/nginx/nginx.pid")
    for _ in $(seq 50); do curl -fsS "$URL/" >/dev/null 2>&1 && return 0; sleep 0.1; done
    log "nginx did not answer on $URL"
    exit 1
}

# nginx_stop: resumes stopped workers (the stall test) and stops nginx, waiting at most 5 s.
nginx_stop() {
    if [[ -n "$NGINX_PID" ]] && kill -0 "$NGINX_PID" 2>/dev/null; then
        pkill -CONT -P "$NGINX_PID" 2>/dev/null || true
        kill -QUIT "$NGINX_PID" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$NGINX_PID" 2>/dev/null || break; sleep 0.1; done
    fi
}
