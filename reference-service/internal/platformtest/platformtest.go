// Package platformtest starts the kit's real dependencies (PostgreSQL, Redis, NATS with JetStream,
// Toxiproxy) as containers for integration tests, with the images and labels the platform
// prescribes.
//
// Images come from KIT_IMAGE_<NAME> (exported by `make` from .kit/images.env, which
// platform/images.sh writes) and default to the official images that platform/images.conf names.
// Every container carries Labels(), so `make test` can sweep what an interrupted run left behind.
// Ryuk, testcontainers' reaper, cannot be pulled where no registry is reachable; cleanup is
// t.Cleanup plus that sweep.
//
// Importing the package changes nothing; a test package that starts containers runs its tests
// through Run, which prepares testcontainers' environment first:
//
//	func TestMain(m *testing.M) { os.Exit(platformtest.Run(m)) }
package platformtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tclog "github.com/testcontainers/testcontainers-go/log"
	"github.com/testcontainers/testcontainers-go/modules/nats"
	"github.com/testcontainers/testcontainers-go/modules/postgres"
	"github.com/testcontainers/testcontainers-go/modules/redis"
	"github.com/testcontainers/testcontainers-go/network"
	"github.com/testcontainers/testcontainers-go/wait"
)

// ManagedLabel marks every container the kit starts; platform/sweep.sh removes containers that
// carry it (platform/lib.sh's KIT_LABEL_KEY is the same name).
const ManagedLabel = "io.deliverykit.managed"

// RunLabel carries RunID, so one test process's containers can be told apart.
const RunLabel = "io.deliverykit.run"

// StartTimeout bounds how long any one container may take to become ready.
const StartTimeout = 90 * time.Second

// Image returns the image to use for a dependency: KIT_IMAGE_<NAME> when set, otherwise the
// official image platform/images.conf names for it. The file is read only when no override is
// set; a file that is missing or malformed, or names no official image for name, fails tb.
func Image(tb testing.TB, name string) string {
	tb.Helper()
	if v := os.Getenv(imageEnv(name)); v != "" {
		return v
	}
	return OfficialImage(tb, name)
}

// OfficialImage is the official image platform/images.conf names for a dependency.
func OfficialImage(tb testing.TB, name string) string {
	tb.Helper()
	conf, err := loadImages()
	if err != nil {
		tb.Fatalf("platformtest: %v", err)
	}
	e, ok := conf.Images[name]
	switch {
	case !ok:
		tb.Fatalf("platformtest: %s names no image %q (set %s to choose one)", conf.Path, name, imageEnv(name))
	case e.Official == "":
		tb.Fatalf("platformtest: %s names no official image for %q (set %s to choose one)", conf.Path, name, imageEnv(name))
	}
	return e.Official
}

func imageEnv(name string) string { return "KIT_IMAGE_" + strings.ToUpper(name) }

// envReady is set once Run has prepared the environment; starting a container without it is a
// wiring mistake in the test package, reported as such instead of as a connection failure.
var envReady atomic.Bool

// Run prepares the process environment for testcontainers, then runs the package's tests and
// returns m.Run's exit code. Every test package that starts containers calls it from TestMain.
func Run(m *testing.M) int {
	if err := setEnv(); err != nil {
		fmt.Fprintf(os.Stderr, "platformtest: %v\n", err)
		return 2
	}
	envReady.Store(true)
	return m.Run()
}

// setEnv sets what testcontainers reads from the environment, where the caller has not set it.
func setEnv() error {
	// This machine carries /.dockerenv, so testcontainers would take itself to run inside a
	// container and dial the default gateway to reach published ports. The engine is local and
	// publishes on every interface: pin the host to loopback, where test traffic belongs.
	if os.Getenv("TESTCONTAINERS_HOST_OVERRIDE") == "" && !strings.HasPrefix(os.Getenv("DOCKER_HOST"), "tcp://") {
		if err := os.Setenv("TESTCONTAINERS_HOST_OVERRIDE", "127.0.0.1"); err != nil {
			return err
		}
	}
	// Ryuk, the reaper, is an image that cannot be pulled here; cleanup is t.Cleanup plus the
	// label sweep.
	if os.Getenv("TESTCONTAINERS_RYUK_DISABLED") == "" {
		if err := os.Setenv("TESTCONTAINERS_RYUK_DISABLED", "true"); err != nil {
			return err
		}
	}
	return nil
}

var (
	runIDOnce sync.Once
	runID     string
)

// RunID identifies this test process's containers: KIT_RUN_ID when set, random otherwise.
func RunID() string {
	runIDOnce.Do(func() {
		runID = os.Getenv("KIT_RUN_ID")
		if runID == "" {
			b := make([]byte, 6)
			_, _ = rand.Read(b)
			runID = hex.EncodeToString(b)
		}
	})
	return runID
}

// Labels are the labels every container started by the kit carries.
func Labels() map[string]string {
	return map[string]string{ManagedLabel: "true", RunLabel: RunID()}
}

// common are the options every container gets: the kit's labels, and testcontainers' chatter routed
// to the test log (shown with -v or on failure) instead of stdout.
func common(tb testing.TB, on []*On) []testcontainers.ContainerCustomizer {
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithLabels(Labels()),
		testcontainers.WithLogger(tclog.TestLogger(tb)),
	}
	for _, o := range on {
		opts = append(opts, o.opts()...)
	}
	return opts
}

func startCtx(tb testing.TB) (context.Context, context.CancelFunc) {
	tb.Helper()
	if !envReady.Load() {
		tb.Fatal("platformtest: this test package starts containers but its TestMain does not run " +
			"its tests through platformtest.Run: add func TestMain(m *testing.M) { os.Exit(platformtest.Run(m)) }")
	}
	return context.WithTimeout(context.Background(), StartTimeout)
}

// fatalStart reports a failed start with its cause, and names the likely fix when no engine
// answers, instead of leaving the reader with a Docker client stack trace.
func fatalStart(tb testing.TB, what string, err error) {
	tb.Helper()
	hint := ""
	if strings.Contains(err.Error(), "Cannot connect to the Docker daemon") ||
		strings.Contains(err.Error(), "rootless Docker not found") {
		hint = " (no Docker engine answers: run `make test`, which starts one, or platform/engine.sh)"
	}
	tb.Fatalf("platformtest: starting %s (%s): %v%s", what, Image(tb, what), err, hint)
}

// Network creates a Docker network removed when the test ends; containers on it reach each other
// by their aliases.
func Network(tb testing.TB) *testcontainers.DockerNetwork {
	tb.Helper()
	ctx, cancel := startCtx(tb)
	defer cancel()
	nw, err := network.New(ctx, network.WithLabels(Labels()))
	if err != nil {
		tb.Fatalf("platformtest: creating a Docker network: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := nw.Remove(ctx); err != nil {
			tb.Logf("platformtest: removing network %s: %v", nw.Name, err)
		}
	})
	return nw
}

// On attaches a container to nw under alias.
type On struct {
	Network *testcontainers.DockerNetwork
	Alias   string
}

func (o *On) opts() []testcontainers.ContainerCustomizer {
	if o == nil || o.Network == nil {
		return nil
	}
	return []testcontainers.ContainerCustomizer{network.WithNetwork([]string{o.Alias}, o.Network)}
}

// Postgres is a running PostgreSQL container.
type Postgres struct {
	Container *postgres.PostgresContainer
	// DSN reaches the database from the test process (user, password and database "kit").
	DSN string
}

// StartPostgres starts PostgreSQL (user, password and database "kit") and removes it when the
// test ends, also when it fails. on may be nil.
func StartPostgres(tb testing.TB, on ...*On) *Postgres {
	tb.Helper()
	ctx, cancel := startCtx(tb)
	defer cancel()
	opts := []testcontainers.ContainerCustomizer{
		postgres.WithDatabase("kit"),
		postgres.WithUsername("kit"),
		postgres.WithPassword("kit"),
		postgres.BasicWaitStrategies(),
	}
	opts = append(opts, common(tb, on)...)
	c, err := postgres.Run(ctx, Image(tb, "postgres"), opts...)
	testcontainers.CleanupContainer(tb, c)
	if err != nil {
		fatalStart(tb, "postgres", err)
	}
	dsn, err := c.ConnectionString(ctx, "sslmode=disable")
	if err != nil {
		tb.Fatalf("platformtest: postgres connection string: %v", err)
	}
	return &Postgres{Container: c, DSN: dsn}
}

// Redis is a running Redis container.
type Redis struct {
	Container *redis.RedisContainer
	// Addr is host:port as go-redis expects it.
	Addr string
}

// StartRedis starts Redis and removes it when the test ends.
func StartRedis(tb testing.TB, on ...*On) *Redis {
	tb.Helper()
	ctx, cancel := startCtx(tb)
	defer cancel()
	opts := common(tb, on)
	c, err := redis.Run(ctx, Image(tb, "redis"), opts...)
	testcontainers.CleanupContainer(tb, c)
	if err != nil {
		fatalStart(tb, "redis", err)
	}
	ep, err := c.Endpoint(ctx, "")
	if err != nil {
		tb.Fatalf("platformtest: redis endpoint: %v", err)
	}
	return &Redis{Container: c, Addr: ep}
}

// NATS is a running nats-server with JetStream.
type NATS struct {
	Container *nats.NATSContainer
	// URL is the client URL, nats://host:port.
	URL string
}

// StartNATS starts nats-server with JetStream and removes it when the test ends.
func StartNATS(tb testing.TB, on ...*On) *NATS {
	tb.Helper()
	ctx, cancel := startCtx(tb)
	defer cancel()
	opts := common(tb, on)
	c, err := nats.Run(ctx, Image(tb, "nats"), opts...)
	testcontainers.CleanupContainer(tb, c)
	if err != nil {
		fatalStart(tb, "nats", err)
	}
	url, err := c.ConnectionString(ctx)
	if err != nil {
		tb.Fatalf("platformtest: nats connection string: %v", err)
	}
	return &NATS{Container: c, URL: url}
}

// ToxiproxyFirstPort is the first proxy listen port, as in testcontainers' other Toxiproxy modules.
const ToxiproxyFirstPort = 8666

// Toxiproxy is a running Toxiproxy server.
type Toxiproxy struct {
	Container testcontainers.Container
	// API is the control API's base URL, http://host:port.
	API   string
	ports int
}

// StartToxiproxy starts Toxiproxy with proxyPorts listen ports (8666, 8667, ...) published
// besides the API port 8474; Toxiproxy cannot publish ports after it starts.
func StartToxiproxy(tb testing.TB, proxyPorts int, on ...*On) *Toxiproxy {
	tb.Helper()
	ctx, cancel := startCtx(tb)
	defer cancel()
	exposed := []string{"8474/tcp"}
	for i := range proxyPorts {
		exposed = append(exposed, fmt.Sprintf("%d/tcp", ToxiproxyFirstPort+i))
	}
	opts := []testcontainers.ContainerCustomizer{
		testcontainers.WithExposedPorts(exposed...),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/version").WithPort("8474/tcp").
			WithStartupTimeout(StartTimeout)),
	}
	opts = append(opts, common(tb, on)...)
	c, err := testcontainers.Run(ctx, Image(tb, "toxiproxy"), opts...)
	testcontainers.CleanupContainer(tb, c)
	if err != nil {
		fatalStart(tb, "toxiproxy", err)
	}
	api, err := c.PortEndpoint(ctx, "8474/tcp", "http")
	if err != nil {
		tb.Fatalf("platformtest: toxiproxy API endpoint: %v", err)
	}
	return &Toxiproxy{Container: c, API: api, ports: proxyPorts}
}

// ProxyListen is the listen address to give the i-th proxy (0-based) inside the container.
func (tp *Toxiproxy) ProxyListen(i int) string {
	return fmt.Sprintf("0.0.0.0:%d", ToxiproxyFirstPort+i)
}

// ProxyAddr is host:port where the test process reaches the i-th proxy.
func (tp *Toxiproxy) ProxyAddr(tb testing.TB, i int) string {
	tb.Helper()
	if i < 0 || i >= tp.ports {
		tb.Fatalf("platformtest: proxy port %d not published (started with %d)", i, tp.ports)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ep, err := tp.Container.PortEndpoint(ctx, fmt.Sprintf("%d/tcp", ToxiproxyFirstPort+i), "")
	if err != nil {
		tb.Fatalf("platformtest: toxiproxy proxy endpoint %d: %v", i, err)
	}
	return ep
}
