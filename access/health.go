package access

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// fileID identifies a file: a path that names another fileID was replaced.
type fileID struct{ dev, ino uint64 }

func statFile(path string) (fileID, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, nil
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, nil
}

// sqliteMagic begins every SQLite database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// checkHeader says what is wrong with the file at path, if anything a
// glance shows: gone, empty, or not a SQLite database (overwritten).
func checkHeader(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("the store file %s was deleted or moved away", path)
	}
	if err != nil {
		return err
	}
	defer f.Close()
	head := make([]byte, len(sqliteMagic))
	if _, err := io.ReadFull(f, head); err != nil {
		return fmt.Errorf("the store file %s is empty or cut short", path)
	}
	if !bytes.Equal(head, sqliteMagic) {
		return fmt.Errorf("the store file %s is not a SQLite database (overwritten or corrupted)", path)
	}
	return nil
}

// fileBroken says whether a SQLite error means the file is unusable
// (corrupted, not a database, gone), rather than one query failing.
func fileBroken(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_READONLY:
		return true
	}
	return false
}

// Health says why the store cannot be used now, or nil. While it is not
// nil every read and write fails with ErrUnavailable (fail closed); the
// watcher (WatchWrites) reopens the file when it is usable again.
//
// A PostgreSQL store is unusable while it does not listen for other
// replicas' writes (the database is unreachable, or was until a moment
// ago): it could not learn of a revocation made elsewhere, so it fails
// closed rather than serve what it cached, and it is usable again as soon
// as it listens (every cached fact dropped).
func (s *Store) Health() error {
	s.mu.RLock()
	down := s.down
	s.mu.RUnlock()
	if down == nil && s.pg != nil && !s.pg.live.Load() {
		if err := s.Listening(); err != nil {
			return fmt.Errorf("not listening for other replicas' writes: %w", err)
		}
	}
	return down
}

func (s *Store) markDown(why error) {
	s.mu.Lock()
	was := s.down
	if was == nil {
		s.down = why
	}
	s.mu.Unlock()
	if was == nil {
		s.generation.Add(1) // nothing cached survives an outage
		s.log.Error("access store unusable; failing closed until it can be reopened", "file", s.path, "reason", why.Error())
	}
}

// WatchWrites watches the store until ctx ends. On PostgreSQL it listens
// for other replicas' writes (postgres.go), checking the connection every
// keepalive of max(every, 1s)*4. On SQLite, it looks every interval: it notices
// writes by other processes (portero admin, replicas on the same file) by
// the stored generation and drops cached facts; it notices a file replaced
// (another device/inode at the path), deleted or unreadable, fails closed
// at once and reopens the file as soon as one usable is there, dropping
// every cached fact.
func (s *Store) WatchWrites(ctx context.Context, every time.Duration) {
	if s.pg != nil {
		s.listen(ctx, 4*max(every, time.Second))
		return
	}
	var last int64 = -1
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		last = s.check(ctx, last)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// check is one look at the store; last is the generation seen before (-1:
// none), and it returns the one seen now.
func (s *Store) check(ctx context.Context, last int64) int64 {
	if err := checkHeader(s.path); err != nil {
		s.markDown(err)
		return -1
	}
	id, err := statFile(s.path)
	if err != nil {
		s.markDown(err)
		return -1
	}
	s.mu.RLock()
	replaced, down, closed := id != s.file, s.down, s.closed
	s.mu.RUnlock()
	if closed {
		return -1
	}
	if replaced || down != nil {
		if err := s.reopen(ctx, id, replaced); err != nil {
			s.markDown(err)
			return -1
		}
		last = -1
	}
	rdb, _, err := s.pools()
	if err != nil {
		return -1
	}
	var v int64
	if err := rdb.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'generation'`).Scan(&v); err != nil {
		if ctx.Err() == nil && !isBusy(err) {
			s.failed("watch", err)
			if !fileBroken(err) {
				s.markDown(fmt.Errorf("read the store: %w", err))
			}
		}
		return -1
	}
	if last >= 0 && v != last {
		s.generation.Add(1)
	}
	return v
}

// reopen opens the file at the path afresh, checks it can be read and
// swaps it in for the old one, dropping cached facts.
func (s *Store) reopen(ctx context.Context, id fileID, replaced bool) error {
	if replaced {
		// The old file's connections go first: closing, they checkpoint
		// into the old file (not the one now at the path) and remove the
		// -wal and -shm at the path, which are the old file's. Left open,
		// the new file would be read through the old file's WAL.
		s.markDown(fmt.Errorf("the store file %s was replaced; reopening it", s.path))
		s.mu.Lock()
		oldR, oldW := s.rdb, s.wdb
		s.mu.Unlock()
		oldR.Close()
		oldW.Close()
	}
	rdb, wdb, err := openPools(s.path, false)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", s.path, err)
	}
	probe := &Store{path: s.path, d: s.d, rdb: rdb, wdb: wdb, now: s.now, log: s.log}
	err = probe.migrate(ctx)
	if err == nil {
		var ok string
		err = rdb.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&ok)
		if err == nil && ok != "ok" {
			err = errors.New("quick_check: " + ok)
		}
	}
	if err != nil {
		rdb.Close()
		wdb.Close()
		return fmt.Errorf("reopen %s: %w", s.path, err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		rdb.Close()
		wdb.Close()
		return errors.New("closed")
	}
	oldR, oldW, was := s.rdb, s.wdb, s.down
	s.rdb, s.wdb, s.file, s.down = rdb, wdb, id, nil
	s.mu.Unlock()
	s.generation.Add(1) // cached facts came from the old file
	go func() { oldR.Close(); oldW.Close() }()
	if replaced {
		s.log.Warn("access store file replaced; reopened it and dropped cached facts", "file", s.path)
	} else {
		s.log.Info("access store usable again; reopened it", "file", s.path, "was", fmt.Sprint(was))
	}
	return nil
}
