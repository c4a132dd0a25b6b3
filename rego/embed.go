// Package rego embeds Portero's default policy bundle: the .rego modules, the
// data documents beside them and their tests. The gateway serves it when
// gateway.yaml names no policy directory.
package rego

import "embed"

// Bundle holds the default policy files.
//
//go:embed *.rego *.json
var Bundle embed.FS
