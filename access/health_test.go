package access

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// snapshot copies the store's content to a new file (as an operator's
// backup would be) and returns its path.
func snapshot(t *testing.T, s *Store) string {
	t.Helper()
	to := filepath.Join(t.TempDir(), "backup.db")
	rdb, _, err := s.pools()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rdb.Exec(`VACUUM INTO ?`, to); err != nil {
		t.Fatal(err)
	}
	return to
}

func removeStoreFiles(t *testing.T, path string) {
	t.Helper()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
	}
}

func memberStatus(t *testing.T, r *Resolver[any], user string) (string, error) {
	t.Helper()
	res, _, err := r.Resolve(context.Background(), user, "acme")
	if err != nil {
		return "", err
	}
	if res.Facts == nil || res.Facts.Member == nil {
		return "absent", nil
	}
	return res.Facts.Member.Status, nil
}

// A file replaced under the running store (deleted with its -wal and -shm,
// a copy put back, changed there by another process) is reopened at the
// next look, and cached facts from the old file are dropped.
func TestReplacedFileIsReopened(t *testing.T) {
	s, path := openStore(t)
	ctx := context.Background()
	seed(t, s)
	r := NewResolver[any](s, 10, nil, nil)
	if st, err := memberStatus(t, r, "leo"); st != "active" || err != nil {
		t.Fatalf("before: %s %v", st, err)
	}
	backup := snapshot(t, s)
	other, err := Open(ctx, backup)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.SetMemberStatus(ctx, "acme", "leo", "deactivated"); err != nil {
		t.Fatal(err)
	}
	other.Close()
	removeStoreFiles(t, path)
	if err := os.Rename(backup, path); err != nil {
		t.Fatal(err)
	}
	s.check(ctx, -1)
	if err := s.Health(); err != nil {
		t.Fatalf("after replacement: %v", err)
	}
	if st, err := memberStatus(t, r, "leo"); st != "deactivated" || err != nil {
		t.Fatalf("after replacement the old file's facts were served: %s %v", st, err)
	}
	// Writes go to the new file.
	if _, err := s.SetMemberStatus(ctx, "acme", "leo", "active"); err != nil {
		t.Fatal(err)
	}
	check, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer check.Close()
	if m, err := check.Member(ctx, "acme", "leo"); err != nil || m.Status != "active" {
		t.Fatalf("the write went elsewhere: %+v %v", m, err)
	}
}

// A deleted file fails closed (nothing cached is served, writes refused)
// until a file is put back.
func TestDeletedFileFailsClosedUntilPutBack(t *testing.T) {
	s, path := openStore(t)
	ctx := context.Background()
	seed(t, s)
	r := NewResolver[any](s, 10, nil, nil)
	if _, err := memberStatus(t, r, "leo"); err != nil {
		t.Fatal(err)
	}
	backup := snapshot(t, s)
	removeStoreFiles(t, path)
	s.check(ctx, -1)
	if err := s.Health(); err == nil {
		t.Fatal("a deleted store is healthy")
	}
	if _, err := memberStatus(t, r, "leo"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("facts from a deleted store: %v", err)
	}
	if _, err := s.SetMemberStatus(ctx, "acme", "leo", "deactivated"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("write to a deleted store: %v", err)
	}
	s.check(ctx, -1) // still gone: still down, and nothing created at the path
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) || s.Health() == nil {
		t.Fatalf("after a second look: %v, health %v", err, s.Health())
	}
	if err := os.Rename(backup, path); err != nil {
		t.Fatal(err)
	}
	s.check(ctx, -1)
	if st, err := memberStatus(t, r, "leo"); st != "active" || err != nil {
		t.Fatalf("after the file was put back: %s %v", st, err)
	}
}

// A file corrupted in place fails closed, and recovers on its own when a
// readable file is written back over it.
func TestCorruptedFileRecoversWhenRestored(t *testing.T) {
	s, path := openStore(t)
	ctx := context.Background()
	seed(t, s)
	r := NewResolver[any](s, 10, nil, nil)
	if _, err := memberStatus(t, r, "leo"); err != nil {
		t.Fatal(err)
	}
	rdb, _, _ := s.pools()
	if _, err := rdb.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	garbage := make([]byte, len(good))
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	if err := os.WriteFile(path, garbage, 0o600); err != nil { // same inode
		t.Fatal(err)
	}
	s.check(ctx, -1)
	if err := s.Health(); err == nil {
		t.Fatal("a corrupted store is healthy")
	}
	if _, err := memberStatus(t, r, "leo"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("facts from a corrupted store: %v", err)
	}
	s.check(ctx, -1)
	if s.Health() == nil {
		t.Fatal("recovered while still corrupted")
	}
	if err := os.WriteFile(path, good, 0o600); err != nil {
		t.Fatal(err)
	}
	s.check(ctx, -1)
	if err := s.Health(); err != nil {
		t.Fatalf("not recovered after the file was restored: %v", err)
	}
	if st, err := memberStatus(t, r, "leo"); st != "active" || err != nil {
		t.Fatalf("after restore: %s %v", st, err)
	}
}
