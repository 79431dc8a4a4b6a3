package cachesvc

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a Conn or a Client. The zero value of every field means its default.
type Options struct {
	// Addr is "host:port" (TCP), or a unix socket as "unix:/path" or an absolute "/path".
	Addr string
	// Token is the server's auth token (sent in HELLO when not empty).
	Token string
	// ClientName is sent in HELLO, for the server's logs and stats (default "cachesvc-go").
	ClientName string
	// DialTimeout bounds connecting plus HELLO (default 5 s).
	DialTimeout time.Duration
	// RequestTimeout bounds a request whose context has no deadline (default 10 s; a
	// negative value means no bound). It also bounds every write to the socket.
	RequestTimeout time.Duration
	// MaxReply is the largest reply body accepted, bytes (default 64 MiB, PROTOCOL.md
	// section 7). A larger reply is a protocol error: the connection is closed.
	MaxReply uint32
	// MaxCells bounds the cells of one GET, REFRESH or MGET reply (rows x columns, a row
	// of no columns counting 1, summed over MGET items; default DefaultMaxCells, one
	// million). A reply with more is refused from its array headers, before any row is
	// built, as a protocol error: the connection is closed.
	MaxCells int
	// PoolSize is the number of connections a Client keeps (default 4). Each connection
	// carries any number of concurrent requests (pipelined), so a few are plenty.
	PoolSize int
	// BackoffMin and BackoffMax bound the Client's reconnect delay: after the n-th failed
	// dial in a row it waits a random time in [d/2, d], d = min(BackoffMax, BackoffMin *
	// 2^(n-1)) (defaults 50 ms and 5 s).
	BackoffMin, BackoffMax time.Duration
	// Dial replaces the default dialer (net.Dialer) when set, e.g. for TLS.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

func (o Options) withDefaults() Options {
	if o.ClientName == "" {
		o.ClientName = "cachesvc-go"
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 10 * time.Second
	}
	if o.MaxReply == 0 {
		o.MaxReply = DefaultMaxReply
	}
	if o.MaxCells <= 0 {
		o.MaxCells = DefaultMaxCells
	}
	if o.PoolSize <= 0 {
		o.PoolSize = 4
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 50 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 5 * time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	return o
}

// networkOf splits an address into a net.Dial network and address.
func networkOf(addr string) (string, string) {
	switch {
	case strings.HasPrefix(addr, "unix:"):
		return "unix", strings.TrimPrefix(addr, "unix:")
	case strings.HasPrefix(addr, "/"), strings.HasPrefix(addr, "@"):
		return "unix", addr
	case strings.HasPrefix(addr, "tcp:"):
		return "tcp", strings.TrimPrefix(addr, "tcp:")
	}
	return "tcp", addr
}

const (
	writeBuf     = 64 << 10 // writer buffer; queued frames are coalesced up to this
	bodyChunk    = 1 << 20  // reply bodies above this are read (and grown) chunk by chunk
	maxAbandoned = 4096     // requests given up by their callers still awaiting a reply
)

// Conn is one connection to a cachesvc server. It is safe for concurrent use: concurrent
// requests are pipelined on the socket (one writer goroutine coalesces their frames) and
// one reader goroutine hands each reply to its request by id, in whatever order the
// server answers. A protocol error, an I/O error or Close closes it for good; a request
// error (an *Error reply) does not. Client adds pooling and reconnection.
type Conn struct {
	nc       net.Conn
	opts     Options
	hello    HelloInfo
	maxFrame uint32 // the server's request body limit

	wq   chan []byte   // frames for the writer
	done chan struct{} // closed once the connection is dead

	mu        sync.Mutex
	pending   map[uint32]*call
	nextID    uint32
	abandoned int
	err       error // why the connection closed (nil while alive)

	inflight atomic.Int32  // sent and not answered, including abandoned requests
	rx       atomic.Uint64 // reply frames received
	draining atomic.Bool   // the server answered shutting_down: a pool dials a replacement
}

// call is one request awaiting its reply.
type call struct {
	op        byte
	ch        chan reply // buffered 1: receives exactly one reply
	rx        uint64     // Conn.rx when the request was registered
	abandoned bool       // the caller gave up; drop the reply when it comes
}

type reply struct {
	op   byte
	body []byte
	err  error
}

// Dial connects to opts.Addr, sends HELLO (protocol version, client name, token) and
// returns the connection. ctx and opts.DialTimeout bound the whole handshake. An auth
// failure is an *Error with CodeAuth (errors.Is(err, ErrAuth)).
func Dial(ctx context.Context, opts Options) (*Conn, error) {
	opts = opts.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, opts.DialTimeout)
	defer cancel()
	network, addr := networkOf(opts.Addr)
	var nc net.Conn
	var err error
	if opts.Dial != nil {
		nc, err = opts.Dial(ctx, network, addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, fmt.Errorf("cachesvc: dial %s: %w", opts.Addr, err)
	}
	c := &Conn{nc: nc, opts: opts, wq: make(chan []byte, 256), done: make(chan struct{}),
		pending: make(map[uint32]*call), nextID: 1}
	if err := c.handshake(ctx); err != nil {
		nc.Close()
		return nil, err
	}
	go c.readLoop()
	go c.writeLoop()
	return c, nil
}

// handshake sends HELLO and reads its reply, before the reader and writer start.
func (c *Conn) handshake(ctx context.Context) error {
	if dl, ok := ctx.Deadline(); ok {
		c.nc.SetDeadline(dl)
		defer c.nc.SetDeadline(time.Time{})
	}
	f, err := appendHello(nil, 0, c.opts.ClientName, c.opts.Token)
	if err != nil {
		return err
	}
	if _, err := c.nc.Write(f); err != nil {
		return fmt.Errorf("cachesvc: HELLO to %s: %w", c.opts.Addr, ctxErr(ctx, err))
	}
	h, body, err := readFrame(bufio.NewReaderSize(c.nc, HeaderSize), c.opts.MaxReply)
	if err != nil {
		if !errors.As(err, new(*Error)) {
			err = fmt.Errorf("cachesvc: HELLO reply from %s: %w", c.opts.Addr, ctxErr(ctx, err))
		}
		return err
	}
	if h.ID != 0 {
		return protoErr("HELLO reply with request id %d, expected 0", h.ID)
	}
	switch h.Opcode {
	case OpError:
		e, err := DecodeError(body)
		if err != nil {
			return err
		}
		return e
	case OpReplyFlag | OpHello:
	default:
		return protoErr("HELLO answered with opcode 0x%02x", h.Opcode)
	}
	if c.hello, err = DecodeHello(body); err != nil {
		return err
	}
	if c.hello.Version != ProtocolVersion {
		return protoErr("server speaks protocol version %d, this client %d", c.hello.Version, ProtocolVersion)
	}
	c.maxFrame = c.hello.MaxFrame
	if c.maxFrame == 0 {
		c.maxFrame = DefaultMaxFrame
	}
	return nil
}

// ctxErr prefers the context's error (a deadline) over the I/O error it caused.
func ctxErr(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// readFrame reads one frame. The header is checked (version, flags, length <= max) before
// the body is allocated, and a large body is allocated as its bytes arrive, so a lying
// header costs nothing.
func readFrame(br *bufio.Reader, max uint32) (Header, []byte, error) {
	var hb [HeaderSize]byte
	if _, err := io.ReadFull(br, hb[:]); err != nil {
		return Header{}, nil, err
	}
	h, err := ParseHeader(hb[:], max)
	if err != nil {
		return h, nil, err
	}
	n := int(h.Len)
	first := n
	if first > bodyChunk {
		first = bodyChunk
	}
	body := make([]byte, first, first)
	if _, err := io.ReadFull(br, body); err != nil {
		return h, nil, unexpectedEOF(err)
	}
	for len(body) < n {
		k := n - len(body)
		if k > bodyChunk {
			k = bodyChunk
		}
		if cap(body)-len(body) < k { // grow by doubling, never past n
			c := 2 * cap(body)
			if c > n {
				c = n
			}
			nb := make([]byte, len(body), c)
			copy(nb, body)
			body = nb
		}
		body = body[:len(body)+k]
		if _, err := io.ReadFull(br, body[len(body)-k:]); err != nil {
			return h, nil, unexpectedEOF(err)
		}
	}
	return h, body, nil
}

func unexpectedEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// Hello returns what the server said in its HELLO reply.
func (c *Conn) Hello() HelloInfo { return c.hello }

// Alive reports whether the connection is still usable.
func (c *Conn) Alive() bool {
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Draining reports whether the server answered shutting_down on this connection: it still
// answers what is in flight, but new requests belong on a new connection (a Client
// replaces it).
func (c *Conn) Draining() bool { return c.draining.Load() }

// Err returns why the connection closed (nil while it is alive).
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// InFlight is the number of requests sent and not yet answered, counting those whose
// caller gave up (timed out or cancelled) until their reply arrives.
func (c *Conn) InFlight() int { return int(c.inflight.Load()) }

// Close closes the connection; requests in flight fail with ErrClosed.
func (c *Conn) Close() error {
	c.fail(errors.New("closed by the client"))
	return nil
}

// fail closes the connection for good with cause and fails every pending request.
func (c *Conn) fail(cause error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	c.err = cause
	pend := c.pending
	c.pending = nil
	close(c.done)
	c.mu.Unlock()
	c.nc.Close()
	for _, cl := range pend {
		c.inflight.Add(-1)
		if !cl.abandoned {
			cl.ch <- reply{err: &closedErr{sent: true, cause: cause}}
		}
	}
}

// readLoop reads replies and hands each to its request.
func (c *Conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		h, body, err := readFrame(br, c.opts.MaxReply)
		if err != nil {
			if err == io.EOF {
				err = errors.New("the server closed the connection")
			}
			c.fail(err)
			return
		}
		c.rx.Add(1)
		if err := c.dispatch(h, body); err != nil {
			c.fail(err)
			return
		}
	}
}

// dispatch delivers one reply frame; an error return closes the connection.
func (c *Conn) dispatch(h Header, body []byte) error {
	var rep reply
	if h.Opcode == OpError {
		e, err := DecodeError(body)
		if err != nil {
			return err
		}
		rep.err = e
		if e.Code == CodeShuttingDown {
			c.draining.Store(true)
		}
		if e.Code == CodeProtocol {
			// The server closes after a protocol error: close the connection (failing
			// every other request), then hand the error to the request it names, if any
			// (the id is 0 when the server could not read it).
			c.mu.Lock()
			cl := c.pending[h.ID]
			delete(c.pending, h.ID)
			c.mu.Unlock()
			c.fail(e)
			if cl != nil {
				c.inflight.Add(-1)
				if !cl.abandoned {
					cl.ch <- rep
				}
			}
			return e
		}
	} else {
		rep.op, rep.body = h.Opcode, body
	}
	return c.deliver(h.ID, rep, true)
}

// deliver hands rep to request id. A reply nobody asked for is a protocol error (when
// strict), as is a success reply whose opcode does not match the request.
func (c *Conn) deliver(id uint32, rep reply, strict bool) error {
	c.mu.Lock()
	cl := c.pending[id]
	if cl == nil {
		c.mu.Unlock()
		if strict {
			return protoErr("reply for request id %d, which is not in flight", id)
		}
		return nil
	}
	delete(c.pending, id)
	if cl.abandoned {
		c.abandoned--
		c.mu.Unlock()
		c.inflight.Add(-1)
		return nil
	}
	c.mu.Unlock()
	c.inflight.Add(-1)
	if rep.err == nil && rep.op != OpReplyFlag|cl.op {
		e := protoErr("request opcode 0x%02x answered with opcode 0x%02x", cl.op, rep.op)
		c.fail(e) // before the caller hears of it: the connection is dead when it does
		cl.ch <- reply{err: e}
		return e
	}
	cl.ch <- rep
	return nil
}

// writeLoop writes queued frames, coalescing whatever is queued into one write.
func (c *Conn) writeLoop() {
	bw := bufio.NewWriterSize(c.nc, writeBuf)
	for {
		var f []byte
		select {
		case f = <-c.wq:
		case <-c.done:
			return
		}
		bw.Write(f)
	more:
		for bw.Buffered() < writeBuf {
			select {
			case f = <-c.wq:
				bw.Write(f)
			default:
				break more
			}
		}
		if c.opts.RequestTimeout > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(c.opts.RequestTimeout))
		}
		if err := bw.Flush(); err != nil {
			c.fail(fmt.Errorf("write: %w", err))
			return
		}
	}
}

// send registers a request, encodes it with build (given the request id) and queues it.
// The error wraps ErrNotSent when the connection was closed before the frame was queued.
func (c *Conn) send(ctx context.Context, op byte, build func(b []byte, id uint32) ([]byte, error)) (*call, uint32, error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return nil, 0, &closedErr{cause: err}
	}
	if len(c.pending) >= 1<<20 {
		c.mu.Unlock()
		return nil, 0, &Error{Code: CodeOverloaded, Msg: "over a million requests in flight on one connection", Local: true}
	}
	id := c.nextID
	for id == 0 || c.pending[id] != nil { // (0 is HELLO's, and a protocol error's "unknown")
		id++
	}
	c.nextID = id + 1
	cl := &call{op: op, ch: make(chan reply, 1), rx: c.rx.Load()}
	c.pending[id] = cl
	c.inflight.Add(1)
	c.mu.Unlock()

	f, err := build(make([]byte, 0, 128), id)
	if err == nil && len(f)-HeaderSize > int(c.maxFrame) {
		err = &Error{Code: CodeTooLarge, Local: true,
			Msg: fmt.Sprintf("request body of %d bytes exceeds the server's limit of %d", len(f)-HeaderSize, c.maxFrame)}
	}
	if err != nil {
		c.forget(id, cl)
		return nil, 0, err
	}
	select {
	case c.wq <- f:
		return cl, id, nil
	case <-c.done:
		c.forget(id, cl)
		return nil, 0, &closedErr{cause: c.Err()}
	case <-ctx.Done():
		c.forget(id, cl)
		return nil, 0, ctx.Err()
	}
}

// forget removes a request that was never queued.
func (c *Conn) forget(id uint32, cl *call) {
	c.mu.Lock()
	if c.pending != nil && c.pending[id] == cl {
		delete(c.pending, id)
		c.inflight.Add(-1)
	}
	c.mu.Unlock()
}

// wait waits for the reply of a sent request. If ctx ends first, the request is
// abandoned: its id stays reserved (and counted by InFlight) until the server's reply
// arrives and is dropped. If ctx's deadline passed and no reply frame at all arrived since
// the request was sent, the server is presumed dead or wedged: the connection is closed
// (the other requests in flight fail with ErrClosed, retryable; a pool dials anew).
func (c *Conn) wait(ctx context.Context, cl *call, id uint32) ([]byte, error) {
	select {
	case rep := <-cl.ch:
		return rep.body, rep.err
	default:
	}
	select {
	case rep := <-cl.ch:
		return rep.body, rep.err
	case <-ctx.Done():
	}
	c.mu.Lock()
	if c.pending != nil && c.pending[id] == cl {
		cl.abandoned = true
		c.abandoned++
		tooMany := c.abandoned > maxAbandoned
		silent := ctx.Err() == context.DeadlineExceeded && c.rx.Load() == cl.rx
		c.mu.Unlock()
		if silent {
			c.fail(errors.New("a request timed out with no reply from the server since it was sent"))
		} else if tooMany {
			c.fail(errors.New("too many requests left unanswered by the server"))
		}
		return nil, ctx.Err()
	}
	c.mu.Unlock()
	rep := <-cl.ch // delivered meanwhile
	return rep.body, rep.err
}

// decodeFailed closes the connection after a malformed reply body.
func (c *Conn) decodeFailed(err error) error {
	var e *Error
	if errors.As(err, &e) && e.Code == CodeProtocol {
		c.fail(err)
	}
	return err
}

// requestCtx applies Options.RequestTimeout to a context without a deadline.
func (c *Conn) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || c.opts.RequestTimeout < 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, c.opts.RequestTimeout)
}
