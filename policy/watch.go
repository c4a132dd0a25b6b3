package policy

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DirSource returns a source reading the policy directory dir.
func DirSource(dir string) Source {
	return Source{Name: dir, FS: os.DirFS(dir)}
}

// reloadSettle is how long the watcher waits after the last file event before
// reloading, so an editor's write-rename-chmod burst or a `cp -r` of a whole
// bundle is loaded once, complete.
const reloadSettle = 100 * time.Millisecond

// Watch starts watching dir and returns once every watch is in place; from
// then until ctx ends, any change under dir reloads the policy, tests
// included when the engine's loads are test-gated. Failed reloads keep the
// last good policy (see Reload). done is closed when watching stops. A
// shadow policy is watched through its own engine (Shadow().Watch).
func (e *Engine) Watch(ctx context.Context, dir string) (done <-chan struct{}, err error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, fmt.Errorf("watch policy %s: %w", dir, err)
	}
	if err := addTree(w, dir); err != nil {
		w.Close()
		return nil, fmt.Errorf("watch policy %s: %w", dir, err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		defer w.Close()
		e.watchLoop(ctx, w, dir)
	}()
	return stopped, nil
}

func (e *Engine) watchLoop(ctx context.Context, w *fsnotify.Watcher, dir string) {
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() {
					_ = addTree(w, ev.Name)
				}
			}
			if strings.HasPrefix(filepath.Base(ev.Name), ".") {
				continue
			}
			timer.Reset(reloadSettle)
		case err, ok := <-w.Errors:
			if !ok {
				return
			}
			e.log.Warn(e.role+" watcher error", "source", dir, "error", err.Error())
		case <-timer.C:
			_ = e.Reload(ctx) // Reload logs and counts its own failure, failing tests included
		}
	}
}

func addTree(w *fsnotify.Watcher, root string) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			return nil
		}
		if p != root && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		return w.Add(p)
	})
}
