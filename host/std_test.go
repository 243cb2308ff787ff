package host_test

// The driver under the standard library: net/http, crypto/tls, io.Copy.

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"io"
	"math/big"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHTTP(t *testing.T) {
	e := newEnv(t, nil)
	ln, err := e.b.Listen("tcp", "10.0.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hello", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello from "+r.Host+" to "+r.RemoteAddr[:strings.LastIndexByte(r.RemoteAddr, ':')])
	})
	mux.HandleFunc("POST /sum", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, err := io.Copy(h, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		io.WriteString(w, hex.EncodeToString(h.Sum(nil))+" "+strconv.FormatInt(n, 10))
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	defer func() {
		srv.Close()
		if err := <-served; err != http.ErrServerClosed {
			t.Errorf("Serve returned %v, want http.ErrServerClosed", err)
		}
	}()

	tr := &http.Transport{DialContext: e.a.DialContext}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}

	for range 3 { // the later requests reuse the kept-alive connection
		resp, err := client.Get("http://10.0.0.2/hello")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || string(body) != "hello from 10.0.0.2 to 10.0.0.1" {
			t.Fatalf("GET: %d %q %v", resp.StatusCode, body, err)
		}
	}
	payload := pattern(1<<20, 5)
	sum := sha256.Sum256(payload)
	resp, err := client.Post("http://10.0.0.2/sum", "application/octet-stream", bytes.NewReader(payload))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if want := hex.EncodeToString(sum[:]) + " 1048576"; err != nil || string(body) != want {
		t.Fatalf("POST of 1 MiB: %q %v, want %q", body, err, want)
	}
}

// selfSigned returns a TLS certificate for name made for the test.
func selfSigned(t *testing.T, name string) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		DNSNames:     []string{name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func TestTLS(t *testing.T) {
	e := newEnv(t, nil)
	cert, pool := selfSigned(t, "tcpeng.test")
	rawClient, rawServer := e.pair(t)
	server := tls.Server(rawServer, &tls.Config{Certificates: []tls.Certificate{cert}})
	client := tls.Client(rawClient, &tls.Config{RootCAs: pool, ServerName: "tcpeng.test"})

	up, down := pattern(1<<20, 6), pattern(1<<20, 7)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the server: read the request to EOF, answer, close
		defer wg.Done()
		got, err := io.ReadAll(server)
		if err != nil || !bytes.Equal(got, up) {
			t.Errorf("TLS server read %d bytes, %v", len(got), err)
			return
		}
		if _, err := server.Write(down); err != nil {
			t.Error(err)
		}
		server.Close()
	}()
	if err := client.Handshake(); err != nil {
		t.Fatal(err)
	}
	if st := client.ConnectionState(); st.Version != tls.VersionTLS13 || !st.HandshakeComplete {
		t.Fatalf("TLS state: version %x, complete %v", st.Version, st.HandshakeComplete)
	}
	if _, err := client.Write(up); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil { // close_notify, then the TCP half-close
		t.Fatal(err)
	}
	got, err := io.ReadAll(client)
	if err != nil || !bytes.Equal(got, down) {
		t.Fatalf("TLS client read %d bytes, %v", len(got), err)
	}
	wg.Wait()
	client.Close()
}

func TestIOCopy(t *testing.T) {
	e := newEnv(t, nil)
	client, server := e.pair(t)
	up, down := pattern(3<<20+17, 8), pattern(5<<20+3, 9)
	var wg sync.WaitGroup
	var gotUp, gotDown bytes.Buffer
	copyAll := func(dst io.Writer, src net.Conn) {
		defer wg.Done()
		if _, err := io.Copy(dst, src); err != nil {
			t.Error(err)
		}
	}
	send := func(c interface {
		io.Writer
		CloseWrite() error
	}, data []byte) {
		defer wg.Done()
		if _, err := io.Copy(c, bytes.NewReader(data)); err != nil {
			t.Error(err)
		}
		c.CloseWrite()
	}
	wg.Add(4)
	go copyAll(&gotUp, server)
	go copyAll(&gotDown, client)
	go send(client, up)
	go send(server, down)
	wg.Wait()
	if !bytes.Equal(gotUp.Bytes(), up) || !bytes.Equal(gotDown.Bytes(), down) {
		t.Fatalf("io.Copy: got %d and %d bytes, want %d and %d", gotUp.Len(), gotDown.Len(), len(up), len(down))
	}
}
