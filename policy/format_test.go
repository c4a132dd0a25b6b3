package policy

import (
	"bytes"
	"io/fs"
	"strings"
	"testing"

	defaultrego "github.com/portero-gateway/portero/rego"
)

// The policy Portero ships is formatted as `portero fmt` (OPA's formatter)
// writes it: `portero fmt -w rego` fixes it.
func TestShippedPolicyIsFormatted(t *testing.T) {
	err := fs.WalkDir(defaultrego.Bundle, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".rego") {
			return err
		}
		src, err := fs.ReadFile(defaultrego.Bundle, path)
		if err != nil {
			return err
		}
		out, err := Format(path, src)
		if err != nil {
			t.Errorf("%v", err)
			return nil
		}
		if !bytes.Equal(out, src) {
			t.Errorf("rego/%s is not formatted: run `portero fmt -w rego`", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestFormatRefusesWhatDoesNotParse(t *testing.T) {
	if _, err := Format("bad.rego", []byte("package x\nallow if {")); err == nil || !strings.Contains(err.Error(), "bad.rego") {
		t.Fatalf("error %v, want one naming the file", err)
	}
	out, err := Format("ok.rego", []byte("package x\nallow if {   input.a == 1 }\n"))
	if err != nil || !strings.Contains(string(out), "allow if input.a == 1") {
		t.Fatalf("%q %v", out, err)
	}
}
