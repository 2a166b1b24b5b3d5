package requestid

import (
	"strings"
	"testing"
)

func TestValid(t *testing.T) {
	for s, want := range map[string]bool{
		"abc-123":                true,
		"0190a1b2-c3d4-7e5f":     true,
		strings.Repeat("x", 128): true,
		"":                       false,
		strings.Repeat("x", 129): false,
		"has space":              false,
		"tab\there":              false,
		"newline\n":              false,
		"del\x7f":                false,
		"é":                      false,
	} {
		if got := Valid(s); got != want {
			t.Errorf("Valid(%q) = %v, want %v", s, got, want)
		}
	}
}
