package archtest

import (
	"strings"
	"testing"
)

// The two planes know each other only through what cmd/portero wires: the
// control plane decides through an interface the gateway satisfies, and
// the gateway mounts the control plane as an http.Handler. Neither imports
// the other (tests aside: the whole-gateway harness builds both).
func TestPlanesDoNotImportEachOther(t *testing.T) {
	_, module, pkgs := load(t)
	rules := map[string][]string{
		"control": {"proxy"},            // proxy/authn is allowed: proxy/authn is not the gateway
		"proxy":   {"control"},          // the gateway mounts control as a handler
		"policy":  {"proxy", "control"}, // policy knows nothing of the planes
		"access":  {"proxy", "control"}, // nor does the store
		"config":  {"proxy", "control", "policy", "access"},
	}
	for _, p := range pkgs {
		rel := p.rel(module)
		for from, banned := range rules {
			if !under(rel, from) {
				continue
			}
			for _, imp := range p.Imports {
				r := strings.TrimPrefix(strings.TrimPrefix(imp, module), "/")
				if !strings.HasPrefix(imp, module) {
					continue
				}
				for _, b := range banned {
					if r == b || (strings.HasPrefix(r, b+"/") && !(b == "proxy" && from == "control" && under(r, "proxy/authn"))) {
						t.Errorf("%s imports %s: %s must not depend on %s", rel, r, from, b)
					}
				}
			}
		}
	}
}
