package policy

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/storage"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
)

// snapshot is one consistent read of a policy source: every file's bytes,
// taken before anything is parsed, so the revision hash and the compiled
// policy always describe the same content.
type snapshot struct {
	files    memFS
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
	files := memFS{}
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
		files[name] = data
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
		fmt.Fprintf(h, "%s\x00%d\x00", name, len(files[name]))
		h.Write(files[name])
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

// memFS is a snapshot's files as a read-only fs.FS for OPA's loader: file
// names (slash-separated, as fs.WalkDir gives them) to their bytes. A
// directory exists when some file lies under it; "." always exists.
type memFS map[string][]byte

var (
	_ fs.ReadFileFS = memFS(nil)
	_ fs.ReadDirFS  = memFS(nil)
	_ fs.StatFS     = memFS(nil)
)

func (m memFS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	if data, ok := m[name]; ok {
		return &memFile{info: memInfo{name: path.Base(name), size: int64(len(data))}, r: bytes.NewReader(data)}, nil
	}
	entries, ok := m.entries(name)
	if !ok {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &memDir{info: memInfo{name: path.Base(name), dir: true}, entries: entries}, nil
}

func (m memFS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	data, ok := m[name]
	if !ok {
		if _, isDir := m.entries(name); isDir {
			return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
		}
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(data), nil
}

func (m memFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	if _, isFile := m[name]; isFile {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	entries, ok := m.entries(name)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return entries, nil
}

func (m memFS) Stat(name string) (fs.FileInfo, error) {
	f, err := m.Open(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	return f.Stat()
}

// entries lists the directory dir, sorted by name; ok is false when no file
// lies under it.
func (m memFS) entries(dir string) (entries []fs.DirEntry, ok bool) {
	prefix := dir + "/"
	if dir == "." {
		prefix = ""
	}
	seen := map[string]bool{}
	for name, data := range m {
		rest, under := strings.CutPrefix(name, prefix)
		if !under {
			continue
		}
		ok = true
		child, _, isDir := strings.Cut(rest, "/")
		if seen[child] {
			continue
		}
		seen[child] = true
		info := memInfo{name: child, dir: isDir}
		if !isDir {
			info.size = int64(len(data))
		}
		entries = append(entries, fs.FileInfoToDirEntry(info))
	}
	sort.Slice(entries, func(i, j int) bool { return entries[i].Name() < entries[j].Name() })
	return entries, ok || dir == "."
}

type memInfo struct {
	name string
	size int64
	dir  bool
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return time.Time{} }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() fs.FileMode {
	if i.dir {
		return fs.ModeDir | 0o555
	}
	return 0o444
}

type memFile struct {
	info memInfo
	r    *bytes.Reader
}

func (f *memFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *memFile) Read(b []byte) (int, error) { return f.r.Read(b) }
func (f *memFile) Close() error               { return nil }
func (f *memFile) Seek(offset int64, whence int) (int64, error) {
	return f.r.Seek(offset, whence)
}
func (f *memFile) ReadAt(b []byte, off int64) (int, error) { return f.r.ReadAt(b, off) }

type memDir struct {
	info    memInfo
	entries []fs.DirEntry
	next    int
}

func (d *memDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *memDir) Close() error               { return nil }
func (d *memDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.info.name, Err: fs.ErrInvalid}
}

// ReadDir follows fs.ReadDirFile: n > 0 reads at most n entries and io.EOF
// at the end; n <= 0 reads the rest.
func (d *memDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.next:]
	if n <= 0 {
		d.next = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.next += n
	return slices.Clone(rest[:n]), nil
}
