package platformtest_test

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"example.com/deliverykit/reference-service/internal/platformtest"
)

// TestManagedLabelMatchesPlatformLib holds the Go constant to the shell one: platform/sweep.sh
// removes what carries platform/lib.sh's KIT_LABEL_KEY, so a container labelled with anything else
// would outlive an interrupted run.
func TestManagedLabelMatchesPlatformLib(t *testing.T) {
	t.Parallel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root, err := platformtest.FindRepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "platform", "lib.sh")
	lib, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^KIT_LABEL_KEY="([^"]*)"$`).FindSubmatch(lib)
	if m == nil {
		t.Fatalf(`%s has no line KIT_LABEL_KEY="..."`, path)
	}
	if got := string(m[1]); got != platformtest.ManagedLabel {
		t.Errorf("%s sets KIT_LABEL_KEY=%q; platformtest.ManagedLabel is %q", path, got, platformtest.ManagedLabel)
	}
	if got := platformtest.Labels()[platformtest.ManagedLabel]; got != "true" {
		t.Errorf("Labels()[%s] = %q, want true (KIT_LABEL is KIT_LABEL_KEY=true)", platformtest.ManagedLabel, got)
	}
}
