// Package testport hands tests loopback addresses for the processes they
// start (a gateway binary, an IdP, a front proxy).
//
// A port taken from a listener on ":0" and closed again comes from the
// kernel's ephemeral range, the same range every outgoing connection on the
// machine draws from, and two such calls may return the same port. The
// ports here come from below that range, each checked free by listening on
// it, and all of one call's listeners stay open until every port is chosen,
// so one call never returns a port twice and no client connection takes one
// before the process that is meant to listen on it starts.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
)

// low and high bound the ports handed out: above the well-known and
// registered ports most services use, below Linux's default ephemeral range
// (32768–60999).
const low, high = 20000, 32000

// Addrs returns n distinct free addresses "127.0.0.1:port".
func Addrs(t testing.TB, n int) []string {
	t.Helper()
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	addrs := make([]string, 0, n)
	for tries := 0; len(addrs) < n; tries++ {
		if tries > 1000 {
			t.Fatalf("testport: no free port in %d–%d after %d tries", low, high, tries)
		}
		addr := fmt.Sprintf("127.0.0.1:%d", low+rand.IntN(high-low))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue // taken: by another test, or by a service of the machine
		}
		held = append(held, l)
		addrs = append(addrs, addr)
	}
	return addrs
}

// Addr returns one free address "127.0.0.1:port".
func Addr(t testing.TB) string {
	t.Helper()
	return Addrs(t, 1)[0]
}
