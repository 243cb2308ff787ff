package host_test

// net.Conn conformance: the behaviours the net package documents for every
// Conn, checked on a pair of driver connections. (golang.org/x/net/nettest
// checks the same contract; it is not a dependency of tcpeng, so these checks
// are written here.)

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"
)

func TestConformance(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, c1, c2 net.Conn)
	}{
		{"BasicIO", confBasicIO},
		{"PingPong", confPingPong},
		{"RacyRead", confRacyRead},
		{"RacyWrite", confRacyWrite},
		{"PastTimeout", confPastTimeout},
		{"PresentTimeout", confPresentTimeout},
		{"FutureTimeout", confFutureTimeout},
		{"CloseTimeout", confCloseTimeout},
		{"ConcurrentMethods", confConcurrentMethods},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			c1, c2 := e.pair(t)
			tc.f(t, c1, c2)
		})
	}
}

// confBasicIO: what is written on one end is read, in order and whole, on the other.
func confBasicIO(t *testing.T, c1, c2 net.Conn) {
	want := pattern(1<<20+123, 10)
	go func() {
		// Writes of every size, then the half-close.
		rest := want
		for n := 1; len(rest) > 0; n = n*3 + 1 {
			n = min(n, len(rest))
			if _, err := c1.Write(rest[:n]); err != nil {
				t.Error(err)
				return
			}
			rest = rest[n:]
		}
		c1.(interface{ CloseWrite() error }).CloseWrite()
	}()
	var got bytes.Buffer
	buf := make([]byte, 7777)
	for {
		n, err := c2.Read(buf)
		got.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			t.Fatal("Read returned 0 bytes and no error")
		}
	}
	if !bytes.Equal(got.Bytes(), want) {
		t.Fatalf("read %d bytes, want %d identical", got.Len(), len(want))
	}
}

// confPingPong: alternating small exchanges, each waiting for the other side.
func confPingPong(t *testing.T, c1, c2 net.Conn) {
	// The first side sends 2i and expects 2i+1; the other answers each 2i with 2i+1.
	pingPonger := func(c net.Conn, first bool) error {
		defer c.(interface{ CloseWrite() error }).CloseWrite()
		buf := make([]byte, 8)
		put := func(v int) error {
			buf[0], buf[1] = byte(v), byte(v>>8)
			_, err := c.Write(buf)
			return err
		}
		get := func(v int) error {
			if _, err := io.ReadFull(c, buf); err != nil {
				return err
			}
			if int(buf[0])|int(buf[1])<<8 != v {
				return errors.New("ping-pong counter out of step")
			}
			return nil
		}
		for i := range 200 {
			if first {
				if err := put(2 * i); err != nil {
					return err
				}
				if err := get(2*i + 1); err != nil {
					return err
				}
			} else {
				if err := get(2 * i); err != nil {
					return err
				}
				if err := put(2*i + 1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() { errc <- pingPonger(c2, false) }()
	if err := pingPonger(c1, true); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}

// confRacyRead: many goroutines Read one Conn at once, while deadlines change.
func confRacyRead(t *testing.T, c1, c2 net.Conn) {
	go func() {
		for range 100 {
			if _, err := c2.Write(pattern(1000, 1)); err != nil {
				return
			}
		}
	}()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1+i*100)
			for range 50 {
				c1.SetReadDeadline(time.Now().Add(time.Millisecond))
				if _, err := c1.Read(buf); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// confRacyWrite: many goroutines Write one Conn at once, while deadlines
// change; every Write is whole or fails with a timeout.
func confRacyWrite(t *testing.T, c1, c2 net.Conn) {
	go io.Copy(io.Discard, c2)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := pattern(1+i*1000, byte(i))
			for range 50 {
				c1.SetWriteDeadline(time.Now().Add(time.Millisecond))
				n, err := c1.Write(buf)
				if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Error(err)
					return
				}
				if err == nil && n != len(buf) {
					t.Errorf("Write returned %d of %d bytes and no error", n, len(buf))
					return
				}
			}
		}()
	}
	wg.Wait()
}

// confPastTimeout: with a deadline in the past, Read and Write fail at once,
// every time, and do not consume or send anything.
func confPastTimeout(t *testing.T, c1, c2 net.Conn) {
	c2.Write([]byte("x"))
	time.Sleep(10 * time.Millisecond)
	c1.SetDeadline(time.Now().Add(-time.Second))
	for range 3 {
		n, err := c1.Read(make([]byte, 10))
		if n != 0 {
			t.Fatalf("Read past its deadline returned %d bytes", n)
		}
		mustTimeout(t, err, "read")
		n, err = c1.Write([]byte("y"))
		if n != 0 {
			t.Fatalf("Write past its deadline took %d bytes", n)
		}
		mustTimeout(t, err, "write")
	}
	c1.SetDeadline(time.Time{})
	buf := make([]byte, 10)
	if n, err := c1.Read(buf); err != nil || string(buf[:n]) != "x" {
		t.Fatalf("Read after clearing the deadline: %q %v", buf[:n], err)
	}
}

// confPresentTimeout: a deadline set to now by another goroutine ends a
// blocked Read and a blocked Write.
func confPresentTimeout(t *testing.T, c1, c2 net.Conn) {
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := c1.Read(make([]byte, 10))
		mustTimeoutAsync(t, err, "read")
	}()
	go func() {
		defer wg.Done()
		_, err := c1.Write(make([]byte, 16<<20)) // c2 never reads
		mustTimeoutAsync(t, err, "write")
	}()
	time.Sleep(50 * time.Millisecond)
	c1.SetDeadline(time.Now())
	waitOrFail(t, &wg, "a deadline set to now did not end blocked calls")
}

// confFutureTimeout: a deadline in the future ends blocked calls when it comes.
func confFutureTimeout(t *testing.T, c1, c2 net.Conn) {
	start := time.Now() // before the deadline is set, so it is 100 ms after start at least
	c1.SetDeadline(start.Add(100 * time.Millisecond))
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_, err := c1.Read(make([]byte, 10))
		mustTimeoutAsync(t, err, "read")
	}()
	go func() {
		defer wg.Done()
		_, err := c1.Write(make([]byte, 16<<20))
		mustTimeoutAsync(t, err, "write")
	}()
	waitOrFail(t, &wg, "a deadline in the future did not end blocked calls")
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Fatalf("calls ended after %v, before their deadline", el)
	}
}

// confCloseTimeout: Close ends calls blocked with a deadline, with net.ErrClosed.
func confCloseTimeout(t *testing.T, c1, c2 net.Conn) {
	c1.SetDeadline(time.Now().Add(time.Minute))
	var wg sync.WaitGroup
	wg.Add(2)
	check := func(err error) {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("blocked call after Close: %v, want net.ErrClosed", err)
		}
	}
	go func() { defer wg.Done(); _, err := c1.Read(make([]byte, 10)); check(err) }()
	go func() { defer wg.Done(); _, err := c1.Write(make([]byte, 16<<20)); check(err) }()
	time.Sleep(50 * time.Millisecond)
	c1.Close()
	waitOrFail(t, &wg, "Close did not end blocked calls")
}

// confConcurrentMethods: every method at once, for the race detector.
func confConcurrentMethods(t *testing.T, c1, c2 net.Conn) {
	go io.Copy(c2, c2)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(7)
		go func() { defer wg.Done(); c1.Read(make([]byte, 100)) }()
		go func() { defer wg.Done(); c1.Write(make([]byte, 100)) }()
		go func() { defer wg.Done(); c1.SetDeadline(time.Now().Add(100 * time.Millisecond)) }()
		go func() { defer wg.Done(); c1.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) }()
		go func() { defer wg.Done(); c1.SetWriteDeadline(time.Now().Add(100 * time.Millisecond)) }()
		go func() { defer wg.Done(); _ = c1.LocalAddr().String() }()
		go func() { defer wg.Done(); _ = c1.RemoteAddr().String() }()
	}
	time.Sleep(20 * time.Millisecond)
	wg.Add(1)
	go func() { defer wg.Done(); c1.Close() }()
	waitOrFail(t, &wg, "concurrent methods did not all return after Close")
}

func mustTimeoutAsync(t *testing.T, err error, op string) {
	var ne net.Error
	var oe *net.OpError
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() || !errors.As(err, &oe) || oe.Op != op {
		t.Errorf("%s: %v, want a %s timeout", op, err, op)
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, msg string) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
	}
}
