package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/portero-gateway/portero/audit"
)

// cmdAudit: portero audit verify FILE.
func cmdAudit(args []string, stdout io.Writer) error {
	if len(args) != 2 || args[0] != "verify" {
		return errors.New("audit: usage: portero audit verify FILE")
	}
	f, err := os.Open(args[1])
	if err != nil {
		return fmt.Errorf("audit: %w", err)
	}
	defer f.Close()
	n, err := audit.Verify(f)
	if err != nil {
		var be *audit.BreakError
		if errors.As(err, &be) {
			return fmt.Errorf("audit: %s: the chain is broken at %w (%d records before it verify)", args[1], be, n)
		}
		return fmt.Errorf("audit: %s: %w", args[1], err)
	}
	fmt.Fprintf(stdout, "%s: %d records, hash chain intact\n", args[1], n)
	return nil
}
