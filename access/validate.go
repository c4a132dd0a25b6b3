package access

import (
	"net/mail"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"
)

var (
	idPattern      = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)
	namePattern    = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
	hostPattern    = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	profilePattern = namePattern
)

// IsID says whether s is a valid id of a tenant, partner, business or
// location: 1-63 lower-case letters, digits, - or _, starting with a letter
// or digit. The gateway uses the same rule for tenants named by a host, a
// path or a token's claims.
func IsID(s string) bool { return idPattern.MatchString(s) }

func oneOf(field, v string, allowed []string) error {
	if !slices.Contains(allowed, v) {
		return &FieldError{field, "must be one of " + strings.Join(allowed, ", ")}
	}
	return nil
}

func validID(field, v string) error {
	if !idPattern.MatchString(v) {
		return &FieldError{field, "must be 1-63 lower-case letters, digits, - or _, starting with a letter or digit"}
	}
	return nil
}

func validUser(field, v string) error {
	if v == "" || len(v) > 255 || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return &FieldError{field, "must be the user's subject (OIDC sub): 1-255 printable characters"}
	}
	return nil
}

func validNames(field string, vs []string) error {
	for _, v := range vs {
		if !idPattern.MatchString(v) {
			return &FieldError{field, "each entry must be 1-63 lower-case letters, digits, - or _"}
		}
	}
	return nil
}

// ValidateTenant checks a tenant and fills defaults.
func ValidateTenant(t *Tenant) error {
	if err := validID("id", t.ID); err != nil {
		return err
	}
	if strings.TrimSpace(t.Name) == "" || len(t.Name) > 200 {
		return &FieldError{"name", "is required (at most 200 characters)"}
	}
	if t.Status == "" {
		t.Status = "active"
	}
	if err := oneOf("status", t.Status, TenantStatuses); err != nil {
		return err
	}
	for _, h := range t.Hostnames {
		if !hostPattern.MatchString(h) {
			return &FieldError{"hostnames", "each must be a lower-case host name such as acme.apps.example.com"}
		}
	}
	if t.Owner != "" {
		if err := validUser("owner", t.Owner); err != nil {
			return err
		}
	}
	if t.Hostnames == nil {
		t.Hostnames = []string{}
	}
	email, err := normalEmail("owner_email", t.OwnerEmail, true)
	if err != nil {
		return err
	}
	t.OwnerEmail = email
	if t.DefaultProfile != "" && !profilePattern.MatchString(t.DefaultProfile) {
		return &FieldError{"default_profile", "must be a profile name such as services, accounting or full"}
	}
	if t.NotifyMaster == nil {
		t.NotifyMaster = new(true)
	}
	return nil
}

// normalEmail checks an e-mail address (a bare addr-spec, at most 254
// characters) and returns it trimmed and in lower case, the form the
// store compares; "" is allowed when optional.
func normalEmail(field, v string, optional bool) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" && optional {
		return "", nil
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || a.Name != "" || len(v) > 254 || !strings.Contains(v[strings.LastIndexByte(v, '@')+1:], ".") {
		return "", &FieldError{field, "must be an e-mail address such as ana@example.com"}
	}
	return strings.ToLower(v), nil
}

// NormalEmail is an e-mail address as the store keeps and compares it:
// trimmed and in lower case; an error names field when it is not one.
func NormalEmail(field, v string) (string, error) { return normalEmail(field, v, false) }

// validName checks a person's or organisation's display name: at most
// 200 characters, no control characters; required when not optional.
func validName(field, v string, optional bool) (string, error) {
	v = strings.TrimSpace(v)
	switch {
	case v == "" && !optional:
		return "", &FieldError{field, "is required"}
	case utf8.RuneCountInString(v) > 200 || !utf8.ValidString(v) || strings.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r == 0x7f }):
		return "", &FieldError{field, "must be at most 200 printable characters"}
	}
	return v, nil
}

// ValidateMember checks a member and fills defaults.
func ValidateMember(m *Member) error {
	if err := validID("tenant", m.Tenant); err != nil {
		return err
	}
	if err := validUser("user", m.User); err != nil {
		return err
	}
	if err := oneOf("role", m.Role, Roles); err != nil {
		return err
	}
	var err error
	if m.Name, err = validName("name", m.Name, true); err != nil {
		return err
	}
	if m.Email, err = normalEmail("email", m.Email, true); err != nil {
		return err
	}
	if m.Status == "" {
		m.Status = "active"
	}
	if err := oneOf("status", m.Status, MemberStatuses); err != nil {
		return err
	}
	if err := validNames("businesses", m.Businesses); err != nil {
		return err
	}
	if err := validNames("locations", m.Locations); err != nil {
		return err
	}
	for f, level := range m.Features {
		if !namePattern.MatchString(f) {
			return &FieldError{"features", "feature names are lower-case words joined by _"}
		}
		if err := oneOf("features."+f, level, FeatureLevels); err != nil {
			return err
		}
	}
	for f, fields := range m.Fields {
		if m.Features[f] != "edit" {
			return &FieldError{"fields." + f, "per-field edit rights need the feature granted as edit"}
		}
		for _, field := range fields {
			if !namePattern.MatchString(field) {
				return &FieldError{"fields." + f, "field names are lower-case words joined by _"}
			}
		}
	}
	for _, r := range m.Rights {
		if err := oneOf("rights", r, Rights); err != nil {
			return err
		}
	}
	if m.Profile != "" && !profilePattern.MatchString(m.Profile) {
		return &FieldError{"profile", "must be a profile name such as services, accounting or full"}
	}
	if m.Businesses == nil {
		m.Businesses = []string{}
	}
	if m.Locations == nil {
		m.Locations = []string{}
	}
	if m.Features == nil {
		m.Features = map[string]string{}
	}
	if m.Fields == nil {
		m.Fields = map[string][]string{}
	}
	if m.Rights == nil {
		m.Rights = []string{}
	}
	return nil
}

// ValidateDelegation checks an invitation and fills defaults.
func ValidateDelegation(d *Delegation) error {
	if err := validID("tenant", d.Tenant); err != nil {
		return err
	}
	if err := validID("partner", d.Partner); err != nil {
		return err
	}
	if err := oneOf("scope", d.Scope, DelegationScopes); err != nil {
		return err
	}
	if err := validNames("products", d.Products); err != nil {
		return err
	}
	if d.Scope == "limited" && len(d.Products) == 0 {
		return &FieldError{"products", "limited access needs at least one product"}
	}
	if d.Scope == "full" && len(d.Products) > 0 {
		return &FieldError{"products", "full access covers every product; leave products empty"}
	}
	if err := validUser("invited_by", d.InvitedBy); err != nil {
		return err
	}
	if d.Products == nil {
		d.Products = []string{}
	}
	return nil
}

// ApplyDefaultProfile gives a new member the tenant's default profile when
// neither a profile nor explicit feature rights were chosen (a member's
// explicit rights say what they get; the default fills only a blank).
func ApplyDefaultProfile(m *Member, t *Tenant) {
	if m.Profile == "" && len(m.Features) == 0 && t != nil {
		m.Profile = t.DefaultProfile
	}
}
