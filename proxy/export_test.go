package proxy

// Hooks for the external tests (package proxy_test): the header rules the
// hostile tables check the upstream against.

// NormalizeHeaderName is the sanitize stage's one spelling of a header
// name (lower case, "_" as "-").
func NormalizeHeaderName(name string) string { return normalizeHeaderName(name) }

// UpstreamControlledName says whether a normalised header name is one a
// client must never set or remove (Portero's own, impersonation, override
// headers), for an assertion header name.
func UpstreamControlledName(assertionHeader, normalized string) bool {
	return newReservedHeaders(assertionHeader).controlled(normalized)
}
