// Package validate checks the Kubernetes manifests under deploy/kubernetes against the real API
// types: every document decodes strictly (an unknown or misspelt field fails) into the k8s.io/api
// type its kind names, and the sharded run's wiring holds (indexed completions, the completion
// index reaching --shard, one report per shard in the merge, the shared volume).
//
// No cluster is involved: server-side defaulting, admission and the scheduler are not exercised.
package validate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// kustomization is the part of kustomize's Kustomization these bases use; any other field fails.
type kustomization struct {
	APIVersion string              `json:"apiVersion"`
	Kind       string              `json:"kind"`
	Labels     []map[string]any    `json:"labels,omitempty"`
	Resources  []string            `json:"resources"`
	Images     []map[string]string `json:"images,omitempty"`
}

type header struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// objects reads a kustomization directory: every resource it names, decoded strictly by kind.
func objects(t *testing.T, dir string) []any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k kustomization
	if err := yaml.UnmarshalStrict(raw, &k); err != nil {
		t.Fatalf("%s/kustomization.yaml: %v", dir, err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Fatalf("%s/kustomization.yaml: apiVersion/kind %s/%s", dir, k.APIVersion, k.Kind)
	}
	var out []any
	for _, r := range k.Resources {
		path := filepath.Join(dir, r)
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%s names %s: %v", dir, r, err)
		}
		for i, doc := range bytes.Split(raw, []byte("\n---\n")) {
			if len(bytes.TrimSpace(doc)) == 0 {
				continue
			}
			o, err := decode(doc)
			if err != nil {
				t.Fatalf("%s document %d: %v", path, i, err)
			}
			out = append(out, o)
		}
	}
	return out
}

func decode(doc []byte) (any, error) {
	var h header
	if err := yaml.Unmarshal(doc, &h); err != nil {
		return nil, err
	}
	var o any
	switch h.APIVersion + " " + h.Kind {
	case "v1 ConfigMap":
		o = &corev1.ConfigMap{}
	case "v1 PersistentVolumeClaim":
		o = &corev1.PersistentVolumeClaim{}
	case "batch/v1 Job":
		o = &batchv1.Job{}
	default:
		return nil, fmt.Errorf("unexpected kind %s %s", h.APIVersion, h.Kind)
	}
	if err := yaml.UnmarshalStrict(doc, o); err != nil {
		return nil, fmt.Errorf("%s: %w", h.Kind, err)
	}
	return o, nil
}

func find[T any](objs []any, name func(T) string, want string) T {
	for _, o := range objs {
		if v, ok := o.(T); ok && name(v) == want {
			return v
		}
	}
	var zero T
	return zero
}

func jobName(j *batchv1.Job) string                  { return j.Name }
func cmName(c *corev1.ConfigMap) string              { return c.Name }
func pvcName(p *corev1.PersistentVolumeClaim) string { return p.Name }

func env(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

func TestDecodeStrictlyRejectsAnUnknownField(t *testing.T) {
	doc := []byte("apiVersion: batch/v1\nkind: Job\nmetadata: {name: x}\nspec:\n  completionMod: Indexed\n")
	if _, err := decode(doc); err == nil || !strings.Contains(err.Error(), "completionMod") {
		t.Fatalf("a misspelt field must fail, got %v", err)
	}
}

func TestShardsAndMergeFitTogether(t *testing.T) {
	base := objects(t, "../base")
	merge := objects(t, "../merge")

	shards := find(base, jobName, "verifier-shards")
	if shards == nil {
		t.Fatal("../base has no Job verifier-shards")
	}
	s := shards.Spec
	if s.CompletionMode == nil || *s.CompletionMode != batchv1.IndexedCompletion {
		t.Errorf("verifier-shards: completionMode must be Indexed")
	}
	if s.Completions == nil || s.Parallelism == nil || *s.Completions != *s.Parallelism {
		t.Fatalf("verifier-shards: completions and parallelism must be set and equal (all shards at once)")
	}
	n := int(*s.Completions)
	if s.BackoffLimit == nil || *s.BackoffLimit != 0 {
		t.Errorf("verifier-shards: backoffLimit must be 0 (a retried shard starts late)")
	}
	if s.Template.Spec.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("verifier-shards: restartPolicy must be Never")
	}
	c := s.Template.Spec.Containers[0]
	if got := env(c, "SHARDS"); got == nil || got.Value != fmt.Sprint(n) {
		t.Errorf("verifier-shards: SHARDS must equal completions %d, got %+v", n, got)
	}
	idx := env(c, "SHARD_INDEX")
	if idx == nil || idx.ValueFrom == nil || idx.ValueFrom.FieldRef == nil ||
		idx.ValueFrom.FieldRef.FieldPath != "metadata.annotations['batch.kubernetes.io/job-completion-index']" {
		t.Errorf("verifier-shards: SHARD_INDEX must come from the completion index annotation, got %+v", idx)
	}
	if got := env(c, "VERIFIER_SHARD"); got == nil || got.Value != "$(SHARD_INDEX)/$(SHARDS)" {
		t.Errorf("verifier-shards: VERIFIER_SHARD must be $(SHARD_INDEX)/$(SHARDS), got %+v", got)
	}
	// $(VAR) expands only from variables defined earlier in the list.
	pos := func(name string) int {
		return slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	}
	if pos("SHARDS") > pos("VERIFIER_SHARD") || pos("SHARD_INDEX") > pos("VERIFIER_SHARD") ||
		pos("SHARD_INDEX") > pos("VERIFIER_REPORT_DIR") {
		t.Errorf("verifier-shards: SHARDS and SHARD_INDEX must precede the variables that use them")
	}
	if got := env(c, "VERIFIER_REPORT_DIR"); got == nil || got.Value != "/reports/shard-$(SHARD_INDEX)" {
		t.Errorf("verifier-shards: VERIFIER_REPORT_DIR must be /reports/shard-$(SHARD_INDEX), got %+v", got)
	}
	run := find(base, cmName, "verifier-run")
	if run == nil {
		t.Fatal("../base has no ConfigMap verifier-run")
	}
	for _, name := range []string{"VERIFIER_TARGET", "VERIFIER_START_AT"} {
		e := env(c, name)
		if e == nil || e.ValueFrom == nil || e.ValueFrom.ConfigMapKeyRef == nil ||
			e.ValueFrom.ConfigMapKeyRef.Name != "verifier-run" {
			t.Errorf("verifier-shards: %s must come from ConfigMap verifier-run", name)
			continue
		}
		if _, ok := run.Data[e.ValueFrom.ConfigMapKeyRef.Key]; !ok {
			t.Errorf("verifier-run has no key %s", e.ValueFrom.ConfigMapKeyRef.Key)
		}
	}
	scenario := find(base, cmName, "verifier-scenario")
	if scenario == nil || scenario.Data["scenario.yaml"] == "" {
		t.Fatal("../base has no ConfigMap verifier-scenario with scenario.yaml")
	}
	if c.Args[0] != "run" || c.Args[1] != "/scenario/scenario.yaml" {
		t.Errorf("verifier-shards: args must run /scenario/scenario.yaml, got %v", c.Args)
	}

	mj := find(merge, jobName, "verifier-merge")
	if mj == nil {
		t.Fatal("../merge has no Job verifier-merge")
	}
	if mj.Spec.BackoffLimit == nil || *mj.Spec.BackoffLimit != 0 {
		t.Errorf("verifier-merge: backoffLimit must be 0: its exit status is the verdict")
	}
	mc := mj.Spec.Template.Spec.Containers[0]
	var reports []string
	for _, a := range mc.Args[1:] {
		if strings.HasSuffix(a, "/report.json") {
			reports = append(reports, a)
		}
	}
	if mc.Args[0] != "merge" || len(reports) != n {
		t.Fatalf("verifier-merge: must merge %d shard reports, got args %v", n, mc.Args)
	}
	for i := 0; i < n; i++ {
		if want := fmt.Sprintf("/reports/shard-%d/report.json", i); !slices.Contains(reports, want) {
			t.Errorf("verifier-merge: %s missing from its args", want)
		}
	}

	// The shards and the merge share one ReadWriteMany claim, mounted at /reports.
	pvc := find(base, pvcName, "verifier-reports")
	if pvc == nil || !slices.Contains(pvc.Spec.AccessModes, corev1.ReadWriteMany) {
		t.Fatal("../base needs PersistentVolumeClaim verifier-reports, ReadWriteMany")
	}
	for _, p := range []corev1.PodSpec{s.Template.Spec, mj.Spec.Template.Spec} {
		var claim string
		for _, v := range p.Volumes {
			if v.PersistentVolumeClaim != nil {
				claim = v.Name
				if v.PersistentVolumeClaim.ClaimName != pvc.Name {
					t.Errorf("volume %s claims %s, not %s", v.Name, v.PersistentVolumeClaim.ClaimName, pvc.Name)
				}
			}
		}
		mounted := slices.ContainsFunc(p.Containers[0].VolumeMounts, func(m corev1.VolumeMount) bool {
			return m.Name == claim && m.MountPath == "/reports"
		})
		if claim == "" || !mounted {
			t.Errorf("%s: the reports claim must be mounted at /reports", p.Containers[0].Name)
		}
	}
}
