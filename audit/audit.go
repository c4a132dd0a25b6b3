// Package audit is Portero's append-only audit log of master access: JSON
// lines, each carrying its own SHA-256 and that of the record before it,
// each flushed to disk before the action it records is acknowledged.
// Editing a record breaks its own hash; removing or reordering records
// breaks the link of the next one. Verify names the first broken record.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Events recorded.
const (
	EventStart  = "start"   // an admin entered a tenant
	EventEnd    = "end"     // the admin ended it, or signed out
	EventExpire = "expire"  // it reached its time limit
	EventRevoke = "revoke"  // another admin revoked it
	EventRefuse = "refused" // an attempt the policy or the store refused
)

// Record is one audit line.
type Record struct {
	Seq     int64      `json:"seq"`
	Time    time.Time  `json:"time"`
	Event   string     `json:"event"`
	ID      string     `json:"master_access_id,omitempty"`
	Admin   string     `json:"admin"`
	Tenant  string     `json:"tenant"`
	Reason  string     `json:"reason,omitempty"`
	Ticket  string     `json:"ticket,omitempty"`
	Mode    string     `json:"mode,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
	By      string     `json:"by,omitempty"`     // who ended or revoked it
	Detail  string     `json:"detail,omitempty"` // why it was refused or ended
	// Prev is the previous record's Hash; empty for the first record.
	Prev string `json:"prev"`
	// Hash is the hex SHA-256 of this record's JSON with Hash empty.
	Hash string `json:"hash"`
}

// seal computes rec's hash and returns its line.
func seal(rec *Record) ([]byte, error) {
	rec.Hash = ""
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	rec.Hash = hex.EncodeToString(sum[:])
	return json.Marshal(rec)
}

// Log appends records to a file. It is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	seq  int64
	last string // the last record's hash
	now  func() time.Time
}

// Open opens (creating if needed) the log at path for appending. It reads
// the existing records to continue the chain; a broken chain is reported
// as a *BreakError alongside a usable log, so the gateway can say so loudly
// and keep recording.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{f: f, now: time.Now}
	_, last, lastSeq, verr := scan(f)
	if verr != nil && !errors.As(verr, new(*BreakError)) {
		f.Close()
		return nil, fmt.Errorf("audit log %s: %w", path, verr)
	}
	l.last, l.seq = last, lastSeq
	return l, verr
}

// Append writes rec as the next record, fills in its Seq, Time (when zero)
// and Prev, and returns once it is on disk.
func (l *Log) Append(rec Record) (Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	rec.Seq = l.seq + 1
	if rec.Time.IsZero() {
		rec.Time = l.now().UTC()
	}
	rec.Time = rec.Time.UTC()
	if rec.Expires != nil {
		e := rec.Expires.UTC()
		rec.Expires = &e
	}
	rec.Prev = l.last
	line, err := seal(&rec)
	if err != nil {
		return rec, fmt.Errorf("audit: %w", err)
	}
	if _, err := l.f.Write(append(line, '\n')); err != nil {
		return rec, fmt.Errorf("audit: write: %w", err)
	}
	if err := l.f.Sync(); err != nil {
		return rec, fmt.Errorf("audit: sync: %w", err)
	}
	l.seq, l.last = rec.Seq, rec.Hash
	return rec, nil
}

// Close closes the file.
func (l *Log) Close() error { return l.f.Close() }

// BreakError names the first record that does not fit the chain.
type BreakError struct {
	Line int   // 1-based line number
	Seq  int64 // the record's seq, when it could be read
	Why  string
}

func (e *BreakError) Error() string {
	if e.Seq > 0 {
		return fmt.Sprintf("line %d (record seq %d): %s", e.Line, e.Seq, e.Why)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Why)
}

// Verify reads a whole log and checks the chain. It returns the number of
// records and, when the chain is broken, a *BreakError naming the first
// record that does not fit.
func Verify(r io.Reader) (int, error) {
	n, _, _, err := scan(r)
	return n, err
}

func scan(r io.Reader) (n int, last string, lastSeq int64, err error) {
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		raw, rerr := br.ReadBytes('\n')
		if len(raw) == 0 && rerr == io.EOF {
			return n, last, lastSeq, nil
		}
		if rerr != nil && rerr != io.EOF {
			return n, last, lastSeq, rerr
		}
		if rerr == io.EOF {
			return n, last, lastSeq, &BreakError{Line: line, Why: "the last record is cut short (no newline): the log was truncated or is being written"}
		}
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		var rec Record
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			return n, last, lastSeq, &BreakError{Line: line, Why: "not a valid audit record: " + err.Error()}
		}
		claimed := rec.Hash
		resealed, err := seal(&rec)
		switch {
		case err != nil || rec.Hash != claimed || !bytes.Equal(resealed, raw):
			return n, last, lastSeq, &BreakError{Line: line, Seq: rec.Seq, Why: "its content does not match its hash (the record was edited)"}
		case rec.Prev != last:
			return n, last, lastSeq, &BreakError{Line: line, Seq: rec.Seq, Why: "its prev hash does not match the record before it (that record was changed or removed, or this one was)"}
		case rec.Seq != lastSeq+1:
			return n, last, lastSeq, &BreakError{Line: line, Seq: rec.Seq, Why: fmt.Sprintf("seq %d follows seq %d", rec.Seq, lastSeq)}
		}
		last, lastSeq = rec.Hash, rec.Seq
		n++
	}
}

// Records reads a log and returns the records keep accepts, newest first,
// at most limit of them. It reads the whole file: the log holds one line
// per master-access event, not per request.
func Records(r io.Reader, keep func(Record) bool, limit int) ([]Record, error) {
	var out []Record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec Record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			continue // a broken line is Verify's business; show the rest
		}
		if keep == nil || keep(rec) {
			out = append(out, rec)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
