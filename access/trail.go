package access

import (
	"context"
	"crypto/ecdsa"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/portero-gateway/portero/audit"
)

type actorKey struct{}

// WithActor names who makes the store writes done with ctx (a user id, or
// "portero admin"); their audit records carry it in "by".
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// WithActors names who makes a write from its context when WithActor did
// not (the gateway: the signed-in user or token subject of the request).
func WithActors(fn func(context.Context) string) Option { return func(s *Store) { s.actors = fn } }

// actorOf is who makes the writes done with ctx, "" when unknown.
func (s *Store) actorOf(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok {
		return a
	}
	if s.actors != nil {
		return s.actors(ctx)
	}
	return ""
}

// change is the audit record of an access change: what changed, its new
// state (nil when removed), by whom.
func (s *Store) change(ctx context.Context, event, tenant, object string, state any) audit.Record {
	rec := audit.Record{Event: event, Tenant: tenant, Object: object, By: s.actorOf(ctx)}
	if state != nil {
		rec.Data, _ = json.Marshal(state)
	}
	return rec
}

// appendRecords seals recs as the trail's next records and inserts them in
// tx. The writer holds the write lock (BEGIN IMMEDIATE), so the head read
// here is the head the records follow.
func (s *Store) appendRecords(ctx context.Context, tx *dbTx, recs []audit.Record) ([]audit.Record, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	var seq int64
	var prev string
	err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, err
	}
	now := s.now()
	for i := range recs {
		rec := &recs[i]
		seq++
		rec.Seq, rec.Prev = seq, prev
		if rec.Time.IsZero() {
			rec.Time = now
		}
		line, err := audit.Seal(rec)
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (seq, event, tenant, admin, hash, record) VALUES (?, ?, ?, ?, ?, ?)`,
			rec.Seq, rec.Event, rec.Tenant, rec.Admin, rec.Hash, string(line)); err != nil {
			return nil, err
		}
		prev = rec.Hash
	}
	return recs, nil
}

// Record appends a record that goes with no change of the facts (a refused
// master-access attempt) and returns it sealed, committed.
func (s *Store) Record(ctx context.Context, rec audit.Record) (audit.Record, error) {
	recs, err := s.commit(ctx, "audit."+rec.Event, false, func(*dbTx) ([]audit.Record, error) {
		return []audit.Record{rec}, nil
	})
	if err != nil {
		return rec, err
	}
	return recs[0], nil
}

// AuditScan calls fn with each record after seq after, in order, as stored.
func (s *Store) AuditScan(ctx context.Context, after int64, fn func(raw []byte) error) error {
	for {
		rows, err := s.query(ctx, `SELECT seq, record FROM audit_log WHERE seq > ? ORDER BY seq LIMIT 1000`, after)
		if err != nil {
			return err
		}
		n := 0
		for rows.Next() {
			var raw []byte
			if err := rows.Scan(&after, &raw); err != nil {
				rows.Close()
				return err
			}
			n++
			if err := fn(raw); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if n < 1000 {
			return nil
		}
	}
}

// AuditHash is the hash of record seq, "" when there is none.
func (s *Store) AuditHash(ctx context.Context, seq int64) (string, error) {
	var h string
	err := s.queryRow(ctx, `SELECT hash FROM audit_log WHERE seq = ?`, seq).Scan(&h)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return h, err
}

// AuditHead is the last record's seq and hash (0, "" when the trail is
// empty).
func (s *Store) AuditHead(ctx context.Context) (int64, string, error) {
	var seq int64
	var h string
	err := s.queryRow(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&seq, &h)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", nil
	}
	return seq, h, err
}

// ImportAudit appends records sealed elsewhere (an older Portero's audit
// log file) to an empty trail, verbatim, after checking their chain.
func (s *Store) ImportAudit(ctx context.Context, raws [][]byte) error {
	var c audit.Chain
	type row struct {
		rec audit.Record
		raw []byte
	}
	rows := make([]row, 0, len(raws))
	for i, raw := range raws {
		rec, err := c.Next(raw)
		if err != nil {
			return &audit.BreakError{Line: i + 1, Seq: rec.Seq, Why: err.Error()}
		}
		rows = append(rows, row{rec, raw})
	}
	_, err := s.commit(ctx, "audit.import", false, func(tx *dbTx) ([]audit.Record, error) {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM audit_log`).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, conflict("the audit trail is not empty")
		}
		for _, r := range rows {
			if _, err := tx.ExecContext(ctx, `INSERT INTO audit_log (seq, event, tenant, admin, hash, record) VALUES (?, ?, ?, ?, ?, ?)`,
				r.rec.Seq, r.rec.Event, r.rec.Tenant, r.rec.Admin, r.rec.Hash, string(r.raw)); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	return err
}

// AuditFilter selects records.
type AuditFilter struct {
	Tenant, Admin string
	// Events keeps only these events (all when empty).
	Events []string
	Limit  int // default and most 5000
}

// MasterEvents are the master-access events of the trail.
var MasterEvents = []string{audit.EventStart, audit.EventEnd, audit.EventExpire, audit.EventRevoke, audit.EventRefuse}

// AuditRecords returns records, newest first.
func (s *Store) AuditRecords(ctx context.Context, f AuditFilter) ([]audit.Record, error) {
	q := `SELECT record FROM audit_log WHERE 1 = 1`
	var args []any
	if f.Tenant != "" {
		q += ` AND tenant = ?`
		args = append(args, f.Tenant)
	}
	if f.Admin != "" {
		q += ` AND admin = ?`
		args = append(args, f.Admin)
	}
	if len(f.Events) > 0 {
		q += ` AND event IN (?` + strings.Repeat(`, ?`, len(f.Events)-1) + `)`
		for _, e := range f.Events {
			args = append(args, e)
		}
	}
	if f.Limit <= 0 || f.Limit > 5000 {
		f.Limit = 5000
	}
	rows, err := s.query(ctx, q+` ORDER BY seq DESC LIMIT ?`, append(args, f.Limit)...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []audit.Record{}
	for rows.Next() {
		var raw []byte
		if err := rows.Scan(&raw); err != nil {
			return nil, err
		}
		var rec audit.Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return nil, fmt.Errorf("audit record: %w", err)
		}
		out = append(out, rec)
	}
	return out, rows.Err()
}

// AuditCheckpoints returns the signed checkpoints, oldest first.
func (s *Store) AuditCheckpoints(ctx context.Context) ([]string, error) {
	rows, err := s.query(ctx, `SELECT jws FROM audit_checkpoints ORDER BY seq, signed_at`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var jws string
		if err := rows.Scan(&jws); err != nil {
			return nil, err
		}
		out = append(out, jws)
	}
	return out, rows.Err()
}

// Checkpoint signs the trail's head with key and stores it, unless the
// newest checkpoint already covers the head. It returns the checkpoint and
// whether one was written.
func (s *Store) Checkpoint(ctx context.Context, key *ecdsa.PrivateKey) (audit.Checkpoint, bool, error) {
	var cp audit.Checkpoint
	wrote := false
	_, err := s.commit(ctx, "audit.checkpoint", false, func(tx *dbTx) ([]audit.Record, error) {
		err := tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1`).Scan(&cp.Seq, &cp.Hash)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil // nothing to sign yet
		}
		if err != nil {
			return nil, err
		}
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT MAX(seq) FROM audit_checkpoints`).Scan(&last); err != nil {
			return nil, err
		}
		if last.Valid && last.Int64 >= cp.Seq {
			return nil, nil
		}
		cp.Time = s.now().UTC()
		jws, err := audit.SignCheckpoint(key, cp)
		if err != nil {
			return nil, err
		}
		_, err = tx.ExecContext(ctx, `INSERT INTO audit_checkpoints (seq, hash, signed_at, jws) VALUES (?, ?, ?, ?)`,
			cp.Seq, cp.Hash, stampOf(cp.Time), jws)
		wrote = err == nil
		return nil, err
	})
	return cp, wrote, err
}

// RunCheckpoints signs the trail's head every interval when it moved, and
// once more when ctx ends (shutdown). It returns then.
func (s *Store) RunCheckpoints(ctx context.Context, key *ecdsa.PrivateKey, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			cp, wrote, err := s.Checkpoint(context.WithoutCancel(ctx), key)
			switch {
			case err != nil:
				s.log.Error("audit checkpoint at shutdown failed", "error", err.Error())
			case wrote:
				s.log.Info("audit checkpoint signed at shutdown", "seq", cp.Seq)
			}
			return
		case <-t.C:
			if _, _, err := s.Checkpoint(ctx, key); err != nil && ctx.Err() == nil && !strings.Contains(err.Error(), ErrUnavailable.Error()) {
				s.log.Error("audit checkpoint failed", "error", err.Error())
			}
		}
	}
}
