package platformtest_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"example.com/deliverykit/reference-service/internal/platformtest"
)

func TestParseImages(t *testing.T) {
	t.Parallel()
	const conf = `# a comment
   # an indented comment

postgres   docker.io/library/postgres:15-bookworm   kit-local/postgres:15-bookworm
	redis	docker.io/library/redis:7.0-bookworm	kit-local/redis:7.0-bookworm
service    -                                        kit-local/orders-service:dev
`
	got, err := platformtest.ParseImages(strings.NewReader(conf), "images.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := platformtest.ImageTable{
		Path:  "images.conf",
		Names: []string{"postgres", "redis", "service"},
		Images: map[string]platformtest.ImageEntry{
			"postgres": {Name: "postgres", Official: "docker.io/library/postgres:15-bookworm", Local: "kit-local/postgres:15-bookworm"},
			"redis":    {Name: "redis", Official: "docker.io/library/redis:7.0-bookworm", Local: "kit-local/redis:7.0-bookworm"},
			"service":  {Name: "service", Official: "", Local: "kit-local/orders-service:dev"},
		},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseImages:\n got %+v\nwant %+v", got, want)
	}
}

func TestParseImagesRejectsMalformedLines(t *testing.T) {
	t.Parallel()
	const good = "postgres docker.io/library/postgres:15-bookworm kit-local/postgres:15-bookworm\n"
	for name, tc := range map[string]struct{ conf, want string }{
		"two fields":       {good + "# comment\nredis docker.io/library/redis:7.0-bookworm\n", "conf:3: want 3 fields"},
		"four fields":      {good + "redis a b c\n", "conf:2: want 3 fields (name, official image or -, local stand-in tag), found 4 in \"redis a b c\""},
		"trailing comment": {"redis a b # why\n", "conf:1: want 3 fields"},
		"duplicate name":   {good + good, "conf:2: postgres is named twice"},
		"name with hyphen": {"my-db a b\n", `conf:1: name "my-db" must be`},
		"upper-case name":  {"Redis a b\n", `conf:1: name "Redis" must be`},
		"no local tag":     {"redis a -\n", "conf:1: redis has no local stand-in tag"},
		"only comments":    {"# nothing\n\n", "conf: names no images"},
		"empty":            {"", "conf: names no images"},
		"line over 64 KiB": {good + strings.Repeat("x", 70_000) + "\n", "conf:2: bufio.Scanner: token too long"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := platformtest.ParseImages(strings.NewReader(tc.conf), "conf")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Errorf("got error %v, want one starting with %q", err, tc.want)
			}
		})
	}
}

func TestFindRepoRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	nested := filepath.Join(root, "reference-service", "internal", "x")
	if err := os.MkdirAll(nested, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := platformtest.FindRepoRoot(nested); err == nil ||
		!strings.Contains(err.Error(), "platform/images.conf is in neither "+nested) {
		t.Errorf("without platform/images.conf: got %v, want an error naming the file and where it looked", err)
	}
	if err := os.MkdirAll(filepath.Join(root, "platform"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, platformtest.ImagesConf), []byte("x a b\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{root, nested} {
		if got, err := platformtest.FindRepoRoot(dir); err != nil || got != root {
			t.Errorf("FindRepoRoot(%s) = %q, %v; want %q", dir, got, err, root)
		}
	}
}

// TestRepositoryImagesConf reads the repository's own table: it parses, and names an official
// image for each dependency the tests start.
func TestRepositoryImagesConf(t *testing.T) {
	t.Parallel()
	table, err := platformtest.ReadImages()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"postgres", "redis", "nats", "toxiproxy"} {
		if e, ok := table.Images[name]; !ok || e.Official == "" || e.Local == "" {
			t.Errorf("%s: %s has %+v, want an official image and a local tag", table.Path, name, e)
		}
	}
}

// TestImageOverride: KIT_IMAGE_<NAME> wins whenever it is set, even for a name the table does not
// know; empty, it counts as unset.
func TestImageOverride(t *testing.T) {
	t.Setenv("KIT_IMAGE_NOT_IN_THE_TABLE", "example/x:1")
	if got := platformtest.Image(t, "not_in_the_table"); got != "example/x:1" {
		t.Errorf("Image with KIT_IMAGE_NOT_IN_THE_TABLE set = %q", got)
	}
	t.Setenv("KIT_IMAGE_REDIS", "")
	table, err := platformtest.ReadImages()
	if err != nil {
		t.Fatal(err)
	}
	if got, want := platformtest.Image(t, "redis"), table.Images["redis"].Official; got != want {
		t.Errorf("Image with KIT_IMAGE_REDIS empty = %q, want the official %q", got, want)
	}
}
