// Package audit is Portero's tamper-evident trail: records of master access
// (start, end, expiry, revocation, refused attempts) and of every change to
// the access facts. Each record carries its own SHA-256 — over its canonical
// JSON, which includes the previous record's hash — so editing a record
// breaks its own hash, and removing or reordering records breaks the link of
// the next one. Verify names the first broken record.
//
// The trail lives in the access store, written in the same transaction as
// the change it records (see access.Store); signed checkpoints of its head
// (checkpoint.go) make a cut-off tail visible. A Log is a JSON lines file
// holding the same records: the export (mirror) of the trail, verifiable on
// its own.
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

// Events recorded for master access. Access changes are recorded with
// events named after the change ("member.put", "delegation.accept", …).
const (
	EventStart  = "start"   // an admin entered a tenant
	EventEnd    = "end"     // the admin ended it, or signed out
	EventExpire = "expire"  // it reached its time limit
	EventRevoke = "revoke"  // another admin revoked it
	EventRefuse = "refused" // an attempt the policy or the store refused
)

// Record is one audit record.
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
	By      string     `json:"by,omitempty"`     // who ended or revoked it, or made the change
	Detail  string     `json:"detail,omitempty"` // why it was refused or ended
	// Object names what an access change changed ("member acme/leo"), and
	// Data is its state after the change (absent when it was removed).
	Object string          `json:"object,omitempty"`
	Data   json.RawMessage `json:"data,omitempty"`
	// Prev is the previous record's Hash; empty for the first record.
	Prev string `json:"prev"`
	// Hash is the hex SHA-256 of this record's JSON with Hash empty.
	Hash string `json:"hash"`
}

// Seal normalises rec (UTC times), computes its hash over its canonical JSON
// (Go's encoding of Record with Hash empty; Prev is part of it) and returns
// the record's line, without a newline.
func Seal(rec *Record) ([]byte, error) {
	rec.Time = rec.Time.UTC()
	if rec.Expires != nil {
		e := rec.Expires.UTC()
		rec.Expires = &e
	}
	return seal(rec)
}

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

// Chain checks records one after another, from the first.
type Chain struct {
	n       int
	last    string
	lastSeq int64
}

// Len is the number of records checked so far; Head the last one's seq and
// hash.
func (c *Chain) Len() int                  { return c.n }
func (c *Chain) Head() (int64, string)     { return c.lastSeq, c.last }
func (c *Chain) reset(seq int64, h string) { c.lastSeq, c.last = seq, h }

// Next checks the next record, given as stored (its canonical JSON), and
// returns it. The error says what is wrong with it (position is the
// caller's to name).
func (c *Chain) Next(raw []byte) (Record, error) {
	var rec Record
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rec); err != nil {
		return rec, errors.New("not a valid audit record: " + err.Error())
	}
	claimed := rec.Hash
	resealed, err := seal(&rec)
	switch {
	case err != nil || rec.Hash != claimed || !bytes.Equal(resealed, raw):
		return rec, errors.New("its content does not match its hash (the record was edited)")
	case rec.Prev != c.last:
		return rec, errors.New("its prev hash does not match the record before it (that record was changed or removed, or this one was)")
	case rec.Seq != c.lastSeq+1:
		return rec, fmt.Errorf("seq %d follows seq %d", rec.Seq, c.lastSeq)
	}
	c.last, c.lastSeq = rec.Hash, rec.Seq
	c.n++
	return rec, nil
}

// BreakError names the first record that does not fit the chain.
type BreakError struct {
	Line int   // 1-based line number in a file; 0 in the store
	Seq  int64 // the record's seq, when it could be read
	Why  string
}

func (e *BreakError) Error() string {
	switch {
	case e.Line == 0 && e.Seq > 0:
		return fmt.Sprintf("record seq %d: %s", e.Seq, e.Why)
	case e.Line == 0:
		return e.Why
	case e.Seq > 0:
		return fmt.Sprintf("line %d (record seq %d): %s", e.Line, e.Seq, e.Why)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.Why)
}

// Verify reads a whole JSON lines file and checks the chain. It returns the
// number of records and, when the chain is broken, a *BreakError naming the
// first record that does not fit.
func Verify(r io.Reader) (int, error) {
	s, err := scan(r)
	return s.chain.n, err
}

// scanned is what a file scan found: the intact prefix's chain, the byte
// offset where that prefix ends, and its records' hashes by seq.
type scanned struct {
	chain Chain
	end   int64
}

func scan(r io.Reader) (scanned, error) {
	var s scanned
	br := bufio.NewReader(r)
	for line := 1; ; line++ {
		raw, rerr := br.ReadBytes('\n')
		if len(raw) == 0 && rerr == io.EOF {
			return s, nil
		}
		if rerr != nil && rerr != io.EOF {
			return s, rerr
		}
		if rerr == io.EOF {
			return s, &BreakError{Line: line, Why: "the last record is cut short (no newline): the log was truncated or is being written"}
		}
		rec, err := s.chain.Next(bytes.TrimSuffix(raw, []byte("\n")))
		if err != nil {
			return s, &BreakError{Line: line, Seq: rec.Seq, Why: err.Error()}
		}
		s.end += int64(len(raw))
	}
}

// Log is a JSON lines file of records: the export of the trail in the
// store. It is safe for concurrent use.
type Log struct {
	mu    sync.Mutex
	f     *os.File
	path  string
	chain Chain
	now   func() time.Time
}

// Open opens (creating if needed) the file at path for appending. It reads
// the existing records to continue the chain; a broken chain is reported
// as a *BreakError alongside a usable log.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	l := &Log{f: f, path: path, now: time.Now}
	s, verr := scan(f)
	if verr != nil && !errors.As(verr, new(*BreakError)) {
		f.Close()
		return nil, fmt.Errorf("audit log %s: %w", path, verr)
	}
	l.chain = s.chain
	return l, verr
}

// Append seals rec as the next record of this file (Seq, Time when zero,
// Prev) and returns once it is on disk. It is for files standing on their
// own; the gateway's records are sealed by the store and copied with Write.
func (l *Log) Append(rec Record) (Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seq, last := l.chain.Head()
	rec.Seq, rec.Prev = seq+1, last
	if rec.Time.IsZero() {
		rec.Time = l.now()
	}
	line, err := Seal(&rec)
	if err != nil {
		return rec, fmt.Errorf("audit: %w", err)
	}
	if err := l.write(line, true); err != nil {
		return rec, err
	}
	l.chain.reset(rec.Seq, rec.Hash)
	l.chain.n++
	return rec, nil
}

// Head is the last record's seq and hash (0, "" when empty).
func (l *Log) Head() (int64, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.chain.Head()
}

// Write appends records already sealed (by the store), in order; each must
// follow the file's last record. A record the file already has is skipped.
func (l *Log) Write(recs ...Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var buf []byte
	seq, last := l.chain.Head()
	for _, rec := range recs {
		if rec.Seq <= seq {
			continue
		}
		if rec.Seq != seq+1 || rec.Prev != last {
			return &GapError{Have: seq, Got: rec.Seq}
		}
		line, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		buf = append(append(buf, line...), '\n')
		seq, last = rec.Seq, rec.Hash
	}
	if len(buf) == 0 {
		return nil
	}
	if err := l.write(buf, false); err != nil {
		return err
	}
	l.chain.n += int(seq - l.chain.lastSeq)
	l.chain.reset(seq, last)
	return nil
}

// GapError says records are missing between the file's last one and the
// one offered: the caller copies the missing ones from the store first.
type GapError struct{ Have, Got int64 }

func (e *GapError) Error() string {
	return fmt.Sprintf("audit export: record %d does not follow record %d", e.Got, e.Have)
}

func (l *Log) write(b []byte, sync bool) error {
	if l.f == nil {
		return nil
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		b = append(b, '\n')
	}
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("audit: write %s: %w", l.path, err)
	}
	if sync {
		if err := l.f.Sync(); err != nil {
			return fmt.Errorf("audit: sync %s: %w", l.path, err)
		}
	}
	return nil
}

// Discard is a Log that keeps nothing: the gateway's export when no file is
// configured.
func Discard() *Log { return &Log{now: time.Now} }

// Close closes the file.
func (l *Log) Close() error {
	if l.f == nil {
		return nil
	}
	return l.f.Close()
}

// Records reads a file and returns the records keep accepts, newest first,
// at most limit of them.
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
