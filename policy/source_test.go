package policy

import (
	"io/fs"
	"testing"
	"testing/fstest"
)

// memFS is what OPA's loader reads a snapshot through: it must behave as an
// fs.FS (directories implied by the file names) for Open, ReadDir, ReadFile
// and Stat alike.
func TestMemFS(t *testing.T) {
	m := memFS{
		"authz.rego":            []byte("package portero.authz\n"),
		"data.json":             []byte(`{"a": 1}`),
		"lib/util.rego":         []byte("package lib\n"),
		"lib/deep/more.rego":    []byte("package lib.deep\n"),
		"tenants/acme/data.yml": []byte("x: 1\n"),
	}
	if err := fstest.TestFS(m, "authz.rego", "data.json", "lib/util.rego", "lib/deep/more.rego", "tenants/acme/data.yml"); err != nil {
		t.Fatal(err)
	}
	if err := fstest.TestFS(memFS{}); err != nil {
		t.Fatalf("empty: %v", err)
	}
	if _, err := fs.Stat(m, "nope"); err == nil {
		t.Fatal("stat of a missing file succeeded")
	}
	if _, err := fs.ReadFile(m, "lib"); err == nil {
		t.Fatal("read of a directory succeeded")
	}
}

// The snapshot is taken through any fs.FS: editor files and tests are left
// out, and the revision depends on names and contents only.
func TestReadSnapshot(t *testing.T) {
	src := fstest.MapFS{
		"authz.rego":           {Data: []byte("package portero.authz\n")},
		"authz_test.rego":      {Data: []byte("package portero.authz_test\n")},
		".authz.rego.swp":      {Data: []byte("junk")},
		".git/config":          {Data: []byte("junk")},
		"lib/routes.json":      {Data: []byte(`{}`)},
		"lib/notes.txt":        {Data: []byte("not policy")},
		"lib/mapping.yaml":     {Data: []byte("a: 1\n")},
		"lib/deep/x.rego":      {Data: []byte("package lib.deep\n")},
		"lib/deep/x_test.rego": {Data: []byte("package lib.deep_test\n")},
	}
	serving, err := readSnapshot(src, false)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for name := range serving.files {
		got = append(got, name)
	}
	if err := fstest.TestFS(serving.files, "authz.rego", "lib/routes.json", "lib/mapping.yaml", "lib/deep/x.rego"); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 {
		t.Fatalf("serving files %v, want 4", got)
	}
	tests, err := readSnapshot(src, true)
	if err != nil {
		t.Fatal(err)
	}
	if len(tests.files) != 6 || tests.revision == serving.revision {
		t.Fatalf("with tests: %d files, revision %s (serving %s)", len(tests.files), tests.revision, serving.revision)
	}
	again, _ := readSnapshot(src, false)
	if again.revision != serving.revision || len(serving.revision) != 12 {
		t.Fatalf("revision %q then %q", serving.revision, again.revision)
	}
	if _, _, err := serving.load(); err != nil {
		t.Fatalf("load: %v", err)
	}
}
