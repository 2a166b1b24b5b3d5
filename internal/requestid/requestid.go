// Package requestid holds the one rule for a client's X-Request-Id, which
// web (the request ID it echoes and logs) and tracing (the span attribute)
// both apply.
package requestid

// Valid reports whether s may be used as a request ID: 1–128 printable
// ASCII characters without spaces.
func Valid(s string) bool {
	if len(s) == 0 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
