package cachesvc

// Conn and Client against an in-process fake server speaking the protocol (no daemon).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type fakeServer struct {
	t        *testing.T
	ln       net.Listener
	addr     string
	token    string
	maxFrame int
	handle   func(fc *fakeConn)
	accepted atomic.Int32
	mu       sync.Mutex
	conns    []*fakeConn
	hellos   chan omap
}

type fakeConn struct {
	net.Conn
	br  *bufio.Reader
	wmu sync.Mutex
}

// req is a request the fake server read.
type req struct {
	h    Header
	body any
}

func (fc *fakeConn) read() (req, error) {
	h, b, err := readFrame(fc.br, DefaultMaxFrame)
	if err != nil {
		return req{}, err
	}
	v, err := decodeBody(b)
	return req{h, v}, err
}

func (fc *fakeConn) write(b []byte) {
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	fc.Write(b)
}

// param0 is the first parameter of a GET request body.
func (r req) param0() any {
	for _, e := range r.body.(omap) {
		if e.K == "p" {
			return e.V.([]any)[0]
		}
	}
	return nil
}

// echoResult is a GET reply whose one row holds the request's first parameter.
func echoResult(r req) []byte {
	return frame(OpReplyFlag|r.h.Opcode, r.h.ID, resultBody(meta(0, 7, 0, false),
		[][2]any{{"v", 2}}, [][]any{{r.param0()}}))
}

// newFakeServer listens on a unix socket (unix) or loopback TCP.
func newFakeServer(t *testing.T, unix bool, handle func(fc *fakeConn)) *fakeServer {
	s := &fakeServer{t: t, handle: handle, maxFrame: DefaultMaxFrame, hellos: make(chan omap, 100)}
	if unix {
		s.addr = filepath.Join(t.TempDir(), "cs.sock")
	} else {
		s.addr = "127.0.0.1:0"
	}
	s.listen()
	t.Cleanup(s.stop)
	return s
}

func (s *fakeServer) listen() {
	network, addr := networkOf(s.addr)
	ln, err := net.Listen(network, addr)
	if err != nil {
		s.t.Fatal(err)
	}
	s.ln = ln
	if network == "tcp" {
		s.addr = ln.Addr().String()
	}
	go s.serve(ln)
}

func (s *fakeServer) serve(ln net.Listener) {
	for {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		fc := &fakeConn{Conn: nc, br: bufio.NewReader(nc)}
		s.mu.Lock()
		s.conns = append(s.conns, fc)
		s.mu.Unlock()
		go func() {
			r, err := fc.read()
			if err != nil || r.h.Opcode != OpHello {
				nc.Close()
				return
			}
			m := r.body.(omap)
			s.hellos <- m
			tok := ""
			for _, e := range m {
				if e.K == "token" {
					tok = e.V.(string)
				}
			}
			if tok != s.token {
				fc.write(frame(OpError, r.h.ID, errBody(int(CodeAuth), "wrong token")))
				// like the daemon: auth does not close; this fake closes to keep tests short
				return
			}
			fc.write(frame(OpReplyFlag|OpHello, r.h.ID, body(omap{{"v", 1}, {"server", "fake 1"}, {"max_frame", s.maxFrame}})))
			s.handle(fc)
		}()
	}
}

// stop closes the listener and every connection.
func (s *fakeServer) stop() {
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.Close()
	}
	s.conns = nil
	s.mu.Unlock()
}

// echoHandler answers every GET with its first parameter, each after a random short
// delay (so replies overtake each other), PING with nil.
func echoHandler(fc *fakeConn) {
	for {
		r, err := fc.read()
		if err != nil {
			fc.Close()
			return
		}
		go func() {
			time.Sleep(time.Duration(rand.Intn(500)) * time.Microsecond)
			if r.h.Opcode == OpPing {
				fc.write(frame(OpReplyFlag|OpPing, r.h.ID, []byte{0xc0}))
				return
			}
			fc.write(echoResult(r))
		}()
	}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestConnHelloToken(t *testing.T) {
	s := newFakeServer(t, true, echoHandler)
	s.token = "sesame"
	c, err := Dial(ctxT(t, 5*time.Second), Options{Addr: "unix:" + s.addr, Token: "sesame", ClientName: "gotest"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h := c.Hello(); h.Server != "fake 1" || h.Version != 1 || h.MaxFrame != DefaultMaxFrame {
		t.Errorf("hello %+v", h)
	}
	m := <-s.hellos
	if fmt.Sprint(m) != fmt.Sprint(omap{{"v", uint64(1)}, {"client", "gotest"}, {"token", "sesame"}}) {
		t.Errorf("HELLO body %v", m)
	}
	for _, tok := range []string{"", "wrong"} {
		_, err := Dial(ctxT(t, 5*time.Second), Options{Addr: s.addr, Token: tok})
		var e *Error
		if !errors.Is(err, ErrAuth) || !errors.As(err, &e) || e.Local || e.Msg != "wrong token" {
			t.Errorf("token %q: %v", tok, err)
		}
	}
	if _, err := Dial(ctxT(t, 5*time.Second), Options{Addr: filepath.Join(t.TempDir(), "none")}); err == nil {
		t.Error("dial of a missing socket succeeded")
	}
}

func TestConnPipelinedOutOfOrder(t *testing.T) {
	// The server reads three requests, then answers them last first.
	s := newFakeServer(t, false, func(fc *fakeConn) {
		var rs []req
		for len(rs) < 3 {
			r, err := fc.read()
			if err != nil {
				return
			}
			rs = append(rs, r)
		}
		for i := len(rs) - 1; i >= 0; i-- {
			fc.write(echoResult(rs[i]))
		}
		echoHandler(fc)
	})
	c, err := Dial(ctxT(t, 5*time.Second), Options{Addr: s.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, 5*time.Second)
	ps := []*Pending[*Result]{c.GetAsync(ctx, Q("q", 1)), c.GetAsync(ctx, Q("q", 2)), c.RefreshAsync(ctx, Q("q", 3))}
	// The last request's reply comes first: it is ready while the first is still waiting.
	if _, err := ps[2].Wait(); err != nil {
		t.Fatal(err)
	}
	for i, p := range ps {
		r, err := p.Wait()
		if err != nil || r.Rows[0][0] != int64(i+1) {
			t.Errorf("request %d: %v %v", i, r, err)
		}
	}
	if err := c.Ping(ctx); err != nil || !c.Alive() || c.InFlight() != 0 {
		t.Errorf("after: %v alive=%v inflight=%d", err, c.Alive(), c.InFlight())
	}
}

// scripted serves HELLO, then for each request calls answer (nil: no reply).
func scripted(t *testing.T, answer func(n int, r req) [][]byte) *fakeServer {
	return newFakeServer(t, false, func(fc *fakeConn) {
		for n := 0; ; n++ {
			r, err := fc.read()
			if err != nil {
				return
			}
			for _, f := range answer(n, r) {
				fc.write(f)
			}
		}
	})
}

func TestConnRequestErrorKeepsConnection(t *testing.T) {
	s := scripted(t, func(n int, r req) [][]byte {
		if n == 0 {
			return [][]byte{frame(OpError, r.h.ID, errBody(1, "no query \"nope\""))}
		}
		if n == 1 {
			return [][]byte{frame(OpError, r.h.ID, errBody(42, "from the future"))}
		}
		return [][]byte{echoResult(r)}
	})
	c, err := Dial(ctxT(t, 5*time.Second), Options{Addr: s.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, 5*time.Second)
	_, err = c.Get(ctx, Q("nope", 1))
	var e *Error
	if !errors.Is(err, ErrUnknownQuery) || !errors.As(err, &e) || e.Local || e.Msg != `no query "nope"` {
		t.Fatalf("want unknown_query, got %v", err)
	}
	_, err = c.Get(ctx, Q("x", 1))
	if !errors.Is(err, ErrInternal) || !errors.As(err, &e) || e.Code != 42 {
		t.Fatalf("unknown code: %v", err)
	}
	if r, err := c.Get(ctx, Q("q", 5)); err != nil || r.Rows[0][0] != int64(5) || !c.Alive() {
		t.Fatalf("after request errors: %v %v alive=%v", r, err, c.Alive())
	}
}

func TestConnProtocolErrorCloses(t *testing.T) {
	cases := map[string]func(r req) []byte{
		"server protocol error": func(r req) []byte {
			return frame(OpError, r.h.ID, errBody(7, "unknown key"))
		},
		"server protocol error id 0": func(r req) []byte { return frame(OpError, 0, errBody(7, "bad header")) },
		"malformed body": func(r req) []byte {
			return frame(OpReplyFlag|OpGet, r.h.ID, []byte{0x92, 0xc0})
		},
		"unknown id": func(r req) []byte {
			return frame(OpReplyFlag|OpPing, r.h.ID+1000, []byte{0xc0})
		},
		"wrong reply opcode": func(r req) []byte {
			return frame(OpReplyFlag|OpStats, r.h.ID, body(omap{}))
		},
		"bad version": func(r req) []byte { f := echoResult(r); f[4] = 2; return f },
		"over MaxReply": func(r req) []byte {
			return []byte{0x40, 0, 0, 0, 1, OpReplyFlag | OpGet, 0, 0, 0, 0, 0, byte(r.h.ID)}
		},
		"error map without msg": func(r req) []byte { return frame(OpError, r.h.ID, body(omap{{"code", 1}})) },
	}
	for name, bad := range cases {
		t.Run(name, func(t *testing.T) {
			s := scripted(t, func(n int, r req) [][]byte {
				if n == 0 {
					return nil // held: in flight when the connection dies
				}
				return [][]byte{bad(r)}
			})
			c, err := Dial(ctxT(t, 5*time.Second), Options{Addr: s.addr, MaxReply: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			ctx := ctxT(t, 5*time.Second)
			held := c.GetAsync(ctx, Q("held", 1))
			_, err = c.Get(ctx, Q("bad", 2))
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("want a protocol error, got %v", err)
			}
			if _, err := held.Wait(); !errors.Is(err, ErrClosed) || errors.Is(err, ErrNotSent) {
				t.Errorf("request in flight: want ErrClosed (sent), got %v", err)
			}
			if c.Alive() || c.Err() == nil {
				t.Error("connection still alive after a protocol error")
			}
			if err := c.Ping(ctx); !errors.Is(err, ErrNotSent) {
				t.Errorf("request on a closed connection: %v", err)
			}
		})
	}
}

// deadlineCtx is a context whose deadline passes when expire is called (no clock involved).
type deadlineCtx struct {
	context.Context
	done chan struct{}
}

func newDeadlineCtx() *deadlineCtx {
	return &deadlineCtx{Context: context.Background(), done: make(chan struct{})}
}
func (d *deadlineCtx) Done() <-chan struct{} { return d.done }
func (d *deadlineCtx) expire()               { close(d.done) }
func (d *deadlineCtx) Err() error {
	select {
	case <-d.done:
		return context.DeadlineExceeded
	default:
		return nil
	}
}

func TestConnContextAbandon(t *testing.T) {
	got0 := make(chan struct{})
	release := make(chan struct{})
	s := scripted(t, func(n int, r req) [][]byte {
		switch n {
		case 0: // the PING: not answered now
			close(got0)
			return nil
		case 1: // the GET: answered at once
			return [][]byte{echoResult(r)}
		}
		<-release
		return [][]byte{frame(OpReplyFlag|OpPing, 1, []byte{0xc0}), echoResult(r)} // id 1: the abandoned one
	})
	c, err := Dial(ctxT(t, 5*time.Second), Options{Addr: s.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	short := newDeadlineCtx()
	ping := c.pingAsync(short)
	<-got0
	if r, err := c.Get(ctxT(t, 5*time.Second), Q("q", 5)); err != nil || r.Rows[0][0] != int64(5) {
		t.Fatalf("get: %v %v", r, err)
	}
	// the PING times out, but the server answered something since it was sent: it lives
	short.expire()
	if _, err := ping.Wait(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the deadline, got %v", err)
	}
	if !c.Alive() || c.InFlight() != 1 {
		t.Fatalf("after the timeout: alive=%v in flight %d (the unanswered PING counts)", c.Alive(), c.InFlight())
	}
	close(release)
	r, err := c.Get(ctxT(t, 5*time.Second), Q("q", 9))
	if err != nil || r.Rows[0][0] != int64(9) || !c.Alive() || c.InFlight() != 0 {
		t.Fatalf("after an abandoned request: %v %v alive=%v in flight %d", r, err, c.Alive(), c.InFlight())
	}
}

// A server that answers HELLO and then nothing: a request timing out with no frame
// received since it was sent closes the connection, failing the others in flight.
func TestConnTimeoutOfASilentServerCloses(t *testing.T) {
	got := make(chan struct{}, 2)
	s := scripted(t, func(n int, r req) [][]byte { got <- struct{}{}; return nil })
	c, err := Dial(ctxT(t, 5*time.Second), Options{Addr: s.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other := c.GetAsync(ctxT(t, 30*time.Second), Q("q", 1))
	<-got
	short := newDeadlineCtx()
	ping := c.pingAsync(short)
	<-got
	short.expire()
	if _, err := ping.Wait(); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the deadline, got %v", err)
	}
	if c.Alive() || c.InFlight() != 0 {
		t.Fatalf("a silent connection stays: alive=%v in flight %d", c.Alive(), c.InFlight())
	}
	if _, err := other.Wait(); !errors.Is(err, ErrClosed) || errors.Is(err, ErrNotSent) {
		t.Fatalf("the other request: %v", err)
	}
}

// Through the pool: the silent connection is replaced by a new one.
func TestClientReconnectsAfterASilentServer(t *testing.T) {
	var first atomic.Bool
	got := make(chan struct{}, 1)
	s := newFakeServer(t, false, func(fc *fakeConn) {
		silent := !first.Swap(true)
		for {
			r, err := fc.read()
			if err != nil {
				return
			}
			if silent {
				got <- struct{}{}
			} else {
				fc.write(echoResult(r))
			}
		}
	})
	cl := New(Options{Addr: s.addr, PoolSize: 1})
	defer cl.Close()
	short := newDeadlineCtx()
	done := make(chan error, 1)
	go func() { _, err := cl.Get(short, Q("q", 1)); done <- err }()
	<-got // the GET reached the silent server
	short.expire()
	if err := <-done; err == nil {
		t.Fatal("a GET to a silent server succeeded")
	}
	r, err := cl.Get(ctxT(t, 10*time.Second), Q("q", 2))
	if err != nil || r.Rows[0][0] != int64(2) || s.accepted.Load() != 2 {
		t.Fatalf("after the silent connection: %v %v, %d connections", r, err, s.accepted.Load())
	}
}

func TestConnRequestOverServerLimit(t *testing.T) {
	s := newFakeServer(t, false, echoHandler)
	s.maxFrame = 64
	c, err := Dial(ctxT(t, 5*time.Second), Options{Addr: s.addr})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := ctxT(t, 5*time.Second)
	_, err = c.Get(ctx, Q("q", string(make([]byte, 100))))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("want too_large, got %v", err)
	}
	if _, err := c.Get(ctx, Q("q", 1)); err != nil || !c.Alive() {
		t.Fatalf("after a refused request: %v", err)
	}
}

// A reply of several MiB arrives whole (its body grows chunk by chunk); one a byte over
// MaxReply is refused from its header.
func TestConnLargeReply(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 3<<20/16+5) // a bit over 3 MiB
	s := scripted(t, func(n int, r req) [][]byte {
		return [][]byte{frame(OpReplyFlag|OpGet, r.h.ID, resultBody(meta(0, 1, 0, false),
			[][2]any{{"t", 4}}, [][]any{{big}}))}
	})
	size := len(resultBody(meta(0, 1, 0, false), [][2]any{{"t", 4}}, [][]any{{big}}))
	for _, max := range []int{size, size - 1} {
		c, err := Dial(ctxT(t, 10*time.Second), Options{Addr: s.addr, MaxReply: uint32(max)})
		if err != nil {
			t.Fatal(err)
		}
		r, err := c.Get(ctxT(t, 30*time.Second), Q("q", 1))
		if max == size && (err != nil || r.Rows[0][0] != big) {
			t.Errorf("MaxReply = reply size: %v", err)
		}
		if max < size && (!isLocalProtocol(err) || c.Alive()) {
			t.Errorf("MaxReply one byte short: %v (alive %v)", err, c.Alive())
		}
		c.Close()
	}
}

func TestBackoff(t *testing.T) {
	cl := New(Options{Addr: "x", BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond})
	for n := 1; n <= 10; n++ {
		d := 10 * time.Millisecond << (n - 1)
		if d > 100*time.Millisecond {
			d = 100 * time.Millisecond
		}
		seen := map[time.Duration]bool{}
		for i := 0; i < 200; i++ {
			b := cl.backoff(n)
			if b < d/2 || b > d {
				t.Fatalf("failure %d: backoff %v outside [%v, %v]", n, b, d/2, d)
			}
			seen[b] = true
		}
		if len(seen) < 10 {
			t.Errorf("failure %d: no jitter (%d distinct delays)", n, len(seen))
		}
	}
}

func TestClientReconnect(t *testing.T) {
	s := newFakeServer(t, true, echoHandler)
	cl, err := Open(ctxT(t, 5*time.Second), Options{Addr: s.addr, PoolSize: 2,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := cl.Get(ctxT(t, 5*time.Second), Q("q", 1)); err != nil {
		t.Fatal(err)
	}
	s.stop() // the server goes away
	_, err = cl.Get(ctxT(t, 300*time.Millisecond), Q("q", 2))
	if err == nil {
		t.Fatal("a request with no server succeeded")
	}
	s.listen() // and comes back
	r, err := cl.Get(ctxT(t, 10*time.Second), Q("q", 3))
	if err != nil || r.Rows[0][0] != int64(3) {
		t.Fatalf("after the server came back: %v %v", r, err)
	}
	// Open with no deadline of its own gives up after RequestTimeout, with the dial error.
	start := time.Now()
	_, err = Open(context.Background(), Options{Addr: filepath.Join(t.TempDir(), "nobody"),
		RequestTimeout: 300 * time.Millisecond, BackoffMin: 10 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "nobody") || time.Since(start) > 20*time.Second {
		t.Fatalf("Open of a missing socket: %v after %v", err, time.Since(start))
	}
	// Permanent errors are not retried: a wrong token fails at once.
	s.token = "t"
	cl2 := New(Options{Addr: s.addr})
	defer cl2.Close()
	if err := cl2.Ping(ctxT(t, 10*time.Second)); !errors.Is(err, ErrAuth) {
		t.Fatalf("wrong token through the pool: %v", err)
	}
	cl.Close()
	if err := cl.Ping(ctxT(t, time.Second)); !errors.Is(err, ErrClientClosed) {
		t.Errorf("after Close: %v", err)
	}
}

func TestClientReplacesDrainingConnection(t *testing.T) {
	var first atomic.Bool
	s := newFakeServer(t, false, func(fc *fakeConn) {
		drain := !first.Swap(true) // the first connection is draining
		for {
			r, err := fc.read()
			if err != nil {
				return
			}
			if drain {
				fc.write(frame(OpError, r.h.ID, errBody(int(CodeShuttingDown), "draining")))
			} else {
				fc.write(echoResult(r))
			}
		}
	})
	cl := New(Options{Addr: s.addr, PoolSize: 1})
	defer cl.Close()
	ctx := ctxT(t, 10*time.Second)
	if _, err := cl.Get(ctx, Q("q", 1)); !errors.Is(err, ErrShuttingDown) || !err.(*Error).Temporary() {
		t.Fatalf("want shutting_down, got %v", err)
	}
	r, err := cl.Get(ctx, Q("q", 2))
	if err != nil || r.Rows[0][0] != int64(2) || s.accepted.Load() != 2 {
		t.Fatalf("after shutting_down: %v %v, %d connections", r, err, s.accepted.Load())
	}
}

func TestClientConcurrent(t *testing.T) {
	s := newFakeServer(t, false, echoHandler)
	cl := New(Options{Addr: s.addr, PoolSize: 3})
	defer cl.Close()
	ctx := ctxT(t, 30*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		g := g
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100; i++ {
				v := int64(g*1000 + i)
				if i%10 == 0 { // some pipelined bursts as well
					ps := []*Pending[*Result]{cl.GetAsync(ctx, Q("q", v)), cl.GetAsync(ctx, Q("q", v+1))}
					for k, p := range ps {
						if r, err := p.Wait(); err != nil || r.Rows[0][0] != v+int64(k) {
							errs <- fmt.Errorf("async %d: %v %v", v, r, err)
							return
						}
					}
					continue
				}
				r, err := cl.Get(ctx, Q("q", v))
				if err != nil || r.Rows[0][0] != v {
					errs <- fmt.Errorf("get %d: %v %v", v, r, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := s.accepted.Load(); n < 1 || n > 3 {
		t.Errorf("%d connections for a pool of 3", n)
	}
}

// Show, Pause, Resume and Reload on a connection: their frames, an auth error that keeps
// the connection, a Reload that outlasts RequestTimeout (its own default wait), and a
// malformed row that closes the connection.
func TestConnShowAdmin(t *testing.T) {
	got := make(chan omap, 10)
	s := scripted(t, func(n int, r req) [][]byte {
		got <- r.body.(omap)
		switch n {
		case 0:
			return [][]byte{frame(OpReplyFlag|OpShow, r.h.ID, body([]any{omap{{"name", "q1"}, {"hits", 2}}, omap{{"name", "q2"}, {"x", nil}}}))}
		case 1:
			return [][]byte{frame(OpError, r.h.ID, errBody(6, "ADMIN is an admin request"))}
		case 2:
			return [][]byte{frame(OpReplyFlag|OpAdmin, r.h.ID, body([]any{omap{{"query", "q1"}, {"paused", false}, {"changed", true}}}))}
		case 3:
			time.Sleep(400 * time.Millisecond) // longer than RequestTimeout
			return [][]byte{frame(OpReplyFlag|OpAdmin, r.h.ID, body([]any{omap{{"reload", "applied"}, {"queries", 2}}}))}
		}
		return [][]byte{frame(OpReplyFlag|OpShow, r.h.ID, body([]any{omap{{"a", []any{1}}}}))}
	})
	c, err := Dial(ctxT(t, 5*time.Second), Options{Addr: s.addr, RequestTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	tab, err := c.ShowTable(ctx, "queries")
	if err != nil || fmt.Sprint(tab) != "{[name hits x] [map[hits:2 name:q1] map[name:q2 x:<nil>]]}" {
		t.Fatalf("show: %v %v", tab, err)
	}
	if b := <-got; fmt.Sprint(b) != fmt.Sprint(omap{{"what", "queries"}}) {
		t.Errorf("SHOW body %v", b)
	}
	if _, err := c.Pause(ctx, "q1"); !errors.Is(err, ErrAuth) || !c.Alive() {
		t.Fatalf("pause without the admin token: %v alive=%v", err, c.Alive())
	}
	if b := <-got; fmt.Sprint(b) != fmt.Sprint(omap{{"op", "pause"}, {"q", "q1"}}) {
		t.Errorf("pause body %v", b)
	}
	if row, err := c.Resume(ctx, "q1"); err != nil || row["changed"] != true || row["paused"] != false {
		t.Fatalf("resume: %v %v", row, err)
	}
	<-got
	if row, err := c.Reload(ctx); err != nil || row["reload"] != "applied" || row["queries"] != int64(2) {
		t.Fatalf("reload: %v %v", row, err)
	}
	if b := <-got; fmt.Sprint(b) != fmt.Sprint(omap{{"op", "reload"}}) {
		t.Errorf("reload body %v", b)
	}
	if _, err := c.Pause(ctx, ""); !errors.Is(err, ErrBadParams) {
		t.Errorf("pause of no query: %v", err)
	}
	if _, err := c.Show(ctx, "queries"); !errors.Is(err, ErrProtocol) || c.Alive() {
		t.Fatalf("a malformed row: %v alive=%v", err, c.Alive())
	}
}
