package access

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/portero-gateway/portero/audit"
)

// MasterSession is a system admin's time-limited entry into a tenant's app
// as the tenant (support impersonation). It is bound to the admin's own
// sign-in session and ends at its expiry, when the admin ends it or signs
// out, or when another admin revokes it.
type MasterSession struct {
	ID        string     `json:"id"`
	Admin     string     `json:"admin"`
	Session   string     `json:"-"` // the admin's sign-in session it is bound to
	Tenant    string     `json:"tenant"`
	Reason    string     `json:"reason"`
	Ticket    string     `json:"ticket,omitempty"`
	Mode      string     `json:"mode"` // full | read_only
	StartedAt time.Time  `json:"started_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	EndReason string     `json:"end_reason,omitempty"` // ended | logout | revoked | expired
	EndedBy   string     `json:"ended_by,omitempty"`
}

// Active says whether the session is open and unexpired at now.
func (m *MasterSession) Active(now time.Time) bool {
	return m.EndedAt == nil && now.Before(m.ExpiresAt)
}

// MasterModes are the modes a master-access session may have.
var MasterModes = []string{"full", "read_only"}

// MasterEndReasons are why a master-access session ended.
var MasterEndReasons = []string{"ended", "logout", "revoked", "expired"}

const masterCols = `id, admin, session, tenant, reason, ticket, mode, started_at, expires_at, ended_at, end_reason, ended_by`

func scanMaster(row interface{ Scan(...any) error }) (*MasterSession, error) {
	var m MasterSession
	var started, expires string
	var ended sql.NullString
	if err := row.Scan(&m.ID, &m.Admin, &m.Session, &m.Tenant, &m.Reason, &m.Ticket, &m.Mode, &started, &expires, &ended, &m.EndReason, &m.EndedBy); err != nil {
		return nil, err
	}
	m.StartedAt, m.ExpiresAt = parseTime(started), parseTime(expires)
	if ended.Valid {
		t := parseTime(ended.String)
		m.EndedAt = &t
	}
	return &m, nil
}

// validText accepts printable text without control characters: it ends up
// in HTTP headers and the audit log.
func validText(field, v string, max int) error {
	if !utf8.ValidString(v) || len(v) > max {
		return &FieldError{field, "must be valid UTF-8 of at most " + strconv.Itoa(max) + " bytes"}
	}
	for _, r := range v {
		if unicode.IsControl(r) {
			return &FieldError{field, "must not contain control characters (newlines, tabs)"}
		}
	}
	return nil
}

// StartMaster opens a master-access session. The caller has checked with
// the policy that the admin may; the store checks the input, that the
// tenant exists and that the admin has no open session for it (409).
func (s *Store) StartMaster(ctx context.Context, m MasterSession) (*MasterSession, error) {
	m.Reason = strings.TrimSpace(m.Reason)
	m.Ticket = strings.TrimSpace(m.Ticket)
	switch {
	case validUser("admin", m.Admin) != nil:
		return nil, validUser("admin", m.Admin)
	case validID("tenant", m.Tenant) != nil:
		return nil, validID("tenant", m.Tenant)
	case m.Reason == "":
		return nil, &FieldError{"reason", "is required: say why you need to enter this tenant"}
	case m.Session == "":
		return nil, &FieldError{"session", "master access must be bound to a sign-in session"}
	}
	if err := validText("reason", m.Reason, 500); err != nil {
		return nil, err
	}
	if err := validText("ticket", m.Ticket, 100); err != nil {
		return nil, err
	}
	if err := oneOf("mode", m.Mode, MasterModes); err != nil {
		return nil, err
	}
	// The caller's clock when it gives one (the gateway decides expiry on
	// its clock; mixing two clocks made a start look expired), else ours.
	now := m.StartedAt
	if now.IsZero() {
		now = s.now()
	}
	if !m.ExpiresAt.After(now) {
		return nil, &FieldError{"duration", "must be positive"}
	}
	var id [12]byte
	_, _ = rand.Read(id[:])
	m.ID = "ma_" + hex.EncodeToString(id[:])
	m.StartedAt = now
	err := s.write(ctx, "master.start", func(tx *dbTx) ([]audit.Record, error) {
		// An expired session still open (not yet swept) does not block a
		// new one; it is ended, and recorded, here.
		recs, err := s.endExpired(ctx, tx, `admin = ? AND tenant = ? AND `, stampOf(now), m.Admin, m.Tenant)
		if err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO master_sessions (`+masterCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, '', '')`,
			m.ID, m.Admin, m.Session, m.Tenant, m.Reason, m.Ticket, m.Mode, stampOf(now), stampOf(m.ExpiresAt))
		switch {
		case err != nil && isUnique(err):
			return nil, conflict("%s already has an open master-access session for %s; end it first", m.Admin, m.Tenant)
		case err != nil && isForeignKey(err):
			return nil, &FieldError{"tenant", "no such tenant"}
		case err != nil:
			return nil, err
		}
		if err := s.masterMail(ctx, tx, &m, now, ""); err != nil {
			return nil, err
		}
		return append(recs, masterRecord(audit.EventStart, &m, now, "", "")), nil
	})
	if err != nil {
		return nil, err
	}
	return s.Master(ctx, m.ID)
}

// Master returns one master-access session.
func (s *Store) Master(ctx context.Context, id string) (*MasterSession, error) {
	m, err := scanMaster(s.queryRow(ctx, `SELECT `+masterCols+` FROM master_sessions WHERE id = ?`, id))
	return m, notFound(err, "master-access session "+id)
}

// EndMaster ends an open session for reason (ended, logout, revoked,
// expired); by names who ended it. Ending a session that has already ended
// is a conflict.
func (s *Store) EndMaster(ctx context.Context, id, reason, by string) (*MasterSession, error) {
	if err := oneOf("reason", reason, MasterEndReasons); err != nil {
		return nil, err
	}
	err := s.write(ctx, "master.end", func(tx *dbTx) ([]audit.Record, error) {
		m, err := scanMaster(tx.QueryRowContext(ctx, `SELECT `+masterCols+` FROM master_sessions WHERE id = ?`, id))
		if errors.Is(err, sql.ErrNoRows) {
			return nil, notFound(err, "master-access session "+id)
		}
		if err != nil {
			return nil, err
		}
		if m.EndedAt != nil {
			return nil, conflict("master-access session %s has already ended", id)
		}
		now := s.now()
		if _, err = tx.ExecContext(ctx, `UPDATE master_sessions SET ended_at = ?, end_reason = ?, ended_by = ? WHERE id = ?`,
			stampOf(now), reason, by, id); err != nil {
			return nil, err
		}
		if err := s.masterMail(ctx, tx, m, now, reason); err != nil {
			return nil, err
		}
		return []audit.Record{masterRecord(masterEvents[reason], m, now, by, reason)}, nil
	})
	if err != nil {
		return nil, err
	}
	return s.Master(ctx, id)
}

// masterEvents is the audit event of each way a session ends.
var masterEvents = map[string]string{"ended": audit.EventEnd, "logout": audit.EventEnd, "revoked": audit.EventRevoke, "expired": audit.EventExpire}

// masterRecord is the audit record of a session's start or end.
func masterRecord(event string, m *MasterSession, at time.Time, by, detail string) audit.Record {
	exp := m.ExpiresAt
	return audit.Record{Time: at, Event: event, ID: m.ID, Admin: m.Admin, Tenant: m.Tenant, Reason: m.Reason, Ticket: m.Ticket,
		Mode: m.Mode, Expires: &exp, By: by, Detail: detail}
}

// endExpired ends, in tx, the open sessions matching where (a condition
// ending in AND, with its args) whose time is up at now, queues their
// owners' e-mails and returns their expiry records.
func (s *Store) endExpired(ctx context.Context, tx *dbTx, where, now string, args ...any) ([]audit.Record, error) {
	rows, err := tx.QueryContext(ctx, `SELECT `+masterCols+` FROM master_sessions WHERE `+where+`ended_at IS NULL AND expires_at <= ?`, append(args, now)...)
	if err != nil {
		return nil, err
	}
	var expired []*MasterSession
	for rows.Next() {
		m, err := scanMaster(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		expired = append(expired, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var recs []audit.Record
	for _, m := range expired {
		if _, err := tx.ExecContext(ctx, `UPDATE master_sessions SET ended_at = expires_at, end_reason = 'expired' WHERE id = ?`, m.ID); err != nil {
			return nil, err
		}
		if err := s.masterMail(ctx, tx, m, m.ExpiresAt, "expired"); err != nil {
			return nil, err
		}
		recs = append(recs, masterRecord(audit.EventExpire, m, m.ExpiresAt, "", "expired"))
	}
	return recs, nil
}

// masterMail queues, in tx, the e-mail telling the tenant's owner that
// master access to their tenant started (endReason empty) or ended at at,
// when the tenant has an owner e-mail and wants to be told
// (notify_master). One message per session and event.
func (s *Store) masterMail(ctx context.Context, tx *dbTx, m *MasterSession, at time.Time, endReason string) error {
	var name, email string
	var notify int
	err := tx.QueryRowContext(ctx, `SELECT name, owner_email, notify_master FROM tenants WHERE id = ?`, m.Tenant).Scan(&name, &email, &notify)
	if errors.Is(err, sql.ErrNoRows) || (err == nil && (notify == 0 || email == "")) {
		return nil
	}
	if err != nil {
		return err
	}
	mail := Mail{Kind: "master_access_started", Tenant: m.Tenant, To: email, Data: map[string]any{
		"tenant_name": name, "admin": m.Admin, "reason": m.Reason, "ticket": m.Ticket, "mode": m.Mode,
		"expires_at": m.ExpiresAt.UTC().Format(time.RFC3339)}}
	if endReason != "" {
		mail.Kind = "master_access_ended"
		mail.Data = map[string]any{"tenant_name": name, "admin": m.Admin, "ended_at": at.UTC().Format(time.RFC3339), "end_reason": endReason}
	}
	mail.Key = mail.Kind + ":" + m.ID
	return s.enqueueMail(ctx, tx, mail)
}

// MasterSessions lists sessions, newest first: the open ones (expired but
// not yet swept included) when open is true, else all, optionally for one
// admin or tenant.
func (s *Store) MasterSessions(ctx context.Context, open bool, admin, tenant string, limit int) ([]*MasterSession, error) {
	q := `SELECT ` + masterCols + ` FROM master_sessions WHERE 1 = 1`
	var args []any
	if open {
		q += ` AND ended_at IS NULL`
	}
	if admin != "" {
		q += ` AND admin = ?`
		args = append(args, admin)
	}
	if tenant != "" {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	q += ` ORDER BY started_at DESC LIMIT ?`
	return s.queryMasters(ctx, q, append(args, limit)...)
}

// ExpiredMasters returns open sessions whose time is up at now, for the
// sweeper that ends (and audits) them.
func (s *Store) ExpiredMasters(ctx context.Context, now time.Time) ([]*MasterSession, error) {
	return s.queryMasters(ctx, `SELECT `+masterCols+` FROM master_sessions WHERE ended_at IS NULL AND expires_at <= ?`, stampOf(now))
}

func (s *Store) queryMasters(ctx context.Context, q string, args ...any) ([]*MasterSession, error) {
	rows, err := s.query(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*MasterSession{}
	for rows.Next() {
		m, err := scanMaster(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// stampOf formats times the master-access queries compare as text: fixed
// width, so text order is time order (RFC3339Nano drops trailing zeros).
func stampOf(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000000000Z07:00") }
