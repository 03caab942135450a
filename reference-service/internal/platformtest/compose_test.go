package platformtest_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"

	"example.com/deliverykit/reference-service/internal/platformtest"
)

// TestComposeFileIsValid loads the top-level docker-compose.yml with compose-go, the parser
// docker compose itself uses, so a schema error, a bad interpolation or a dangling depends_on fails
// here rather than on a user's machine. It also holds the file to the platform's rules: images
// default to the official names and can be swapped for the local stand-ins, and every container
// carries the label the sweep removes by.
func TestComposeFileIsValid(t *testing.T) {
	t.Parallel()
	path := composeFile(t)
	load := func(env []string) map[string]string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		opts, err := cli.NewProjectOptions([]string{path},
			cli.WithWorkingDirectory(filepath.Dir(path)), cli.WithEnv(env), cli.WithName("deliverykit"))
		if err != nil {
			t.Fatalf("compose options: %v", err)
		}
		project, err := opts.LoadProject(ctx)
		if err != nil {
			t.Fatalf("docker-compose.yml does not load: %v", err)
		}
		images := map[string]string{}
		for name, svc := range project.Services {
			images[name] = svc.Image
			if svc.Labels[platformtest.ManagedLabel] != "true" {
				t.Errorf("service %s lacks the label %s=true", name, platformtest.ManagedLabel)
			}
		}
		return images
	}

	official := load(nil)
	for _, dep := range []string{"postgres", "redis", "nats", "toxiproxy"} {
		want := platformtest.OfficialImage(t, dep)
		if official[dep] != want {
			t.Errorf("service %s: image %q with no KIT_IMAGE_* set, want the official %q", dep, official[dep], want)
		}
	}

	local := load([]string{"KIT_IMAGE_POSTGRES=kit-local/postgres:x"})
	if local["postgres"] != "kit-local/postgres:x" {
		t.Errorf("KIT_IMAGE_POSTGRES does not select the postgres image: got %q", local["postgres"])
	}
}

// composeFile is the repository's docker-compose.yml.
func composeFile(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := platformtest.FindRepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "docker-compose.yml")
}

// TestComposeObservabilityProfile holds the `observability` profile to what it promises: a
// Prometheus loaded with the generated rules and a Grafana provisioned with the dashboard, each
// file it mounts present in the repository, and kept out of a plain `up`.
func TestComposeObservabilityProfile(t *testing.T) {
	t.Parallel()
	path := composeFile(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	opts, err := cli.NewProjectOptions([]string{path}, cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithName("deliverykit"), cli.WithProfiles([]string{"observability"}))
	if err != nil {
		t.Fatalf("compose options: %v", err)
	}
	project, err := opts.LoadProject(ctx)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load with the observability profile: %v", err)
	}
	mounts := map[string][]string{
		"prometheus": {"/etc/prometheus/prometheus.yml", "/etc/prometheus/rules.yml"},
		"grafana":    {"/etc/grafana/provisioning", "/var/lib/grafana/dashboards"},
	}
	for name, targets := range mounts {
		svc, ok := project.Services[name]
		if !ok {
			t.Fatalf("the observability profile has no %s service", name)
		}
		if svc.Labels[platformtest.ManagedLabel] != "true" {
			t.Errorf("service %s lacks the label %s=true", name, platformtest.ManagedLabel)
		}
		for _, target := range targets {
			found := false
			for _, v := range svc.Volumes {
				if v.Target != target {
					continue
				}
				found = true
				if _, err := os.Stat(v.Source); err != nil {
					t.Errorf("service %s mounts %s from %s, which does not exist: %v", name, target, v.Source, err)
				}
			}
			if !found {
				t.Errorf("service %s does not mount %s", name, target)
			}
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "dashboards/grafana/orders-service.json")); err != nil {
		t.Errorf("the dashboard Grafana is provisioned with is missing: %v", err)
	}

	// A plain `up` (no profile) starts neither.
	plain, err := cli.NewProjectOptions([]string{path}, cli.WithWorkingDirectory(filepath.Dir(path)), cli.WithName("deliverykit"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := plain.LoadProject(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"prometheus", "grafana"} {
		if _, ok := p.Services[name]; ok {
			t.Errorf("%s starts without the observability profile", name)
		}
	}
}
