// Package archtest holds tests that guard the repository's architecture:
// who may import what, and that README's Layout section matches the tree.
// It has no code of its own.
package archtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

const opaPrefix = "github.com/open-policy-agent/opa/"

type pkg struct {
	ImportPath   string
	Dir          string
	Imports      []string
	TestImports  []string
	XTestImports []string
	Error        *struct{ Err string }
}

// rel is the package's path inside the main module: "proxy/authn", or ""
// for the module's root package.
func (p pkg) rel(module string) string {
	return strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
}

// allImports is every import of the package, its tests' included.
func (p pkg) allImports() []string {
	return slices.Concat(p.Imports, p.TestImports, p.XTestImports)
}

var (
	loadOnce sync.Once
	root     string // the main module's directory
	module   string // the main module's path
	pkgs     []pkg  // the main module's packages (./... from the root: not e2e/ or bench/, modules of their own)
	loadErr  error
)

func load(t *testing.T) (string, string, []pkg) {
	t.Helper()
	loadOnce.Do(func() {
		out, err := exec.Command("go", "list", "-m", "-json").Output()
		if err != nil {
			loadErr = goErr("go list -m", err)
			return
		}
		var m struct{ Path, Dir string }
		if loadErr = json.Unmarshal(out, &m); loadErr != nil {
			return
		}
		root, module = m.Dir, m.Path
		cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Dir,Imports,TestImports,XTestImports,Error", "./...")
		cmd.Dir = root
		if out, err = cmd.Output(); err != nil {
			loadErr = goErr("go list ./...", err)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(out))
		for {
			var p pkg
			if err := dec.Decode(&p); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				loadErr = err
				return
			}
			pkgs = append(pkgs, p)
		}
	})
	if loadErr != nil {
		t.Fatal(loadErr)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list ./... found no packages")
	}
	return root, module, pkgs
}

func goErr(what string, err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return errors.New(what + ": " + err.Error() + "\n" + string(ee.Stderr))
	}
	return errors.New(what + ": " + err.Error())
}

// The packages list cleanly: the checks below see every import.
func TestPackagesList(t *testing.T) {
	_, _, pkgs := load(t)
	for _, p := range pkgs {
		if p.Error != nil {
			t.Errorf("%s: %s", p.ImportPath, p.Error.Err)
		}
	}
}

// OPA stays inside policy/ (and rego/, the policy bundle): no other package,
// its tests included, imports anything of OPA's.
func TestOPAStaysInPolicy(t *testing.T) {
	_, module, pkgs := load(t)
	for _, p := range pkgs {
		rel := p.rel(module)
		if under(rel, "policy") || under(rel, "rego") {
			continue
		}
		for _, imp := range p.allImports() {
			if strings.HasPrefix(imp, opaPrefix) {
				t.Errorf("%s imports %s: OPA belongs in policy/ (give policy a function or type instead)", rel, imp)
			}
		}
	}
}

// Commands are leaves: nothing imports a package under cmd/.
func TestNothingImportsCmd(t *testing.T) {
	_, module, pkgs := load(t)
	for _, p := range pkgs {
		for _, imp := range p.allImports() {
			if imp == p.ImportPath {
				continue // the package's own external tests
			}
			if imp == module+"/cmd" || strings.HasPrefix(imp, module+"/cmd/") {
				t.Errorf("%s imports %s: commands are not libraries", p.rel(module), imp)
			}
		}
	}
}

// Test helpers stay out of the binary: nothing under cmd/ links
// testing/fstest or net/http/httptest, nor a package of ours that imports
// testing (internal/testissuer, internal/gatewaytest). OPA's tester, which
// `portero test` runs, imports testing itself; that is OPA's, not ours.
func TestBinaryLinksNoTestHelpers(t *testing.T) {
	root, module, _ := load(t)
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports", "./cmd/...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(goErr("go list -deps ./cmd/...", err))
	}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		switch {
		case p.ImportPath == "testing/fstest" || p.ImportPath == "net/http/httptest":
			t.Errorf("a command links %s: test code in production (find the importer with go list -deps -f '{{.ImportPath}} {{.Imports}}' ./cmd/...)", p.ImportPath)
		case (p.ImportPath == module || strings.HasPrefix(p.ImportPath, module+"/")) && slices.Contains(p.Imports, "testing"):
			t.Errorf("a command links %s, which imports testing: test helpers belong in _test.go files or test-only packages", p.rel(module))
		}
	}
}

// The policy engine knows no HTTP: it decides on its input, the request
// path turns that into responses.
func TestPolicyImportsNoHTTP(t *testing.T) {
	_, module, pkgs := load(t)
	for _, p := range pkgs {
		if p.ImportPath != module+"/policy" {
			continue
		}
		for _, imp := range p.Imports {
			if imp == "net/http" || strings.HasPrefix(imp, "net/http/") {
				t.Errorf("policy imports %s: the policy decides on its input; HTTP belongs to the request path", imp)
			}
		}
		return
	}
	t.Fatal("no policy package found")
}

// README's Layout section names every top-level directory that holds
// packages of the main module, and every directory it lists exists: the
// layout a reader sees is the tree.
func TestReadmeLayoutMatchesTree(t *testing.T) {
	root, module, pkgs := load(t)
	entries := readmeLayout(t, filepath.Join(root, "README.md"))

	named := map[string]bool{}
	for _, e := range entries {
		named[strings.Split(e, "/")[0]] = true
		info, err := os.Stat(filepath.Join(root, filepath.FromSlash(e)))
		if err != nil || !info.IsDir() {
			t.Errorf("README's Layout lists %s/, which is not a directory of the repository", e)
		}
	}

	top := map[string]bool{}
	for _, p := range pkgs {
		if rel := p.rel(module); rel != "" {
			top[strings.Split(rel, "/")[0]] = true
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(top)) {
		if !named[dir] {
			t.Errorf("top-level directory %s/ holds Go packages but README's Layout does not list it", dir)
		}
	}
}

var heading = regexp.MustCompile(`^#{1,6}\s+(.*?)\s*$`)

// readmeLayout returns the paths listed in the first code block of README's
// Layout section: the first word of each line that does not start with a
// space (the others continue a description), without its trailing slash.
func readmeLayout(t *testing.T, readme string) []string {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var (
		inSection, inBlock, sawBlock bool
		entries                      []string
	)
	sc := bufio.NewScanner(f)
	for sc.Scan() && !sawBlock {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if inSection {
				sawBlock = inBlock
				inBlock = !inBlock
			}
			continue
		}
		if inBlock {
			if line == "" || line[0] == ' ' || line[0] == '\t' {
				continue
			}
			entries = append(entries, strings.TrimSuffix(strings.Fields(line)[0], "/"))
			continue
		}
		if m := heading.FindStringSubmatch(line); m != nil {
			if inSection {
				break // the next section: Layout had no code block
			}
			inSection = m[1] == "Layout"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(entries) == 0 {
		t.Fatal("README.md has no Layout section with a code block listing the directories")
	}
	return entries
}

func under(rel, dir string) bool { return rel == dir || strings.HasPrefix(rel, dir+"/") }
