package platformtest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
)

// ImagesConf is where the kit's image table lives, relative to the repository root. It is the
// one place images are named: platform/images.sh builds from it, and tests read their defaults
// from it.
const ImagesConf = "platform/images.conf"

// ImageEntry is one line of platform/images.conf.
type ImageEntry struct {
	Name string
	// Official is the official image, or "" where the file says "-" (the kit's own programs,
	// which have no official image).
	Official string
	// Local is the tag of the local stand-in that platform/images.sh builds.
	Local string
}

// ImageTable is a parsed platform/images.conf.
type ImageTable struct {
	// Path is the file the table was read from, as errors name it.
	Path   string
	Images map[string]ImageEntry
	// Names lists the entries in the file's order.
	Names []string
}

// imageName is what a name must look like: it becomes KIT_IMAGE_<NAME>, an environment variable.
var imageName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// ParseImages reads the format of platform/images.conf: one image a line, three fields separated
// by white space (name, official image or "-", local stand-in tag); blank lines and lines whose
// first field starts with "#" are skipped. path names the file in errors, which say
// "path:line: what is wrong".
func ParseImages(r io.Reader, path string) (ImageTable, error) {
	t := ImageTable{Path: path, Images: map[string]ImageEntry{}}
	sc := bufio.NewScanner(r)
	line := 0
	for sc.Scan() {
		line++
		f := strings.Fields(sc.Text())
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s", path, line, fmt.Sprintf(format, args...))
		}
		if len(f) != 3 {
			return ImageTable{}, bad("want 3 fields (name, official image or -, local stand-in tag), found %d in %q",
				len(f), strings.TrimSpace(sc.Text()))
		}
		name, official, local := f[0], f[1], f[2]
		if !imageName.MatchString(name) {
			return ImageTable{}, bad("name %q must be lower-case letters, digits and _, starting with a letter (it becomes KIT_IMAGE_%s)",
				name, strings.ToUpper(name))
		}
		if _, dup := t.Images[name]; dup {
			return ImageTable{}, bad("%s is named twice", name)
		}
		if local == "-" {
			return ImageTable{}, bad("%s has no local stand-in tag (\"-\" is only for the official image)", name)
		}
		if official == "-" {
			official = ""
		}
		t.Images[name] = ImageEntry{Name: name, Official: official, Local: local}
		t.Names = append(t.Names, name)
	}
	if err := sc.Err(); err != nil {
		return ImageTable{}, fmt.Errorf("%s:%d: %w", path, line+1, err)
	}
	if len(t.Names) == 0 {
		return ImageTable{}, fmt.Errorf("%s: names no images", path)
	}
	return t, nil
}

// FindRepoRoot walks up from dir to the first directory that holds platform/images.conf.
func FindRepoRoot(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; {
		_, err := os.Stat(filepath.Join(d, ImagesConf))
		if err == nil {
			return d, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("%s is in neither %s nor any directory above it; "+
				"the tests read their image defaults from the repository", ImagesConf, dir)
		}
		d = parent
	}
}

// ReadImages parses the image table of the repository that holds the working directory.
func ReadImages() (ImageTable, error) {
	wd, err := os.Getwd()
	if err != nil {
		return ImageTable{}, err
	}
	root, err := FindRepoRoot(wd)
	if err != nil {
		return ImageTable{}, err
	}
	path := filepath.Join(root, ImagesConf)
	f, err := os.Open(path) //nolint:gosec // the repository's own image table, found above the working directory.
	if err != nil {
		return ImageTable{}, err
	}
	defer func() { _ = f.Close() }()
	return ParseImages(f, path)
}

// loadImages reads the image table once per test process.
var loadImages = sync.OnceValues(ReadImages)
