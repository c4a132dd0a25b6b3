package access

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portero-gateway/portero/audit"
)

// Mail is an e-mail to send: written to the outbox in the transaction of
// the change it announces (enqueueMail), sent later by the mail package's
// sender. Key is the event's idempotency key ("kind:subject:event", e.g.
// "master_access_started:ma_…"): one message per key, however often the
// write that queues it is retried. Kind picks the template, Lang its
// language ("" for the sender's default), Data fills it; paths in Data
// ("accept_path") are prefixed with the gateway's public address by the
// sender.
type Mail struct {
	Key    string
	Kind   string
	Tenant string
	To     string
	Lang   string
	Data   map[string]any
}

// OutboxMail is a message in the outbox, as the sender claims it and the
// console lists it.
type OutboxMail struct {
	ID         string         `json:"id"`
	Key        string         `json:"key"`
	Kind       string         `json:"kind"`
	Tenant     string         `json:"tenant,omitempty"`
	To         string         `json:"to"`
	Lang       string         `json:"lang,omitempty"`
	Data       map[string]any `json:"data"`
	Status     string         `json:"status"` // queued | sending | sent | failed
	Attempts   int            `json:"attempts"`
	NextAt     time.Time      `json:"next_at"`
	LeaseUntil *time.Time     `json:"lease_until,omitempty"`
	LastError  string         `json:"last_error,omitempty"`
	CreatedAt  time.Time      `json:"created_at"`
	SentAt     *time.Time     `json:"sent_at,omitempty"`
}

// MailStatuses are the states of an outbox message: queued (due at
// next_at), sending (claimed by a sender until lease_until), sent, failed
// (given up after the last attempt).
var MailStatuses = []string{"queued", "sending", "sent", "failed"}

// enqueueMail writes m to the outbox inside tx, the writing transaction of
// the change m announces: the message commits or rolls back with it. A key
// already in the outbox is the same event and queues nothing more. A
// message without a recipient (a tenant with no owner e-mail) is not
// queued.
func (s *Store) enqueueMail(ctx context.Context, tx *dbTx, m Mail) error {
	m.To = strings.TrimSpace(m.To)
	if m.To == "" {
		return nil
	}
	if m.Key == "" || m.Kind == "" {
		return fmt.Errorf("outbox: a message needs a key and a kind (key %q, kind %q)", m.Key, m.Kind)
	}
	if m.Data == nil {
		m.Data = map[string]any{}
	}
	now := stampOf(s.now())
	_, err := tx.ExecContext(ctx, `INSERT INTO outbox (id, key, kind, tenant, recipient, lang, data, status, attempts, next_at, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'queued', 0, ?, ?) ON CONFLICT (key) DO NOTHING`,
		newMailID(), m.Key, m.Kind, m.Tenant, m.To, m.Lang, toJSON(m.Data), now, now)
	if err != nil {
		return fmt.Errorf("outbox: queue %s: %w", m.Key, err)
	}
	return nil
}

func newMailID() string {
	var id [12]byte
	_, _ = rand.Read(id[:])
	return "ml_" + hex.EncodeToString(id[:])
}

// EnqueueMail queues m in a transaction of its own, for messages that
// announce no change in the store (a test message from the console).
// Nothing is audited and the facts' generation does not move.
func (s *Store) EnqueueMail(ctx context.Context, m Mail) error {
	_, err := s.commit(ctx, "mail.enqueue", false, func(tx *dbTx) ([]audit.Record, error) {
		return nil, s.enqueueMail(ctx, tx, m)
	})
	return err
}

const outboxCols = `id, key, kind, tenant, recipient, lang, data, status, attempts, next_at, lease_until, last_error, created_at, sent_at`

func scanOutbox(row interface{ Scan(...any) error }) (*OutboxMail, error) {
	var m OutboxMail
	var data, next, created string
	var lease, sent sql.NullString
	if err := row.Scan(&m.ID, &m.Key, &m.Kind, &m.Tenant, &m.To, &m.Lang, &data, &m.Status, &m.Attempts, &next, &lease,
		&m.LastError, &created, &sent); err != nil {
		return nil, err
	}
	m.Data = fromJSON[map[string]any](data)
	if m.Data == nil {
		m.Data = map[string]any{}
	}
	m.NextAt, m.CreatedAt = parseTime(next), parseTime(created)
	if lease.Valid {
		t := parseTime(lease.String)
		m.LeaseUntil = &t
	}
	if sent.Valid {
		t := parseTime(sent.String)
		m.SentAt = &t
	}
	return &m, nil
}

// ClaimMail claims up to n messages due at now for one sender, for lease:
// queued ones whose next_at has come, and ones another sender claimed and
// did not finish before its lease ran out (it crashed or lost the
// database). Each claim counts as an attempt; the claim is the message's
// (id, attempts) until the sender marks it, and another sender cannot take
// it before the lease ends. On PostgreSQL, replicas claim at once without
// waiting for each other's rows (FOR UPDATE SKIP LOCKED); on SQLite the
// write lock serialises them.
func (s *Store) ClaimMail(ctx context.Context, n int, lease time.Duration) ([]*OutboxMail, error) {
	if n <= 0 {
		n = 1
	}
	var out []*OutboxMail
	_, err := s.commit(ctx, "mail.claim", false, func(tx *dbTx) ([]audit.Record, error) {
		out = out[:0]
		now := s.now()
		lock := ""
		if s.d.name() == "postgres" {
			lock = ` FOR UPDATE SKIP LOCKED`
		}
		rows, err := tx.QueryContext(ctx, `UPDATE outbox SET status = 'sending', attempts = attempts + 1, lease_until = ?
			WHERE id IN (SELECT id FROM outbox
				WHERE (status = 'queued' AND next_at <= ?) OR (status = 'sending' AND lease_until <= ?)
				ORDER BY next_at LIMIT ?`+lock+`)
			RETURNING `+outboxCols, stampOf(now.Add(lease)), stampOf(now), stampOf(now), n)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		for rows.Next() {
			m, err := scanOutbox(rows)
			if err != nil {
				return nil, err
			}
			out = append(out, m)
		}
		return nil, rows.Err()
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ErrLeaseLost is marking a message whose claim another sender has taken
// over (the lease ran out first): the mark is not applied.
var ErrLeaseLost = fmt.Errorf("outbox: the message's lease was lost to another sender: %w", ErrConflict)

// markMail applies set to the message claimed as (id, attempt), if the
// claim still holds.
func (s *Store) markMail(ctx context.Context, op string, m *OutboxMail, set string, args ...any) error {
	_, err := s.commit(ctx, op, false, func(tx *dbTx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, `UPDATE outbox SET `+set+`, lease_until = NULL WHERE id = ? AND attempts = ? AND status = 'sending'`,
			append(args, m.ID, m.Attempts)...)
		if err != nil {
			return nil, err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return nil, ErrLeaseLost
		}
		return nil, nil
	})
	return err
}

// MarkMailSent records that the SMTP server accepted the claimed message.
func (s *Store) MarkMailSent(ctx context.Context, m *OutboxMail) error {
	return s.markMail(ctx, "mail.sent", m, `status = 'sent', sent_at = ?, last_error = ''`, stampOf(s.now()))
}

// RetryMail puts the claimed message back in the queue, due at next, with
// why this attempt failed.
func (s *Store) RetryMail(ctx context.Context, m *OutboxMail, next time.Time, why string) error {
	return s.markMail(ctx, "mail.retry", m, `status = 'queued', next_at = ?, last_error = ?`, stampOf(next), clip(why, 1000))
}

// FailMail gives the claimed message up (its last attempt failed, or it
// can never be sent), with why.
func (s *Store) FailMail(ctx context.Context, m *OutboxMail, why string) error {
	return s.markMail(ctx, "mail.failed", m, `status = 'failed', last_error = ?`, clip(why, 1000))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && s[n]&0xc0 == 0x80 { // not inside a UTF-8 sequence
		n--
	}
	return s[:n] + "…"
}

// MailCounts counts the outbox's messages by status (every status present,
// zero when none).
func (s *Store) MailCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.query(ctx, `SELECT status, COUNT(*) FROM outbox GROUP BY status`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for _, st := range MailStatuses {
		out[st] = 0
	}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		out[st] = n
	}
	return out, rows.Err()
}

// NextMailDue is when the next queued message is due; zero when none is
// queued or being sent. A sender sleeps until then (or until a write).
func (s *Store) NextMailDue(ctx context.Context) (time.Time, error) {
	var next sql.NullString
	err := s.queryRow(ctx, `SELECT MIN(CASE WHEN status = 'queued' THEN next_at ELSE lease_until END) FROM outbox WHERE status IN ('queued', 'sending')`).Scan(&next)
	if err != nil || !next.Valid {
		return time.Time{}, err
	}
	return parseTime(next.String), nil
}

// Mails lists outbox messages, newest first: with status (one of
// MailStatuses) and tenant when not empty; at most limit (default and
// bound 1000).
func (s *Store) Mails(ctx context.Context, status, tenant string, limit int) ([]*OutboxMail, error) {
	q := `SELECT ` + outboxCols + ` FROM outbox WHERE 1 = 1`
	var args []any
	if status != "" {
		if err := oneOf("status", status, MailStatuses); err != nil {
			return nil, err
		}
		q += ` AND status = ?`
		args = append(args, status)
	}
	if tenant != "" {
		q += ` AND tenant = ?`
		args = append(args, tenant)
	}
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	q += ` ORDER BY created_at DESC, id LIMIT ?`
	rows, err := s.query(ctx, q, append(args, limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []*OutboxMail{}
	for rows.Next() {
		m, err := scanOutbox(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// MailByKey returns the message queued for an event's key.
func (s *Store) MailByKey(ctx context.Context, key string) (*OutboxMail, error) {
	m, err := scanOutbox(s.queryRow(ctx, `SELECT `+outboxCols+` FROM outbox WHERE key = ?`, key))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, notFound(err, "outbox message "+key)
	}
	return m, err
}

// PurgeMail deletes sent and failed messages created before before, and
// returns how many. Their keys go with them: an event older than the
// retention that queued its message again would be sent again, which no
// write does (a retried write is retried within seconds).
func (s *Store) PurgeMail(ctx context.Context, before time.Time) (int64, error) {
	var n int64
	_, err := s.commit(ctx, "mail.purge", false, func(tx *dbTx) ([]audit.Record, error) {
		res, err := tx.ExecContext(ctx, `DELETE FROM outbox WHERE status IN ('sent', 'failed') AND created_at < ?`, stampOf(before))
		if err != nil {
			return nil, err
		}
		n, _ = res.RowsAffected()
		return nil, nil
	})
	return n, err
}
