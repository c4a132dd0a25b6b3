package audit

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	exp := time.Date(2026, 11, 23, 15, 0, 0, 0, time.UTC)
	for i := range n {
		if _, err := l.Append(Record{Event: EventStart, ID: "ma_" + string(rune('a'+i)), Admin: "sam", Tenant: "acme",
			Reason: "customer ticket <42> \"login broken\"", Mode: "full", Expires: &exp}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	return path
}

func verifyFile(t *testing.T, path string) (int, error) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return Verify(f)
}

func TestChainVerifiesAndContinuesAfterReopen(t *testing.T) {
	path := writeLog(t, 3)
	l, err := Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	rec, err := l.Append(Record{Event: EventEnd, ID: "ma_a", Admin: "sam", Tenant: "acme", By: "sam"})
	if err != nil || rec.Seq != 4 {
		t.Fatalf("append after reopen: %+v %v", rec, err)
	}
	l.Close()
	if n, err := verifyFile(t, path); err != nil || n != 4 {
		t.Fatalf("verify: %d records, %v", n, err)
	}
}

// Every kind of tampering is named at the record it hits.
func TestTamperingIsFoundAtTheRecord(t *testing.T) {
	cases := map[string]struct {
		edit     func(lines []string) []string
		line     int
		contains string
	}{
		"edited reason": {func(l []string) []string {
			l[1] = strings.Replace(l[1], "login broken", "routine check", 1)
			return l
		}, 2, "was edited"},
		"edited and rehashed": {func(l []string) []string {
			// A forger who recomputes the edited record's own hash still
			// breaks the next record's link.
			var rec Record
			mustUnmarshal(t, l[1], &rec)
			rec.Admin = "someone-else"
			line, _ := seal(&rec)
			l[1] = string(line)
			return l
		}, 3, "prev hash"},
		"removed record": {func(l []string) []string { return append(l[:1], l[2:]...) }, 2, "prev hash"},
		"reordered":      {func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, 2, "prev hash"},
		"not json":       {func(l []string) []string { l[2] = "{oops"; return l }, 3, "not a valid audit record"},
		"extra field":    {func(l []string) []string { l[0] = strings.Replace(l[0], `{"seq"`, `{"x":1,"seq"`, 1); return l }, 1, "not a valid audit record"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			path := writeLog(t, 4)
			raw, _ := os.ReadFile(path)
			lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
			lines = c.edit(lines)
			_ = os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
			_, err := verifyFile(t, path)
			var be *BreakError
			if !errors.As(err, &be) || be.Line != c.line || !strings.Contains(be.Error(), c.contains) {
				t.Fatalf("got %v, want a break at line %d mentioning %q", err, c.line, c.contains)
			}
		})
	}
}

func TestTruncatedLastRecord(t *testing.T) {
	path := writeLog(t, 2)
	raw, _ := os.ReadFile(path)
	_ = os.WriteFile(path, raw[:len(raw)-10], 0o600)
	_, err := verifyFile(t, path)
	var be *BreakError
	if !errors.As(err, &be) || be.Line != 2 {
		t.Fatalf("truncated: %v", err)
	}
	// Opening a broken log reports the break but still gives a usable log.
	l, err := Open(path)
	if l == nil || !errors.As(err, &be) {
		t.Fatalf("open broken log: %v %v", l, err)
	}
	l.Close()
}

func TestEmptyLogVerifies(t *testing.T) {
	if n, err := Verify(bytes.NewReader(nil)); n != 0 || err != nil {
		t.Fatalf("empty: %d %v", n, err)
	}
}

func mustUnmarshal(t *testing.T, s string, v *Record) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatal(err)
	}
}
