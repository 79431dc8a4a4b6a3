package cachesvc

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sync"
	"sync/atomic"
	"time"
)

// Client is a small pool of connections to one server, safe for concurrent use by any
// number of goroutines. Requests go round-robin over Options.PoolSize connections, each
// pipelining whatever its callers send at once. A connection that dies (server restart,
// protocol error) is replaced on demand; dials that fail are retried with capped
// exponential backoff with jitter, within each request's context.
//
// A request whose connection is lost (a restart, a network error) is retried on another
// connection, up to PoolSize times within its context (every request of the protocol is
// safe to run twice); after that it fails with an error wrapping ErrClosed.
type Client struct {
	opts  Options
	slots []*slot
	rr    atomic.Uint32

	mu       sync.Mutex // guards the backoff state and closed
	failures int        // dials failed in a row
	nextTry  time.Time  // no dial before this
	lastErr  error      // the last dial error
	closed   bool
}

type slot struct {
	mu      sync.Mutex
	conn    *Conn
	dialing chan struct{} // closed when a dial in progress ends
}

// ErrClientClosed is returned by a Client's methods after Close.
var ErrClientClosed = errors.New("cachesvc: client closed")

// New returns a Client for opts.Addr; connections are made on first use.
func New(opts Options) *Client {
	opts = opts.withDefaults()
	cl := &Client{opts: opts, slots: make([]*slot, opts.PoolSize)}
	for i := range cl.slots {
		cl.slots[i] = &slot{}
	}
	return cl
}

// Open is New plus one connection made at once, so a wrong address or token shows here.
// It retries a failing dial with backoff within ctx (or Options.RequestTimeout if ctx has
// no deadline).
func Open(ctx context.Context, opts Options) (*Client, error) {
	cl := New(opts)
	if _, err := cl.Conn(ctx); err != nil {
		return nil, err
	}
	return cl, nil
}

// Close closes every connection; requests in flight fail with ErrClosed.
func (cl *Client) Close() error {
	cl.mu.Lock()
	cl.closed = true
	cl.mu.Unlock()
	for _, s := range cl.slots {
		s.mu.Lock()
		if s.conn != nil {
			s.conn.Close()
		}
		s.mu.Unlock()
	}
	return nil
}

// backoff is the delay after `failures` failed dials in a row: random in [d/2, d] with
// d = min(BackoffMax, BackoffMin * 2^(failures-1)).
func (cl *Client) backoff(failures int) time.Duration {
	d := cl.opts.BackoffMin
	for i := 1; i < failures && d < cl.opts.BackoffMax; i++ {
		d *= 2
	}
	if d > cl.opts.BackoffMax {
		d = cl.opts.BackoffMax
	}
	return d/2 + time.Duration(rand.Int63n(int64(d/2)+1))
}

// permanent reports whether a dial error will not go away by retrying (a wrong token, a
// server that speaks another protocol).
func permanent(err error) bool {
	var e *Error
	return errors.As(err, &e) && !e.Temporary()
}

// Conn returns a live connection of the pool (dialing one if needed, with backoff, within
// ctx or, if ctx has no deadline, Options.RequestTimeout), for callers that want to
// pipeline on one connection. Do not Close it: the pool owns it.
func (cl *Client) Conn(ctx context.Context) (*Conn, error) {
	ctx, cancel := cl.requestCtx(ctx)
	defer cancel()
	return cl.conn(ctx)
}

func (cl *Client) conn(ctx context.Context) (*Conn, error) {
	n := len(cl.slots)
	for {
		cl.mu.Lock()
		closed, nextTry := cl.closed, cl.nextTry
		cl.mu.Unlock()
		if closed {
			return nil, ErrClientClosed
		}
		s := cl.slots[int(cl.rr.Add(1)-1)%n]
		s.mu.Lock()
		if s.conn != nil && s.conn.Alive() && !s.conn.Draining() {
			c := s.conn
			s.mu.Unlock()
			return c, nil
		}
		if s.dialing == nil && !time.Now().Before(nextTry) {
			c, err := cl.dial(ctx, s) // unlocks s.mu
			if err == nil || permanent(err) || ctx.Err() != nil {
				return c, err
			}
			continue
		}
		dialing := s.dialing
		s.mu.Unlock()
		// This slot is being dialed or the pool is backing off: any live connection will do.
		for i := 0; i < n; i++ {
			o := cl.slots[i]
			o.mu.Lock()
			c := o.conn
			o.mu.Unlock()
			if c != nil && c.Alive() && !c.Draining() {
				return c, nil
			}
		}
		if err := cl.waitRetry(ctx, dialing, nextTry); err != nil {
			return nil, err
		}
	}
}

// dial makes slot s's connection; s.mu is held on entry and released.
func (cl *Client) dial(ctx context.Context, s *slot) (*Conn, error) {
	ch := make(chan struct{})
	s.dialing = ch
	s.mu.Unlock()
	c, err := Dial(ctx, cl.opts)
	s.mu.Lock()
	s.dialing = nil
	close(ch)
	var old *Conn
	if err == nil {
		old, s.conn = s.conn, c
	}
	s.mu.Unlock()
	if old != nil && old.Draining() {
		go closeWhenIdle(old)
	}
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if err != nil {
		cl.failures++
		cl.lastErr = err
		cl.nextTry = time.Now().Add(cl.backoff(cl.failures))
		return nil, err
	}
	cl.failures = 0
	cl.nextTry = time.Time{}
	if cl.closed { // closed while dialing
		c.Close()
		return nil, ErrClientClosed
	}
	return c, nil
}

// closeWhenIdle closes a draining connection once its requests are answered (or after a
// minute: the server closes it anyway when it is done draining).
func closeWhenIdle(c *Conn) {
	deadline := time.Now().Add(time.Minute)
	for c.Alive() && c.InFlight() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	c.Close()
}

// waitRetry waits for a dial in progress to end or for the backoff to pass. If the
// context ends first, it returns the last dial error.
func (cl *Client) waitRetry(ctx context.Context, dialing chan struct{}, nextTry time.Time) error {
	cl.mu.Lock()
	last := cl.lastErr
	cl.mu.Unlock()
	giveUp := func() error {
		if last != nil {
			return fmt.Errorf("cachesvc: no connection to %s (reconnecting with backoff): %w", cl.opts.Addr, last)
		}
		return ctx.Err()
	}
	if dialing != nil {
		select {
		case <-dialing:
			return nil
		case <-ctx.Done():
			return giveUp()
		}
	}
	wait := time.Until(nextTry)
	if wait <= 0 {
		return nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
		return giveUp() // the backoff outlasts the request: fail now, not at the deadline
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return giveUp()
	}
}

// requestCtx applies Options.RequestTimeout to a context without a deadline.
func (cl *Client) requestCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || cl.opts.RequestTimeout < 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, cl.opts.RequestTimeout)
}

// do runs one request on a pool connection. A request whose connection was lost (before
// or after it was written) is retried on another connection, up to PoolSize times, within
// the request's context: every request of the protocol is safe to run twice. A protocol
// error is not retried.
func do[T any](cl *Client, ctx context.Context, f func(c *Conn, ctx context.Context) *Pending[T]) *Pending[T] {
	rctx, cancel := cl.requestCtx(ctx)
	p := doOnce(cl, rctx, f, len(cl.slots))
	if p.cancel == nil {
		p.cancel = cancel
	} else {
		inner := p.cancel
		p.cancel = func() { inner(); cancel() }
	}
	return p
}

func doOnce[T any](cl *Client, rctx context.Context, f func(c *Conn, ctx context.Context) *Pending[T], retries int) *Pending[T] {
	for tries := 0; ; tries++ {
		c, err := cl.conn(rctx)
		if err != nil {
			return &Pending[T]{err: err}
		}
		p := f(c, rctx)
		if p.notSent() && tries < retries {
			continue
		}
		if p.err == nil && tries < retries {
			left := retries - tries - 1
			p.again = func() *Pending[T] { return doOnce(cl, rctx, f, left) }
		}
		return p
	}
}

// GetAsync sends a GET on a pool connection and returns without waiting for the reply.
func (cl *Client) GetAsync(ctx context.Context, q Query) *Pending[*Result] {
	return do(cl, ctx, func(c *Conn, ctx context.Context) *Pending[*Result] { return c.GetAsync(ctx, q) })
}

// Get runs a configured query (see Conn.Get).
func (cl *Client) Get(ctx context.Context, q Query) (*Result, error) {
	return cl.GetAsync(ctx, q).Wait()
}

// RefreshAsync sends a REFRESH and returns without waiting for the reply.
func (cl *Client) RefreshAsync(ctx context.Context, q Query) *Pending[*Result] {
	return do(cl, ctx, func(c *Conn, ctx context.Context) *Pending[*Result] { return c.RefreshAsync(ctx, q) })
}

// Refresh re-runs a query on the database and refills the cache (see Conn.Refresh).
func (cl *Client) Refresh(ctx context.Context, q Query) (*Result, error) {
	return cl.RefreshAsync(ctx, q).Wait()
}

// MGetAsync sends an MGET and returns without waiting for the reply.
func (cl *Client) MGetAsync(ctx context.Context, qs []Query) *Pending[[]Item] {
	return do(cl, ctx, func(c *Conn, ctx context.Context) *Pending[[]Item] { return c.MGetAsync(ctx, qs) })
}

// MGet runs up to 256 queries in one request (see Conn.MGet).
func (cl *Client) MGet(ctx context.Context, qs []Query) ([]Item, error) {
	return cl.MGetAsync(ctx, qs).Wait()
}

// InvalidateKey deletes one cache entry (see Conn.InvalidateKey).
func (cl *Client) InvalidateKey(ctx context.Context, query string, params ...any) (bool, error) {
	n, err := do(cl, ctx, func(c *Conn, ctx context.Context) *Pending[uint64] {
		return c.invalidateKeyAsync(ctx, query, params)
	}).Wait()
	return n > 0, err
}

// InvalidateQuery drops every entry of a query (see Conn.InvalidateQuery).
func (cl *Client) InvalidateQuery(ctx context.Context, query string) (uint64, error) {
	return do(cl, ctx, func(c *Conn, ctx context.Context) *Pending[uint64] {
		return c.invalidateQueryAsync(ctx, query)
	}).Wait()
}

// Stats returns the server's counters and gauges.
func (cl *Client) Stats(ctx context.Context) (Stats, error) {
	return do(cl, ctx, func(c *Conn, ctx context.Context) *Pending[Stats] { return c.statsAsync(ctx) }).Wait()
}

// Ping checks the server answers.
func (cl *Client) Ping(ctx context.Context) error {
	_, err := do(cl, ctx, func(c *Conn, ctx context.Context) *Pending[struct{}] { return c.pingAsync(ctx) }).Wait()
	return err
}

// Show returns the rows of an admin view (see Conn.Show).
func (cl *Client) Show(ctx context.Context, view string) ([]map[string]any, error) {
	t, err := cl.ShowTable(ctx, view)
	return t.Rows, err
}

// ShowTable is Show with the columns in first-seen order (see Conn.ShowTable).
func (cl *Client) ShowTable(ctx context.Context, view string) (Table, error) {
	return do(cl, ctx, func(c *Conn, ctx context.Context) *Pending[Table] { return c.showAsync(ctx, view) }).Wait()
}

// Pause makes the server answer query from PostgreSQL until Resume (see Conn.Pause).
func (cl *Client) Pause(ctx context.Context, query string) (map[string]any, error) {
	return cl.admin(ctx, "pause", query)
}

// Resume serves a paused query from the cache again (see Conn.Resume).
func (cl *Client) Resume(ctx context.Context, query string) (map[string]any, error) {
	return cl.admin(ctx, "resume", query)
}

// Claim takes a query's cache back from another server's definition (see Conn.Claim).
func (cl *Client) Claim(ctx context.Context, query string) (map[string]any, error) {
	return cl.admin(ctx, "claim", query)
}

// Reload reloads the server's configuration, answered when the reload has ended (see
// Conn.Reload; the same default wait).
func (cl *Client) Reload(ctx context.Context) (map[string]any, error) {
	ctx, cancel := reloadCtx(ctx, cl.opts.RequestTimeout)
	defer cancel()
	return cl.admin(ctx, "reload", "")
}

func (cl *Client) admin(ctx context.Context, op, query string) (map[string]any, error) {
	if op != "reload" && query == "" {
		return nil, argErr("%s needs a query name", op)
	}
	return do(cl, ctx, func(c *Conn, ctx context.Context) *Pending[map[string]any] {
		return c.adminAsync(ctx, op, query)
	}).Wait()
}
