package web_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"image/png"
	"io"
	"strings"
	"testing"

	"github.com/taskqueue/taskqueue/app/apptest"
)

// The app's files are served precompressed by Accept-Encoding (brotli
// first, then gzip, else as they are), always with Vary: Accept-Encoding,
// and the manifest with its media type, an id and a maskable icon.
func TestWebAppPrecompressed(t *testing.T) {
	c := newClient(t, apptest.SQLite(t))
	plain := c.do(req{method: "GET", path: "/", headers: map[string]string{"Accept-Encoding": "identity"}})
	i := bytes.Index(plain.body, []byte("/assets/"))
	if plain.status != 200 || i < 0 {
		t.Fatalf("/: %d %s", plain.status, plain.body)
	}
	script := string(plain.body[i : i+bytes.IndexAny(plain.body[i:], `"'`)])
	for _, path := range []string{"/", script, "/manifest.webmanifest", "/sw.js"} {
		raw := c.do(req{method: "GET", path: path, headers: map[string]string{"Accept-Encoding": "identity"}})
		if raw.status != 200 || raw.header.Get("Content-Encoding") != "" || !strings.Contains(raw.header.Get("Vary"), "Accept-Encoding") {
			t.Fatalf("%s as is: %d, Content-Encoding %q, Vary %q", path, raw.status, raw.header.Get("Content-Encoding"), raw.header.Get("Vary"))
		}
		br := c.do(req{method: "GET", path: path, headers: map[string]string{"Accept-Encoding": "gzip, deflate, br"}})
		if br.header.Get("Content-Encoding") != "br" || len(br.body) >= len(raw.body) || br.header.Get("Content-Type") != raw.header.Get("Content-Type") ||
			!strings.Contains(br.header.Get("Vary"), "Accept-Encoding") {
			t.Errorf("%s with br: Content-Encoding %q, %d bytes (plain %d), Content-Type %q (plain %q), Vary %q", path,
				br.header.Get("Content-Encoding"), len(br.body), len(raw.body), br.header.Get("Content-Type"), raw.header.Get("Content-Type"), br.header.Get("Vary"))
		}
		gz := c.do(req{method: "GET", path: path, headers: map[string]string{"Accept-Encoding": "gzip"}})
		if gz.header.Get("Content-Encoding") != "gzip" {
			t.Fatalf("%s with gzip: Content-Encoding %q", path, gz.header.Get("Content-Encoding"))
		}
		zr, err := gzip.NewReader(bytes.NewReader(gz.body))
		if err != nil {
			t.Fatal(err)
		}
		if got, err := io.ReadAll(zr); err != nil || !bytes.Equal(got, raw.body) {
			t.Errorf("%s: the gzip form does not decompress to the file (%v)", path, err)
		}
		if no := c.do(req{method: "GET", path: path, headers: map[string]string{"Accept-Encoding": "br;q=0, gzip;q=0"}}); no.header.Get("Content-Encoding") != "" {
			t.Errorf("%s: %q served to a client that refuses it", path, no.header.Get("Content-Encoding"))
		}
	}

	m := c.do(req{method: "GET", path: "/manifest.webmanifest", headers: map[string]string{"Accept-Encoding": "identity"}})
	if ct := m.header.Get("Content-Type"); ct != "application/manifest+json" {
		t.Errorf("manifest Content-Type %q", ct)
	}
	var manifest struct {
		ID    string `json:"id"`
		Icons []struct{ Src, Purpose string }
	}
	if err := json.Unmarshal(m.body, &manifest); err != nil {
		t.Fatal(err)
	}
	maskable := ""
	for _, icon := range manifest.Icons {
		if strings.Contains(icon.Purpose, "maskable") {
			maskable = icon.Src
		}
	}
	if manifest.ID == "" || maskable == "" {
		t.Fatalf("manifest id %q, maskable icon %q", manifest.ID, maskable)
	}
	r := c.do(req{method: "GET", path: maskable})
	if r.status != 200 || r.header.Get("Content-Type") != "image/png" {
		t.Fatalf("maskable icon %s: %d %q", maskable, r.status, r.header.Get("Content-Type"))
	}
	// Really maskable: a launcher crops it to its own shape, so every pixel,
	// corners included, is opaque.
	img, err := png.Decode(bytes.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if _, _, _, a := img.At(x, y).RGBA(); a != 0xffff {
				t.Fatalf("maskable icon %s: pixel (%d, %d) is not opaque (alpha %d)", maskable, x, y, a>>8)
			}
		}
	}
}
