package policy

import (
	"context"
	"maps"
)

// A policy need not come from a directory: an OPA bundle server hands the
// gateway its files (policy/opamgmt). Such files are offered to the engine,
// which loads them exactly as it reloads a directory: read once, compiled
// completely, test-gated, swapped atomically; refused, the policy being
// served stays.

// FilesSource is a source made of files held in memory (an OPA bundle's
// modules and data): slash-separated names relative to the bundle's root,
// to their bytes.
func FilesSource(name string, files map[string][]byte) Source {
	return Source{Name: name, FS: memFS(maps.Clone(files))}
}

// Offer loads files as the engine's new policy, as Reload loads its
// source, and logs the outcome with the extra attributes (the bundle's
// revision, say). When they load they become the source later reloads
// read; refused, the engine keeps both the policy it serves and its source.
func (e *Engine) Offer(ctx context.Context, files map[string][]byte, extra ...any) error {
	e.reloadMu.Lock()
	defer e.reloadMu.Unlock()
	offered := memFS(maps.Clone(files))
	if err := e.reloadLocked(ctx, offered, extra); err != nil {
		return err
	}
	e.source.FS = offered
	return nil
}
