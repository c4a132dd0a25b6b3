package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// snapshot is one consistent read of a policy source: every file's bytes,
// taken before anything is parsed, so the revision hash and the compiled
// policy always describe the same content.
type snapshot struct {
	files    fstest.MapFS
	revision string
}

// isPolicyFile reports whether a file belongs to the serving policy: Rego
// modules and data documents. Tests are loaded only by `portero test`.
func isPolicyFile(name string, withTests bool) bool {
	base := path.Base(name)
	if strings.HasPrefix(base, ".") {
		return false // editor swap files, .git
	}
	switch path.Ext(base) {
	case ".rego":
		return withTests || !strings.HasSuffix(base, "_test.rego")
	case ".json", ".yaml", ".yml":
		return true
	}
	return false
}

// readSnapshot reads every policy file under fsys.
func readSnapshot(fsys fs.FS, withTests bool) (*snapshot, error) {
	files := fstest.MapFS{}
	err := fs.WalkDir(fsys, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name != "." && strings.HasPrefix(d.Name(), ".") {
				return fs.SkipDir
			}
			return nil
		}
		if !isPolicyFile(name, withTests) {
			return nil
		}
		data, err := fs.ReadFile(fsys, name)
		if err != nil {
			return err
		}
		files[name] = &fstest.MapFile{Data: data}
		return nil
	})
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, name := range names {
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name].Data))
		h.Write(files[name].Data)
	}
	return &snapshot{files: files, revision: hex.EncodeToString(h.Sum(nil))[:12]}, nil
}

// load parses modules and data documents from the snapshot.
func (s *snapshot) load() (map[string]*ast.Module, storage.Store, error) {
	if len(s.files) == 0 {
		return nil, nil, fmt.Errorf("no .rego files found")
	}
	res, err := loader.NewFileLoader().
		WithFS(s.files).
		WithRegoVersion(ast.RegoV1).
		WithProcessAnnotation(true).
		All([]string{"."})
	if err != nil {
		return nil, nil, err
	}
	// The store hands out AST values: without this every read of data
	// (the definitions, the route mapping) is converted from Go values again
	// on each evaluation, which was most of the default policy's cost.
	store, err := res.StoreWithOpts(inmem.OptReturnASTValuesOnRead(true))
	if err != nil {
		return nil, nil, err
	}
	return res.ParsedModules(), store, nil
}
