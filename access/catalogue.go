package access

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
)

// Catalogue is the names a policy defines (data.portero.definitions):
// roles with their rank, features (also the products a delegation grants),
// profiles and rights. Member and delegation names outside it are refused
// with a FieldError naming the field, so a typo is an error rather than a
// grant of nothing.
type Catalogue struct {
	Roles    map[string]int // role -> rank, higher ranks above
	Features map[string]bool
	Profiles map[string]bool
	Rights   map[string]bool
	// Fields are the fields each feature declares
	// (definitions.features.<f>.fields): the only ones a per-field edit
	// right may name.
	Fields map[string]map[string]bool
}

// CatalogueOf reads the catalogue from the policy's definitions document
// (a JSON-like value: objects are map[string]any).
func CatalogueOf(defs any) *Catalogue {
	c := &Catalogue{Roles: map[string]int{}, Features: map[string]bool{}, Profiles: map[string]bool{}, Rights: map[string]bool{},
		Fields: map[string]map[string]bool{}}
	doc, _ := defs.(map[string]any)
	if roles, ok := doc["roles"].(map[string]any); ok {
		for name, rank := range roles {
			c.Roles[name] = number(rank)
		}
	}
	for key, set := range map[string]map[string]bool{"features": c.Features, "profiles": c.Profiles, "rights": c.Rights} {
		if m, ok := doc[key].(map[string]any); ok {
			for name := range m {
				set[name] = true
			}
		}
	}
	if features, ok := doc["features"].(map[string]any); ok {
		for name, def := range features {
			d, _ := def.(map[string]any)
			list, _ := d["fields"].([]any)
			for _, f := range list {
				if f, ok := f.(string); ok {
					if c.Fields[name] == nil {
						c.Fields[name] = map[string]bool{}
					}
					c.Fields[name][f] = true
				}
			}
		}
	}
	return c
}

func number(v any) int {
	switch n := v.(type) {
	case json.Number:
		i, _ := n.Int64()
		return int(i)
	case float64:
		return int(n)
	case int:
		return n
	case int64:
		return int(n)
	}
	return 0
}

// RolesByRank lists the roles, highest rank first.
func (c *Catalogue) RolesByRank() []string {
	roles := slices.Collect(maps.Keys(c.Roles))
	sort.Slice(roles, func(i, j int) bool {
		if c.Roles[roles[i]] != c.Roles[roles[j]] {
			return c.Roles[roles[i]] > c.Roles[roles[j]]
		}
		return roles[i] < roles[j]
	})
	return roles
}

func unknown(field, kind, name string, known map[string]bool) error {
	names := slices.Sorted(maps.Keys(known))
	return &FieldError{field, fmt.Sprintf("unknown %s %q; the policy defines: %s", kind, name, strings.Join(names, ", "))}
}

// CheckMember refuses a role, profile, feature, right, per-field feature
// or field the policy does not define.
func (c *Catalogue) CheckMember(m *Member) error {
	if _, ok := c.Roles[m.Role]; !ok {
		roles := map[string]bool{}
		for r := range c.Roles {
			roles[r] = true
		}
		return unknown("role", "role", m.Role, roles)
	}
	if m.Profile != "" && !c.Profiles[m.Profile] {
		return unknown("profile", "profile", m.Profile, c.Profiles)
	}
	for _, f := range slices.Sorted(maps.Keys(m.Features)) {
		if !c.Features[f] {
			return unknown("features", "feature", f, c.Features)
		}
	}
	for _, f := range slices.Sorted(maps.Keys(m.Fields)) {
		if !c.Features[f] {
			return unknown("fields", "feature", f, c.Features)
		}
		declared := c.Fields[f]
		if len(declared) == 0 && len(m.Fields[f]) > 0 {
			return &FieldError{"fields." + f, fmt.Sprintf("feature %q declares no fields, so no per-field edit right can name one (declare them in definitions.features.%s.fields)", f, f)}
		}
		for _, name := range m.Fields[f] {
			if !declared[name] {
				return unknown("fields."+f, "field of "+f, name, declared)
			}
		}
	}
	for _, r := range m.Rights {
		if !c.Rights[r] {
			return unknown("rights", "right", r, c.Rights)
		}
	}
	return nil
}

// CheckDelegation refuses a product (a feature) the policy does not define.
func (c *Catalogue) CheckDelegation(d *Delegation) error {
	for _, p := range d.Products {
		if !c.Features[p] {
			return unknown("products", "product", p, c.Features)
		}
	}
	return nil
}
