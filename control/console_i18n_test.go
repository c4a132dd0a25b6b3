package control

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/internal/i18n"
)

// Every text the console asks for is in both catalogues: the keys the
// templates name ({{t "key"}}), those the Go code names (c.t("key")), and
// those it builds from a value (a status, a role, an API refusal, the
// names the default policy defines).
func TestConsoleTextsAreInBothCatalogues(t *testing.T) {
	need := map[string]string{} // key -> where it is used
	tmpl := regexp.MustCompile(`\bt "([a-z0-9_.]+)"`)
	files, _ := filepath.Glob("console/*.html")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range tmpl.FindAllStringSubmatch(string(b), -1) {
			need[m[1]] = f
		}
	}
	code := regexp.MustCompile(`c\.t\("([a-z0-9_.]+)"`)
	for _, f := range []string{"console.go", "console_tenant.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range code.FindAllStringSubmatch(string(b), -1) {
			if !strings.HasSuffix(m[1], ".") { // a prefix, completed below
				need[m[1]] = f
			}
		}
	}
	// The sign-out and sign-in-unavailable pages ({{call .T "key"}}).
	call := regexp.MustCompile(`call \.T "([a-z0-9_.]+)"`)
	b, err := os.ReadFile("login.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range call.FindAllStringSubmatch(string(b), -1) {
		need[m[1]] = "login.go"
	}
	if len(need) < 200 {
		t.Fatalf("found only %d keys: is the scan still right?", len(need))
	}
	add := func(prefix string, values ...string) {
		for _, v := range values {
			need[prefix+v] = "built from " + prefix + "*"
		}
	}
	add("action.", "resend", "withdraw", "revoke", "accept", "reject")
	add("delegation.question.", "withdraw", "revoke", "reject")
	add("kind.", "role", "profile", "feature", "right", "product")
	add("members.flash.", access.MemberStatuses...)
	add("tenant_status.", access.TenantStatuses...)
	add("member_status.", access.MemberStatuses...)
	add("delegation_status.", access.DelegationStatuses...)
	add("role.", append([]string{"owner"}, access.Roles...)...)
	add("level.", access.FeatureLevels...)
	add("scope.", access.DelegationScopes...)
	add("right.", access.Rights...)
	add("mode.", access.MasterModes...)
	add("event.", access.MasterEvents...)
	add("stage.", "memoised")
	add("end_reason.", "ended", "logout", "revoked", "expired")
	add("object.", "member_invitation", "partner_user", "member", "delegation", "tenant", "partner", "import")
	add("invitation_status.", "pending", "accepted", "withdrawn", "expired")
	add("partner_role.", access.PartnerRoles...)
	add("staff_action.", "deactivate", "reactivate", "remove")
	add("apierr.status.", "400", "403", "404", "409", "429", "500", "503", "other")
	for reason := range memberRefusalFields {
		add("reason.", reason)
	}
	for reason := range inviteRefusalFields {
		add("reason.", reason)
	}
	for _, m := range apiMessages {
		need[m.key] = "apiMessages"
	}
	// The default policy's features, their fields, and its profiles.
	b, err = os.ReadFile("../rego/data.json")
	if err != nil {
		t.Fatal(err)
	}
	var data struct {
		Portero struct {
			Definitions struct {
				Features map[string]struct{ Fields []string }
				Profiles map[string]any
			}
		}
	}
	if err := json.Unmarshal(b, &data); err != nil {
		t.Fatal(err)
	}
	for id, f := range data.Portero.Definitions.Features {
		add("feature.", id)
		add("field.", f.Fields...)
	}
	for id := range data.Portero.Definitions.Profiles {
		add("profile.", id)
	}
	for _, key := range slices.Sorted(func(yield func(string) bool) {
		for k := range need {
			if !yield(k) {
				return
			}
		}
	}) {
		for _, l := range i18n.Languages {
			if !i18n.Has(l.Code, key) {
				t.Errorf("%s (used in %s) is not in %s.json", key, need[key], l.Code)
			}
		}
	}
}

// The API's messages the console knows are turned into the user's
// language, with what they name.
func TestAPIMessagesTranslated(t *testing.T) {
	c := &consoleRequest{lang: i18n.Spanish}
	for _, tc := range []struct {
		status int
		ae     apiError
		want   string
	}{
		{409, apiError{Message: "tenant acme already has an open delegation to partnerco"}, "la empresa acme ya tiene un acceso delegado abierto con partnerco"},
		{400, apiError{Field: "role", Message: `unknown role "boss"; the policy defines: administrator, location_manager`}, `rol desconocido: "boss"; la política define: administrator, location_manager`},
		{403, apiError{Reason: "admin.rank"}, "Solo puedes asignar roles inferiores al tuyo, y a miembros con un rol inferior al tuyo."},
		{400, apiError{Message: "something new the console has not seen"}, "La solicitud no es válida. (something new the console has not seen)"},
		{418, apiError{}, "La solicitud ha fallado (418)."},
		{409, apiError{Message: "cannot withdraw an invitation that is accepted"}, "no se puede hacer «Retirar» en una invitación que está «aceptada»"},
		{400, apiError{Field: "email", Message: "must be an e-mail address such as ana@example.com"}, "debe ser un correo electrónico, como ana@example.com"},
		{404, apiError{Message: "member leo of acme: not found"}, "Ya no existe (puede que alguien lo haya eliminado mientras tanto)."},
	} {
		if got := c.apiMessage(tc.status, tc.ae); got != tc.want {
			t.Errorf("%d %+v: %q, want %q", tc.status, tc.ae, got, tc.want)
		}
	}
	c.lang = i18n.English
	if got := c.apiMessage(400, apiError{Message: "something new"}); got != "something new" {
		t.Errorf("English keeps the API's message: %q", got)
	}
}
