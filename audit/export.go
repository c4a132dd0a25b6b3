package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"
)

// Source is the trail as the export needs it.
type Source interface {
	Trail
	// AuditHash is the hash of record seq, "" when the trail has none.
	AuditHash(ctx context.Context, seq int64) (string, error)
	// ImportAudit appends records sealed elsewhere (an audit log written
	// before the trail moved into the store) to an empty trail, verbatim.
	ImportAudit(ctx context.Context, raws [][]byte) error
}

// OpenExport opens the JSON lines export at path and brings it level with
// the trail: records the file lacks are copied from the store. A file
// written before the trail moved into the store (an older Portero's audit
// log) is imported into an empty trail first, so the chain continues
// unbroken. A file that is not a prefix of the trail (another store's, or
// damaged) is kept aside as path.<time>.orphaned and a new export begun.
// A cut-short last line (a crash while mirroring) is dropped and rewritten.
func OpenExport(ctx context.Context, path string, src Source, log *slog.Logger) (*Log, error) {
	raw, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("audit export: %w", err)
	}
	s, serr := scan(bytes.NewReader(raw))
	if serr != nil && !errors.As(serr, new(*BreakError)) {
		return nil, fmt.Errorf("audit export %s: %w", path, serr)
	}
	keep := s.end // the intact prefix
	if seq, hash := s.chain.Head(); seq > 0 {
		have, err := src.AuditHash(ctx, seq)
		if err != nil {
			return nil, fmt.Errorf("audit export: %w", err)
		}
		switch {
		case have == hash:
		case have == "" && s.chain.n == int(seq):
			if head, _ := src.AuditHash(ctx, 1); head == "" {
				if err := importFile(ctx, src, raw[:keep]); err != nil {
					return nil, fmt.Errorf("audit export: import %s into the store: %w", path, err)
				}
				log.Info("audit log imported into the access store; the file is now its export", "file", path, "records", seq)
				break
			}
			fallthrough
		default:
			aside := fmt.Sprintf("%s.%s.orphaned", path, time.Now().UTC().Format("20060102T150405Z"))
			if err := os.Rename(path, aside); err != nil {
				return nil, fmt.Errorf("audit export: %w", err)
			}
			log.Warn("audit export did not match the store's trail; kept it aside and began a new export", "file", path, "kept_as", aside)
			keep, s = 0, scanned{}
		}
	}
	if serr != nil && keep > 0 {
		log.Warn("audit export ended in a damaged record; rewriting it from the store", "file", path, "break", serr.Error())
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("audit export: %w", err)
	}
	if err := f.Truncate(keep); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit export: %w", err)
	}
	if _, err := f.Seek(0, io.SeekEnd); err != nil {
		f.Close()
		return nil, fmt.Errorf("audit export: %w", err)
	}
	l := &Log{f: f, path: path, chain: s.chain, now: time.Now}
	if err := l.CatchUp(ctx, src); err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

func importFile(ctx context.Context, src Source, raw []byte) error {
	var raws [][]byte
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		raws = append(raws, bytes.Clone(sc.Bytes()))
	}
	if err := sc.Err(); err != nil {
		return err
	}
	return src.ImportAudit(ctx, raws)
}

// CatchUp copies the records the file lacks from the trail and syncs the
// file.
func (l *Log) CatchUp(ctx context.Context, t Trail) error {
	if l.f == nil {
		return nil
	}
	head, _ := l.Head()
	var batch []Record
	flush := func() error {
		err := l.Write(batch...)
		batch = batch[:0]
		return err
	}
	err := t.AuditScan(ctx, head, func(raw []byte) error {
		var rec Record
		if err := json.Unmarshal(raw, &rec); err != nil {
			return fmt.Errorf("record after %d: %w", head, err)
		}
		batch = append(batch, rec)
		if len(batch) == 1000 {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err != nil {
		return fmt.Errorf("audit export %s: catch up: %w", l.path, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Sync()
}

// Mirror appends records just committed to the trail; when some are
// missing (written by another process, or a failed write) it copies them
// from the trail. The export is a convenience: a failure is logged, never
// returned, and made good by the next catch-up.
func (l *Log) Mirror(ctx context.Context, t Trail, log *slog.Logger, recs ...Record) {
	if l.f == nil {
		return
	}
	err := l.Write(recs...)
	if errors.As(err, new(*GapError)) {
		err = l.CatchUp(ctx, t)
	}
	if err != nil {
		log.Warn("audit export lags the store; it is caught up at the next checkpoint or start", "file", l.path, "error", err.Error())
	}
}
