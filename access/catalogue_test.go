package access

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const defsJSON = `{"roles": {"administrator": 4, "location_manager": 1, "account_manager": 2},
 "features": {"reviews": {"fields": ["text", "rating"]}, "billing": {}}, "profiles": {"full": {}}, "rights": {"licenses": {}}}`

func catalogueForTest(t *testing.T) *Catalogue {
	t.Helper()
	var defs any
	dec := json.NewDecoder(strings.NewReader(defsJSON))
	dec.UseNumber() // as OPA hands them over
	if err := dec.Decode(&defs); err != nil {
		t.Fatal(err)
	}
	return CatalogueOf(defs)
}

func TestCatalogueNamesTheUnknownField(t *testing.T) {
	c := catalogueForTest(t)
	if got := strings.Join(c.RolesByRank(), ","); got != "administrator,account_manager,location_manager" {
		t.Errorf("roles by rank: %s", got)
	}
	ok := Member{Role: "account_manager", Profile: "full", Features: map[string]string{"reviews": "edit"},
		Fields: map[string][]string{"reviews": {"text"}}, Rights: []string{"licenses"}}
	if err := c.CheckMember(&ok); err != nil {
		t.Fatal(err)
	}
	bad := map[string]Member{
		"role":     {Role: "multi_account_manager"},
		"profile":  {Role: "account_manager", Profile: "services"},
		"features": {Role: "account_manager", Features: map[string]string{"reviwes": "read"}},
		"fields":   {Role: "account_manager", Fields: map[string][]string{"ads": {"x"}}},
		"rights":   {Role: "account_manager", Rights: []string{"licenses", "licences"}},
	}
	for field, m := range bad {
		var fe *FieldError
		if err := c.CheckMember(&m); !errors.As(err, &fe) || fe.Field != field || !strings.Contains(fe.Msg, "the policy defines") {
			t.Errorf("%s: %v", field, err)
		}
	}
	// Per-field rights name only the fields the feature declares.
	for name, m := range map[string]Member{
		"undeclared field":           {Role: "account_manager", Fields: map[string][]string{"reviews": {"text", "author"}}},
		"feature declaring no field": {Role: "account_manager", Fields: map[string][]string{"billing": {"iban"}}},
	} {
		var fe *FieldError
		if err := c.CheckMember(&m); !errors.As(err, &fe) || !strings.HasPrefix(fe.Field, "fields.") {
			t.Errorf("%s: %v", name, err)
		}
	}
	var fe *FieldError
	if err := c.CheckDelegation(&Delegation{Products: []string{"reviews", "ads"}}); !errors.As(err, &fe) || fe.Field != "products" || !strings.Contains(fe.Msg, `"ads"`) {
		t.Errorf("products: %v", err)
	}
	if err := c.CheckDelegation(&Delegation{Products: []string{"billing"}}); err != nil {
		t.Error(err)
	}
	if empty := CatalogueOf(nil); empty.CheckMember(&Member{Role: "administrator"}) == nil {
		t.Error("no definitions: every role is unknown")
	}
}
