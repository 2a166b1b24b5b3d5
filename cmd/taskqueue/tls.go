package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"sync"
	"time"
)

// certReloader hands the server's certificate to every TLS handshake and
// re-reads the PEM files when either of them changed on disk (another
// modification time or size, or another file, as after a rename or a
// symlink swap), so an operator rotates a certificate by replacing the
// files: no restart and no signal. The check is two stats per handshake.
//
// A rotation that cannot be loaded (a key not yet matching the new
// certificate while the files are being written, a truncated file) keeps
// the certificate in use, is logged once, and is tried again at the next
// handshake after the files change again.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger // set before the server serves

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   certStamp // the files' state when cert was read
	badSeen certStamp // the files' state of the last failed reload, logged once

	missingLogged bool // a file was missing at the last handshake, logged once
}

// certStamp is what tells that a file changed.
type certStamp struct{ cert, key os.FileInfo }

func sameFileState(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

func (s certStamp) equal(o certStamp) bool {
	return sameFileState(s.cert, o.cert) && sameFileState(s.key, o.key)
}

// newCertReloader reads the certificate and key files, failing with a
// message naming the setting when a file is missing or unreadable or the
// two do not hold a valid key pair.
func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: slog.New(slog.DiscardHandler)}
	st, err := r.statFiles()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.stamp = cert, st
	return r, nil
}

func (r *certReloader) statFiles() (certStamp, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return certStamp{}, fmt.Errorf("TASKQUEUE_TLS_CERT: %w", err)
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return certStamp{}, fmt.Errorf("TASKQUEUE_TLS_KEY: %w", err)
	}
	return certStamp{c, k}, nil
}

// load reads and checks the pair.
func (r *certReloader) load() (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return nil, fmt.Errorf("TASKQUEUE_TLS_CERT: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("TASKQUEUE_TLS_KEY: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("TASKQUEUE_TLS_CERT %s and TASKQUEUE_TLS_KEY %s do not hold a valid PEM certificate and its private key: %w", r.certFile, r.keyFile, err)
	}
	if cert.Leaf == nil {
		return nil, errors.New("TASKQUEUE_TLS_CERT: the certificate could not be parsed")
	}
	return &cert, nil
}

// describe returns log attributes of a certificate.
func describe(c *tls.Certificate) []any {
	l := c.Leaf
	return []any{"subject", l.Subject.String(), "dns_names", l.DNSNames, "not_after", l.NotAfter.UTC().Format(time.RFC3339)}
}

// logLoaded logs the certificate in use, warning when it is expired or not
// yet valid (clients will refuse it; the server serves it anyway).
func (r *certReloader) logLoaded(msg string, c *tls.Certificate) {
	attrs := append([]any{"cert", r.certFile}, describe(c)...)
	now := time.Now()
	switch {
	case now.After(c.Leaf.NotAfter):
		r.log.Warn(msg+"; the certificate has EXPIRED: clients will refuse it", attrs...)
	case now.Before(c.Leaf.NotBefore):
		r.log.Warn(msg+"; the certificate is not valid yet: clients will refuse it", append(attrs, "not_before", c.Leaf.NotBefore.UTC().Format(time.RFC3339))...)
	default:
		r.log.Info(msg, attrs...)
	}
}

// GetCertificate is tls.Config.GetCertificate: the current certificate,
// re-read first when the files changed.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st, err := r.statFiles()
	if err != nil {
		// A file is missing for a moment (being replaced): keep serving.
		if !r.missingLogged {
			r.log.Warn("TLS certificate files unreadable; serving the certificate loaded before", "err", err)
			r.missingLogged = true
		}
		return r.cert, nil
	}
	r.missingLogged = false
	if st.equal(r.stamp) || st.equal(r.badSeen) {
		return r.cert, nil
	}
	cert, err := r.load()
	if err != nil {
		r.badSeen = st
		r.log.Warn("TLS certificate files changed but do not load; serving the certificate loaded before until they change again", "err", err)
		return r.cert, nil
	}
	r.cert, r.stamp, r.badSeen = cert, st, certStamp{}
	r.logLoaded("TLS certificate reloaded", cert)
	return r.cert, nil
}

// tlsConfig is the server's TLS configuration: TLS 1.3 at least, the
// certificate from r.
func (r *certReloader) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: r.GetCertificate}
}

// hstsMaxAge is the max-age of Strict-Transport-Security: a year, the
// value browsers' preload lists ask for.
const hstsMaxAge = "max-age=31536000; includeSubDomains"

// hsts makes every answer over HTTPS tell browsers to use HTTPS only
// (Strict-Transport-Security): set only when the server speaks TLS itself,
// since a plain-HTTP server cannot know that a proxy in front speaks it.
func hsts(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", hstsMaxAge)
		h.ServeHTTP(w, r)
	})
}
