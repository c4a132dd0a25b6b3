package audit_test

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/portero-gateway/portero/access"
	"github.com/portero-gateway/portero/audit"
)

var quiet = slog.New(slog.DiscardHandler)

func openStore(t *testing.T) *access.Store {
	t.Helper()
	s, err := access.Open(context.Background(), filepath.Join(t.TempDir(), "portero.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

// An audit log written by an older Portero (the file was the trail) is
// imported into an empty store at the first start, and the file continues
// as the export of the one chain.
func TestExportImportsAnOlderAuditLog(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	old, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := old.Append(audit.Record{Event: audit.EventStart, ID: "ma_1", Admin: "sam", Tenant: "acme"}); err != nil {
			t.Fatal(err)
		}
	}
	old.Close()
	s := openStore(t)
	l, err := audit.OpenExport(ctx, path, s, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	s.OnCommit(func(recs []audit.Record) { l.Mirror(ctx, s, quiet, recs...) })
	if _, err := s.CreateTenant(ctx, access.Tenant{ID: "acme", Name: "Acme"}); err != nil {
		t.Fatal(err)
	}
	if sum, err := audit.VerifyTrail(ctx, s, nil); err != nil || sum.Records != 4 {
		t.Fatalf("store: %+v %v", sum, err)
	}
	f, _ := os.Open(path)
	defer f.Close()
	if n, err := audit.Verify(f); err != nil || n != 4 {
		t.Fatalf("export: %d %v", n, err)
	}
}

// A crash while mirroring leaves a cut-short line: it is rewritten from
// the store. Records written by another process are caught up. A file
// that is not this store's trail is kept aside.
func TestExportCatchesUpAndRepairs(t *testing.T) {
	ctx := context.Background()
	s := openStore(t)
	for _, id := range []string{"a", "b", "c"} {
		if _, err := s.CreateTenant(ctx, access.Tenant{ID: id, Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.OpenExport(ctx, path, s, quiet)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	raw, _ := os.ReadFile(path)
	_ = os.WriteFile(path, raw[:len(raw)-20], 0o600) // cut the last line short
	if _, err := s.CreateTenant(ctx, access.Tenant{ID: "d", Name: "d"}); err != nil {
		t.Fatal(err)
	}
	l, err = audit.OpenExport(ctx, path, s, quiet)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if got := lines(t, path); len(got) != 4 || !strings.Contains(got[3], `"object":"tenant d"`) {
		t.Fatalf("after repair: %v", got)
	}
	// Another store's trail at the same path is kept aside.
	other := openStore(t)
	if _, err := other.CreateTenant(ctx, access.Tenant{ID: "z", Name: "z"}); err != nil {
		t.Fatal(err)
	}
	l, err = audit.OpenExport(ctx, path, other, quiet)
	if err != nil {
		t.Fatal(err)
	}
	l.Close()
	if got := lines(t, path); len(got) != 1 || !strings.Contains(got[0], `"object":"tenant z"`) {
		t.Fatalf("new export: %v", got)
	}
	aside, _ := filepath.Glob(path + ".*.orphaned")
	if len(aside) != 1 || len(lines(t, aside[0])) != 4 {
		t.Fatalf("kept aside: %v", aside)
	}
}
