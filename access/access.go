// Package access holds the facts the policy decides on — tenants, their
// members with roles, scopes and feature rights, partner organisations and
// the delegations tenants grant them — with their lifecycles, the SQLite
// store, and the per-request lookup through a bounded cache.
package access

import (
	"errors"
	"fmt"
	"time"
)

// Tenant is one customer of the SaaS app.
type Tenant struct {
	ID        string   `json:"id"`
	Name      string   `json:"name"`
	Hostnames []string `json:"hostnames"`
	Status    string   `json:"status"` // active | suspended
	Owner     string   `json:"owner"`  // the owner's user id (OIDC sub)
	// MasterAccess says whether system admins may enter this tenant.
	MasterAccess bool `json:"master_access"`
	// OwnerEmail is where the owner is told of master access (and other
	// notices); DefaultProfile is the profile new members get unless
	// another is chosen; NotifyMaster says whether the owner is e-mailed
	// when support enters the tenant (absent on input: yes).
	OwnerEmail     string    `json:"owner_email"`
	DefaultProfile string    `json:"default_profile"`
	NotifyMaster   *bool     `json:"notify_master,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
}

// Member is a user's place in a tenant.
type Member struct {
	Tenant string `json:"tenant"`
	User   string `json:"user"`
	// Name and Email say who the member is, for people reading lists;
	// access is bound to User (the OIDC sub).
	Name       string   `json:"name"`
	Email      string   `json:"email"`
	Role       string   `json:"role"`
	Businesses []string `json:"businesses"`
	Locations  []string `json:"locations"`
	// Features maps a feature to "read" or "edit".
	Features map[string]string `json:"features"`
	// Fields limits edits per feature to these fields; a feature absent
	// here has no per-field limit.
	Fields map[string][]string `json:"fields"`
	// Rights are extra rights: user_management, licenses, catalog_admin.
	Rights    []string  `json:"rights"`
	Profile   string    `json:"profile"`
	Status    string    `json:"status"` // active | deactivated
	UpdatedAt time.Time `json:"updated_at"`
}

// Partner is an organisation tenants may delegate access to.
type Partner struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Email is the organisation's contact address: tenants find it by it,
	// and its invitations go there.
	Email string `json:"email"`
}

// PartnerUser ties a user to a partner organisation.
type PartnerUser struct {
	Partner string `json:"partner"`
	User    string `json:"user"`
	// Role is "admin" (manages the organisation's users) or "staff".
	Role   string `json:"role"`
	Name   string `json:"name"`
	Email  string `json:"email"`
	Status string `json:"status"` // active | deactivated
}

// Delegation is a tenant's grant to a partner organisation.
type Delegation struct {
	ID       string   `json:"id"`
	Tenant   string   `json:"tenant"`
	Partner  string   `json:"partner"`
	Scope    string   `json:"scope"` // full | limited
	Products []string `json:"products"`
	Wallet   bool     `json:"wallet"`
	// Status is invited | accepted | rejected | revoked | expired. An
	// invitation not answered by InvitationExpires, or a partnership past
	// Expires, reads as expired (and is stored so when the tenant invites
	// the partner again).
	Status string `json:"status"`
	// Expires is the partnership's own optional end.
	Expires *time.Time `json:"expires,omitempty"`
	// InvitationExpires is when the invitation can no longer be answered.
	InvitationExpires *time.Time `json:"invitation_expires,omitempty"`
	// Lang is the language of the invitation's e-mails (es, en).
	Lang      string    `json:"lang,omitempty"`
	InvitedBy string    `json:"invited_by"`
	InvitedAt time.Time `json:"invited_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Facts are what the policy needs about one (user, tenant): looked up once
// per request (through the cache) and placed in input.access.
type Facts struct {
	Tenant     *Tenant
	Member     *Member     // nil when the user is not a member
	Partner    string      // the user's partner organisation, if any
	Delegation *Delegation // the tenant's grant to that partner, if any
	// Master is the user's open, unexpired master-access session for the
	// tenant, when the user is a system admin using one.
	Master *MasterSession
}

// Values the store accepts.
var (
	TenantStatuses     = []string{"active", "suspended"}
	MemberStatuses     = []string{"active", "deactivated"}
	Roles              = []string{"administrator", "multi_account_manager", "account_manager", "location_manager"}
	FeatureLevels      = []string{"read", "edit"}
	Rights             = []string{"user_management", "licenses", "catalog_admin"}
	DelegationScopes   = []string{"full", "limited"}
	DelegationStatuses = []string{"invited", "accepted", "rejected", "revoked", "expired"}
	PartnerRoles       = []string{"admin", "staff"}
)

// Errors the management API maps to HTTP statuses.
var (
	ErrNotFound = errors.New("not found")
	ErrConflict = errors.New("conflict")
)

// FieldError is invalid input for one field (a 400 with the field named).
type FieldError struct {
	Field string `json:"field"`
	Msg   string `json:"message"`
}

func (e *FieldError) Error() string { return fmt.Sprintf("%s: %s", e.Field, e.Msg) }

// conflict wraps ErrConflict with what conflicted.
func conflict(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrConflict, fmt.Sprintf(format, args...))
}
