package web

import "testing"

var acceptsEncodingCases = []struct {
	header, coding string
	want           bool
}{
	{"", "br", false},
	{"gzip, deflate, br", "br", true},
	{"gzip, deflate, br", "gzip", true},
	{"gzip", "br", false},
	{"BR", "br", true},
	{"br;q=0", "br", false},
	{"br;q=0.0, gzip", "br", false},
	{"br;q=0.5", "br", true},
	{"br ; q=1", "br", true},
	{"*", "br", true},
	{"*;q=0", "gzip", false},
	{"*, br;q=0", "br", false},
	{"br;q=0, *", "br", false},
	{"identity", "gzip", false},
}

func TestAcceptsEncoding(t *testing.T) {
	for _, c := range acceptsEncodingCases {
		if got := acceptsEncoding(c.header, c.coding); got != c.want {
			t.Errorf("acceptsEncoding(%q, %q) = %v, want %v", c.header, c.coding, got, c.want)
		}
	}
}
