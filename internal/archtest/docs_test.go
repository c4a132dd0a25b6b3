package archtest

import (
	"bufio"
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// architectureDoc is the project's own description of its architecture.
const architectureDoc = "docs/architecture.md"

// docPath matches a directory written as "word/" or "word/word/" (and
// deeper) where a path starts: not inside "/.portero/", a URL or a file
// name.
var docPath = regexp.MustCompile(`(?:^|[\s(,` + "`" + `])([a-z][a-z0-9_-]*(?:/[a-z][a-z0-9_-]*)*/)`)

// docs/architecture.md names every top-level directory that holds packages
// of the main module (as "dir/"), so a newcomer reading it meets every part
// of the tree.
func TestArchitectureDocNamesEveryPackageDir(t *testing.T) {
	root, module, pkgs := load(t)
	doc, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(architectureDoc)))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range docPath.FindAllStringSubmatch(string(doc), -1) {
		named[strings.Split(m[1], "/")[0]] = true
	}
	top := map[string]bool{}
	for _, p := range pkgs {
		if rel := p.rel(module); rel != "" {
			top[strings.Split(rel, "/")[0]] = true
		}
	}
	for _, dir := range slices.Sorted(maps.Keys(top)) {
		if !named[dir] {
			t.Errorf("top-level directory %s/ holds Go packages but %s does not name it", dir, architectureDoc)
		}
	}
}

// Every directory docs/architecture.md's Layout block names exists: the
// layout a reader sees is the tree.
func TestArchitectureDocLayoutExists(t *testing.T) {
	root, _, _ := load(t)
	block := layoutBlock(t, filepath.Join(root, filepath.FromSlash(architectureDoc)))
	if block == "" {
		return // no layout block: nothing to check
	}
	seen := 0
	for _, m := range docPath.FindAllStringSubmatch(block, -1) {
		seen++
		dir := strings.TrimSuffix(m[1], "/")
		info, err := os.Stat(filepath.Join(root, filepath.FromSlash(dir)))
		if err != nil || !info.IsDir() {
			t.Errorf("%s's Layout names %s/, which is not a directory of the repository", architectureDoc, dir)
		}
	}
	if seen == 0 {
		t.Errorf("%s's Layout block names no directory", architectureDoc)
	}
}

// layoutBlock returns the first code block of the file's "Layout" section,
// or "" when it has none.
func layoutBlock(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var (
		inSection, inBlock bool
		block              strings.Builder
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "```") {
			if inBlock {
				return block.String()
			}
			inBlock = inSection
			continue
		}
		if inBlock {
			block.WriteString(line)
			block.WriteByte('\n')
			continue
		}
		if m := heading.FindStringSubmatch(line); m != nil {
			if inSection {
				return "" // the next section: Layout had no code block
			}
			inSection = m[1] == "Layout"
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return ""
}
