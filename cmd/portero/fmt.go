package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/portero-gateway/portero/policy"
)

// cmdFmt formats Rego files as OPA's formatter does: like gofmt, it prints
// the formatted source of one file, lists the files whose formatting
// differs (-l, exit status 1 when any does) or rewrites them (-w).
func cmdFmt(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fmt", flag.ContinueOnError)
	list := fs.Bool("l", false, "list files whose formatting differs (exit status 1 when any does)")
	write := fs.Bool("w", false, "rewrite files in place")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: portero fmt [-l] [-w] FILE_OR_DIR...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return flag.ErrHelp
	}
	files, err := regoFiles(fs.Args())
	if err != nil {
		return err
	}
	var differ []string
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		out, err := policy.Format(f, src)
		if err != nil {
			return err
		}
		switch {
		case *write:
			if !bytes.Equal(out, src) {
				if err := os.WriteFile(f, out, 0o644); err != nil {
					return err
				}
				fmt.Fprintln(stdout, f)
			}
		case *list:
			if !bytes.Equal(out, src) {
				differ = append(differ, f)
				fmt.Fprintln(stdout, f)
			}
		default:
			_, _ = stdout.Write(out)
		}
	}
	if len(differ) > 0 {
		return fmt.Errorf("%d file(s) not formatted: portero fmt -w %s", len(differ), strings.Join(fs.Args(), " "))
	}
	return nil
}

// regoFiles expands directories to the .rego files beneath them.
func regoFiles(paths []string) ([]string, error) {
	var files []string
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		if !info.IsDir() {
			files = append(files, p)
			continue
		}
		err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() && strings.HasSuffix(path, ".rego") {
				files = append(files, path)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	if len(files) == 0 {
		return nil, errors.New("no .rego files in " + strings.Join(paths, ", "))
	}
	return files, nil
}
