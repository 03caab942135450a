package platformtest_test

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"

	"example.com/deliverykit/reference-service/internal/platformtest"
)

// dialLine connects to addr, optionally sends a line, and returns the first line the server says.
func dialLine(t *testing.T, addr, send string) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer func() { _ = conn.Close() }()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	if send != "" {
		if _, err := conn.Write([]byte(send)); err != nil {
			t.Fatalf("write to %s: %v", addr, err)
		}
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read from %s: %v", addr, err)
	}
	return strings.TrimSpace(line)
}

func TestRedisAnswers(t *testing.T) {
	t.Parallel()
	r := platformtest.StartRedis(t)
	if got := dialLine(t, r.Addr, "PING\r\n"); got != "+PONG" {
		t.Fatalf("redis answered PING with %q, want +PONG", got)
	}
}

func TestNATSHasJetStream(t *testing.T) {
	t.Parallel()
	n := platformtest.StartNATS(t)
	info := dialLine(t, strings.TrimPrefix(n.URL, "nats://"), "")
	if !strings.HasPrefix(info, "INFO ") || !strings.Contains(info, `"jetstream":true`) {
		t.Fatalf("nats-server INFO does not announce JetStream: %s", info)
	}
}
