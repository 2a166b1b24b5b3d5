package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/taskqueue/taskqueue/internal/testenv"
)

// servedCLI is `taskqueue serve` run in process by run, as main runs it.
type servedCLI struct {
	base           string // scheme://host:port from the "listening on" line
	stdout, stderr *testenv.SyncBuffer
	cancel         context.CancelFunc
	done           chan int
}

// startServe runs `taskqueue serve` with env as the whole environment and
// waits for its "listening on" line. The server is stopped (as by SIGTERM)
// when the test ends, if stop was not called.
func startServe(t *testing.T, env map[string]string) *servedCLI {
	t.Helper()
	return startCLI(t, "serve", env, "listening on ")
}

// startCLI runs the command cmd as startServe runs serve, and waits for
// the line with marker; base is the word after it.
func startCLI(t *testing.T, cmd string, env map[string]string, marker string) *servedCLI {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s := &servedCLI{stdout: &testenv.SyncBuffer{}, stderr: &testenv.SyncBuffer{}, cancel: cancel, done: make(chan int, 1)}
	go func() {
		s.done <- run(ctx, []string{cmd}, strings.NewReader(""), s.stdout, s.stderr, func(k string) string { return env[k] })
	}()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, rest, ok := strings.Cut(s.stdout.String(), marker); ok && strings.Contains(rest, "\n") {
			s.base, _, _ = strings.Cut(strings.TrimSpace(rest), " ")
			return s
		}
		select {
		case code := <-s.done:
			s.done <- code
			t.Fatalf("%s exited with %d before listening; stderr:\n%s", cmd, code, s.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not listen within 60s; stderr:\n%s", cmd, s.stderr.String())
		}
	}
}

// stop cancels serve's context and returns its exit status.
func (s *servedCLI) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	select {
	case code := <-s.done:
		s.done <- code
		return code
	case <-time.After(60 * time.Second):
		t.Fatalf("serve did not stop within 60s; stderr:\n%s", s.stderr.String())
		return -1
	}
}

// testCert is a self-signed certificate for localhost and 127.0.0.1.
type testCert struct {
	cert    *x509.Certificate
	certPEM []byte
	keyPEM  []byte
}

func newTestCert(t *testing.T, cn string) testCert {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return testCert{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		keyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}
}

// files writes c's certificate and key into a new directory and returns
// their paths.
func (c testCert) files(t *testing.T) (certFile, keyFile string) {
	t.Helper()
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	replaceFile(t, certFile, c.certPEM)
	replaceFile(t, keyFile, c.keyPEM)
	return certFile, keyFile
}

// replaceFile writes data to path the way rotation tools do: a new file
// renamed over the old one.
func replaceFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".new"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// httpsClient trusts only the given certificates; it opens a new
// connection (a new handshake) for every request.
func httpsClient(maxVersion uint16, certs ...*x509.Certificate) *http.Client {
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MaxVersion: maxVersion},
			DisableKeepAlives: true,
			ForceAttemptHTTP2: true,
		},
	}
}

// TestServeTLS starts `taskqueue serve` with a certificate made here and
// checks HTTPS (TLS 1.3 only), plain HTTP refused, a WebSocket over wss,
// and a certificate rotation picked up without a restart.
func TestServeTLS(t *testing.T) {
	first := newTestCert(t, "first")
	certFile, keyFile := first.files(t)
	dataDir := t.TempDir()
	env := map[string]string{
		"TASKQUEUE_DATA_DIR": dataDir, "TASKQUEUE_ADDR": "127.0.0.1:0",
		"TASKQUEUE_TLS_CERT": certFile, "TASKQUEUE_TLS_KEY": keyFile,
	}
	s := startServe(t, env)
	if !strings.HasPrefix(s.base, "https://") {
		t.Fatalf("listening line %q is not https", s.base)
	}
	// 127.0.0.1, not localhost: the certificate names both, and the
	// listener is on IPv4 only.
	base := strings.Replace(s.base, "localhost", "127.0.0.1", 1)
	hostPort := strings.TrimPrefix(base, "https://")

	// HTTPS with a client trusting the certificate: TLS 1.3.
	client := httpsClient(0, first.cert)
	resp, err := client.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over HTTPS: %v\n%s", err, s.stderr.String())
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 || resp.ProtoMajor != 2 {
		t.Fatalf("GET /healthz: %d %s, TLS %+v; want 200 over HTTP/2 and TLS 1.3", resp.StatusCode, resp.Proto, resp.TLS)
	}
	if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != "first" {
		t.Fatalf("served certificate %q, want first", got)
	}

	// A client that speaks at most TLS 1.2 is refused in the handshake.
	if resp, err := httpsClient(tls.VersionTLS12, first.cert).Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatalf("a TLS 1.2 client got %d; want a failed handshake", resp.StatusCode)
	}

	// Plain HTTP to the TLS port gets no page.
	plain := &http.Client{Timeout: 30 * time.Second}
	if resp, err := plain.Get("http://" + hostPort + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP to the TLS port answered 200: %s", body)
		}
	}

	// A WebSocket over wss: subscribe, then see an enqueue arrive.
	code, out, stderr := runCLI(t, map[string]string{"TASKQUEUE_DATA_DIR": dataDir}, "token", "--player", "alice")
	if code != 0 {
		t.Fatalf("token: %d %s", code, stderr)
	}
	tok := strings.TrimSpace(out)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "wss://"+hostPort+"/api/ws", &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: client.Transport},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}},
	})
	if err != nil {
		t.Fatalf("wss dial: %v", err)
	}
	defer conn.CloseNow()
	if err := wsjson.Write(ctx, conn, map[string]string{"type": "subscribe", "playerId": "alice"}); err != nil {
		t.Fatal(err)
	}
	readType := func(want string) map[string]any {
		t.Helper()
		for {
			var msg map[string]any
			if err := wsjson.Read(ctx, conn, &msg); err != nil {
				t.Fatalf("wss read, waiting for %q: %v", want, err)
			}
			if msg["type"] == want {
				return msg
			}
			if msg["type"] == "error" {
				t.Fatalf("wss error message: %v", msg)
			}
		}
	}
	readType("subscribed")
	req, _ := http.NewRequest("POST", base+"/api/queue/alice/tasks", strings.NewReader(`{"type":"chop-wood","count":2}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("enqueue over HTTPS: %d", resp.StatusCode)
	}
	if ev := readType("event"); ev["playerId"] != "alice" {
		t.Fatalf("event over wss: %v", ev)
	}
	conn.Close(websocket.StatusNormalClosure, "")

	// Rotation: new files renamed over the old ones are served at the next
	// handshake, with no restart.
	second, third := newTestCert(t, "second"), newTestCert(t, "third")
	replaceFile(t, keyFile, second.keyPEM)
	replaceFile(t, certFile, second.certPEM)
	all := httpsClient(0, first.cert, second.cert, third.cert)
	servedCN := func() string {
		t.Helper()
		resp, err := all.Get(base + "/healthz")
		if err != nil {
			t.Fatalf("GET /healthz during rotation: %v", err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	testenv.WaitFor(t, "the rotated certificate to be served", func() bool { return servedCN() == "second" })
	if !strings.Contains(s.stderr.String(), "TLS certificate reloaded") {
		t.Errorf("no reload in the log:\n%s", s.stderr.String())
	}

	// A rotation that does not load (a key of another certificate) keeps
	// the certificate in use and says why, once.
	replaceFile(t, certFile, third.certPEM) // the key is still second's
	for i := 0; i < 3; i++ {
		if cn := servedCN(); cn != "second" {
			t.Fatalf("with a mismatched pair on disk the server served %q, want second (kept)", cn)
		}
	}
	if n := strings.Count(s.stderr.String(), "do not load"); n != 1 {
		t.Errorf("the failed reload is logged %d times, want once:\n%s", n, s.stderr.String())
	}
	replaceFile(t, keyFile, third.keyPEM)
	testenv.WaitFor(t, "the completed rotation to be served", func() bool { return servedCN() == "third" })

	if code := s.stop(t); code != 0 {
		t.Fatalf("serve exited %d after shutdown; stderr:\n%s", code, s.stderr.String())
	}
}

// TestServeTLSBadFiles: a missing file or files that are not a key pair
// fail serve at start, exit 1, with a message naming the setting, before
// it listens.
func TestServeTLSBadFiles(t *testing.T) {
	dir := t.TempDir()
	a, b := newTestCert(t, "a"), newTestCert(t, "b")
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	aCert, aKey, bKey := write("a.crt", a.certPEM), write("a.key", a.keyPEM), write("b.key", b.keyPEM)
	notPEM := write("junk.crt", []byte("not a certificate\n"))
	for _, tc := range []struct {
		name, cert, key string
		want            []string
	}{
		{"missing cert", filepath.Join(dir, "nope.crt"), aKey, []string{"TASKQUEUE_TLS_CERT", "no such file"}},
		{"missing key", aCert, filepath.Join(dir, "nope.key"), []string{"TASKQUEUE_TLS_KEY", "no such file"}},
		{"key of another certificate", aCert, bKey, []string{"do not hold a valid", "private key does not match"}},
		{"not PEM", notPEM, aKey, []string{"do not hold a valid", "TASKQUEUE_TLS_CERT"}},
		{"key and cert swapped", aKey, aCert, []string{"do not hold a valid"}},
		{"only the cert", aCert, "", []string{"TASKQUEUE_TLS_CERT and TASKQUEUE_TLS_KEY go together"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCLI(t, map[string]string{
				"TASKQUEUE_DATA_DIR": t.TempDir(), "TASKQUEUE_ADDR": "127.0.0.1:0",
				"TASKQUEUE_TLS_CERT": tc.cert, "TASKQUEUE_TLS_KEY": tc.key,
			}, "serve")
			if code != exitFail {
				t.Fatalf("exit %d, want 1; stderr %q", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if strings.Contains(out, "listening") {
				t.Errorf("serve listened before failing: %q", out)
			}
		})
	}
}

// `taskqueue processor` serves its probes over TLS when the deployment has
// a certificate, not on a plain-HTTP port beside it.
func TestProcessorProbesTLS(t *testing.T) {
	c := newTestCert(t, "probes")
	certFile, keyFile := c.files(t)
	env := map[string]string{
		"TASKQUEUE_DATA_DIR": t.TempDir(), "TASKQUEUE_ADDR": "127.0.0.1:0",
		"TASKQUEUE_TLS_CERT": certFile, "TASKQUEUE_TLS_KEY": keyFile,
	}
	p := startCLI(t, "processor", env, "probes on ")
	defer func() {
		if code := p.stop(t); code != 0 {
			t.Errorf("processor exited with %d; stderr:\n%s", code, p.stderr.String())
		}
	}()
	base := p.base
	if !strings.HasPrefix(base, "https://") {
		t.Fatalf("probes on %q, want https", base)
	}
	base = strings.Replace(base, "localhost", "127.0.0.1", 1)
	resp, err := httpsClient(0, c.cert).Get(base + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over HTTPS: %v\n%s", err, p.stderr.String())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("GET /healthz: %d, TLS %+v; want 200 over TLS 1.3", resp.StatusCode, resp.TLS)
	}
	// Plain HTTP on the same port gets no probe answer.
	if resp, err := http.Get(strings.Replace(base, "https://", "http://", 1) + "/healthz"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatalf("plain HTTP got 200 %q", body)
		}
	}
}
