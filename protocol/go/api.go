package cachesvc

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"
)

// Pending is a request in flight (pipelining): send many, then Wait for each, in any
// order. Replies are matched by request id, so a fast reply is never held up behind a slow
// one. Call Wait exactly once or more; it is safe from any goroutine.
type Pending[T any] struct {
	c      *Conn
	cl     *call
	id     uint32
	ctx    context.Context
	cancel context.CancelFunc
	decode func([]byte) (T, error)
	err    error // the send failed
	// again re-sends the request on another connection (Client only): every request of
	// the protocol may safely run twice, so one lost with its connection is retried.
	again func() *Pending[T]

	once     sync.Once
	finished atomic.Bool
	val      T
	werr     error
}

// Wait blocks until the reply arrives (or the request's context ends) and returns it.
func (p *Pending[T]) Wait() (T, error) {
	p.once.Do(func() {
		defer p.finished.Store(true)
		if p.cancel != nil {
			defer p.cancel()
		}
		p.val, p.werr = p.wait1()
		if p.werr != nil && p.again != nil && errors.Is(p.werr, ErrClosed) && !errors.Is(p.werr, ErrProtocol) {
			p.val, p.werr = p.again().Wait()
		}
	})
	return p.val, p.werr
}

func (p *Pending[T]) wait1() (T, error) {
	var zero T
	if p.err != nil {
		return zero, p.err
	}
	body, err := p.c.wait(p.ctx, p.cl, p.id)
	if err != nil {
		return zero, err
	}
	v, err := p.decode(body)
	if err != nil {
		p.c.decodeFailed(err)
	}
	return v, err
}

// Ready reports whether the reply (or the request's failure) is there: Wait would return
// without blocking.
func (p *Pending[T]) Ready() bool {
	return p.err != nil || p.finished.Load() || len(p.cl.ch) > 0
}

// notSent reports whether the request was never written (safe to retry elsewhere).
func (p *Pending[T]) notSent() bool {
	ce, ok := p.err.(*closedErr)
	return ok && !ce.sent
}

func start[T any](ctx context.Context, c *Conn, op byte, build func([]byte, uint32) ([]byte, error),
	decode func([]byte) (T, error)) *Pending[T] {
	rctx, cancel := c.requestCtx(ctx)
	cl, id, err := c.send(rctx, op, build)
	if err != nil {
		cancel()
		return &Pending[T]{err: err}
	}
	return &Pending[T]{c: c, cl: cl, id: id, ctx: rctx, cancel: cancel, decode: decode}
}

// GetAsync sends a GET and returns without waiting for the reply.
func (c *Conn) GetAsync(ctx context.Context, q Query) *Pending[*Result] {
	return start(ctx, c, OpGet, func(b []byte, id uint32) ([]byte, error) {
		return appendGet(b, OpGet, id, &q)
	}, c.decodeResult)
}

// Get runs a configured query: from the cache, or on a miss from a replica (or the
// primary), filling the cache. Errors: *Error for an error reply (errors.Is with
// ErrUnknownQuery, ErrBadParams, ...), ErrClosed if the connection died, or the context's
// error.
func (c *Conn) Get(ctx context.Context, q Query) (*Result, error) { return c.GetAsync(ctx, q).Wait() }

// RefreshAsync sends a REFRESH and returns without waiting for the reply.
func (c *Conn) RefreshAsync(ctx context.Context, q Query) *Pending[*Result] {
	return start(ctx, c, OpRefresh, func(b []byte, id uint32) ([]byte, error) {
		return appendGet(b, OpRefresh, id, &q)
	}, c.decodeResult)
}

// Refresh re-runs the query on the database and refills the cache (cache warming; warm-up
// jobs use Tier: TierBatch).
func (c *Conn) Refresh(ctx context.Context, q Query) (*Result, error) {
	return c.RefreshAsync(ctx, q).Wait()
}

// MGetAsync sends an MGET and returns without waiting for the reply.
func (c *Conn) MGetAsync(ctx context.Context, qs []Query) *Pending[[]Item] {
	n := len(qs)
	return start(ctx, c, OpMGet, func(b []byte, id uint32) ([]byte, error) {
		return appendMGet(b, id, qs)
	}, func(body []byte) ([]Item, error) { return DecodeMGetMax(body, n, c.opts.MaxCells) })
}

// MGet runs up to 256 queries in one request. It returns one Item per query, in order;
// an item that failed carries its *Error (which does not affect the others).
func (c *Conn) MGet(ctx context.Context, qs []Query) ([]Item, error) {
	return c.MGetAsync(ctx, qs).Wait()
}

func invalidateDecoder(whole bool) func([]byte) (uint64, error) {
	return func(body []byte) (uint64, error) {
		n, w, err := DecodeInvalidate(body)
		if err == nil && w != whole {
			err = protoErr("INVALIDATE reply of the wrong kind")
		}
		return n, err
	}
}

func (c *Conn) invalidateKeyAsync(ctx context.Context, query string, params []any) *Pending[uint64] {
	if params == nil {
		params = []any{}
	}
	return start(ctx, c, OpInvalidate, func(b []byte, id uint32) ([]byte, error) {
		return appendInvalidate(b, id, query, params, true)
	}, invalidateDecoder(false))
}

func (c *Conn) invalidateQueryAsync(ctx context.Context, query string) *Pending[uint64] {
	return start(ctx, c, OpInvalidate, func(b []byte, id uint32) ([]byte, error) {
		return appendInvalidate(b, id, query, nil, false)
	}, invalidateDecoder(true))
}

func (c *Conn) statsAsync(ctx context.Context) *Pending[Stats] {
	return start(ctx, c, OpStats, func(b []byte, id uint32) ([]byte, error) {
		return appendEmpty(b, OpStats, id), nil
	}, DecodeStats)
}

func (c *Conn) pingAsync(ctx context.Context) *Pending[struct{}] {
	return start(ctx, c, OpPing, func(b []byte, id uint32) ([]byte, error) {
		return appendEmpty(b, OpPing, id), nil
	}, func(body []byte) (struct{}, error) { return struct{}{}, DecodeNil(body) })
}

// InvalidateKey deletes the cache entry of one query's parameters; it reports whether an
// entry existed. (A zero-parameter query's one key is InvalidateKey(ctx, name).)
func (c *Conn) InvalidateKey(ctx context.Context, query string, params ...any) (bool, error) {
	n, err := c.invalidateKeyAsync(ctx, query, params).Wait()
	return n > 0, err
}

// InvalidateQuery drops every cached entry of a query at once (O(1): it bumps the query's
// generation) and returns the new generation number.
func (c *Conn) InvalidateQuery(ctx context.Context, query string) (uint64, error) {
	return c.invalidateQueryAsync(ctx, query).Wait()
}

// Stats returns the server's counters and gauges.
func (c *Conn) Stats(ctx context.Context) (Stats, error) { return c.statsAsync(ctx).Wait() }

// Ping checks the server answers.
func (c *Conn) Ping(ctx context.Context) error {
	_, err := c.pingAsync(ctx).Wait()
	return err
}

// ReloadTimeout is the least time Reload waits when its context has no deadline: the
// server answers when its checked reload has ended (it prepares every new query on a
// replica, bounded by the server's request_timeout), which may outlast an ordinary request.
const ReloadTimeout = 30 * time.Second

// reloadCtx gives a context without a deadline max(RequestTimeout, ReloadTimeout).
func reloadCtx(ctx context.Context, requestTimeout time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || requestTimeout < 0 {
		return ctx, func() {}
	}
	if requestTimeout < ReloadTimeout {
		requestTimeout = ReloadTimeout
	}
	return context.WithTimeout(ctx, requestTimeout)
}

func (c *Conn) showAsync(ctx context.Context, view string) *Pending[Table] {
	return start(ctx, c, OpShow, func(b []byte, id uint32) ([]byte, error) {
		return appendShow(b, id, view)
	}, func(body []byte) (Table, error) {
		rows, cols, err := DecodeRows(body, c.opts.MaxCells)
		return Table{Columns: cols, Rows: rows}, err
	})
}

func (c *Conn) adminAsync(ctx context.Context, op, query string) *Pending[map[string]any] {
	return start(ctx, c, OpAdmin, func(b []byte, id uint32) ([]byte, error) {
		return appendAdmin(b, id, op, query)
	}, DecodeAdmin)
}

// Show returns the rows of an admin view (PROTOCOL.md 3.8): "queries", "servers",
// "clients", "invalidator", "config" or "slots". Each row maps a column name to nil, bool, int64,
// float64 or string; rows may differ in their columns (unknown ones are kept). An unknown
// view is ErrBadParams (its message lists the views); without the admin token, when the
// server has one, ErrAuth (the connection stays usable).
func (c *Conn) Show(ctx context.Context, view string) ([]map[string]any, error) {
	t, err := c.showAsync(ctx, view).Wait()
	return t.Rows, err
}

// ShowTable is Show with the columns: the union of the rows' keys in first-seen order.
func (c *Conn) ShowTable(ctx context.Context, view string) (Table, error) {
	return c.showAsync(ctx, view).Wait()
}

// Pause makes this server answer query from PostgreSQL, bypassing the cache, until Resume
// (PROTOCOL.md 3.9; kept across reloads, this server only). The reply row says
// {"query": name, "paused": true, "changed": bool (it was not paused)}. An unknown query is
// ErrUnknownQuery; without the admin token ErrAuth.
func (c *Conn) Pause(ctx context.Context, query string) (map[string]any, error) {
	if query == "" {
		return nil, argErr("Pause needs a query name")
	}
	return c.adminAsync(ctx, "pause", query).Wait()
}

// Resume serves a paused query from the cache again: {"query", "paused": false, "changed"}.
func (c *Conn) Resume(ctx context.Context, query string) (map[string]any, error) {
	if query == "" {
		return nil, argErr("Resume needs a query name")
	}
	return c.adminAsync(ctx, "resume", query).Wait()
}

// Claim makes this server's definition of query own its cache again where another server's
// definition took it over (a rolling deploy whose other side is gone: neither a reload
// with the definition unchanged nor Resume takes it back), with a new generation:
// {"query", "claimed": bool (another definition owned it)}.
func (c *Conn) Claim(ctx context.Context, query string) (map[string]any, error) {
	if query == "" {
		return nil, argErr("Claim needs a query name")
	}
	return c.adminAsync(ctx, "claim", query).Wait()
}

// Reload reloads the server's configuration file, checked as on SIGHUP, and returns when
// the reload has ended: {"reload": "applied", "queries": n} or {"reload": "refused",
// "error": why} (a refusal is a reply, not an error). Without a deadline in ctx it waits
// up to the longer of Options.RequestTimeout and ReloadTimeout. ErrOverloaded while
// another reload is being checked (retry).
func (c *Conn) Reload(ctx context.Context) (map[string]any, error) {
	ctx, cancel := reloadCtx(ctx, c.opts.RequestTimeout)
	defer cancel()
	return c.adminAsync(ctx, "reload", "").Wait()
}

// sendRaw sends a frame with any opcode and body (for tests of the server's protocol
// errors); the reply is returned undecoded.
func (c *Conn) sendRaw(ctx context.Context, op byte, body []byte) *Pending[[]byte] {
	return start(ctx, c, op, func(b []byte, id uint32) ([]byte, error) {
		start := len(b)
		return finishFrame(append(appendHeader(b, op, id), body...), start), nil
	}, func(body []byte) ([]byte, error) { return body, nil })
}

func (c *Conn) decodeResult(body []byte) (*Result, error) {
	return DecodeResultMax(body, c.opts.MaxCells)
}
