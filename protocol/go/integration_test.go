package cachesvc

// Integration tests against a real cachesvc daemon on the sandbox. They run only when
// CS_ADDR is set, which tests/integration/client_go.sh does after starting the daemon with
// the queries go_types, go_wait and go_count (see that script for the schema).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func integrationEnv(t *testing.T) (addr, token string) {
	addr = os.Getenv("CS_ADDR")
	if addr == "" {
		t.Skip("CS_ADDR is not set: run tests/integration/client_go.sh")
	}
	return addr, os.Getenv("CS_TOKEN")
}

func openClient(t *testing.T, opts Options) *Client {
	cl, err := Open(ctxT(t, 30*time.Second), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cl.Close() })
	return cl
}

// psql runs SQL on the sandbox primary in the test database and returns its output.
func psql(t *testing.T, sql string) string {
	t.Helper()
	out, err := exec.Command(os.Getenv("CS_PSQL"), "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
		"-h", os.Getenv("CS_PG_HOST"), "-p", os.Getenv("CS_PG_PORT"), "-U", "postgres",
		"-d", os.Getenv("CS_PG_DB"), "-c", sql).CombinedOutput()
	if err != nil {
		t.Fatalf("psql %q: %v: %s", sql, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestIntegrationTypesAndSources(t *testing.T) {
	addr, token := integrationEnv(t)
	cl := openClient(t, Options{Addr: addr, Token: token})
	ctx := ctxT(t, 60*time.Second)

	miss, err := cl.Get(ctx, Q("go_types", 1))
	if err != nil {
		t.Fatal(err)
	}
	if miss.Meta.Source == SourceCache || miss.Meta.LSN == 0 || miss.Meta.Stale {
		t.Errorf("first read: %+v", miss.Meta)
	}
	if miss.Meta.Stored != nil && !*miss.Meta.Stored {
		t.Errorf("a small result read from the database was not stored")
	}
	hit, err := cl.Get(ctx, Q("go_types", "1")) // "1" and 1 are one key for an int8
	if err != nil {
		t.Fatal(err)
	}
	if hit.Meta.Source != SourceCache || hit.Meta.LSN != miss.Meta.LSN {
		t.Errorf("second read: %+v (first %+v)", hit.Meta, miss.Meta)
	}
	wantCols := []Column{{"id", TypeInt}, {"b", TypeBool}, {"f", TypeFloat}, {"txt", TypeText},
		{"y", TypeBytea}, {"ts", TypeTimestamp}, {"tz", TypeTimestamptz}, {"n", TypeNumeric},
		{"j", TypeJSON}, {"arr", TypeOther}, {"d", TypeOther}, {"i4", TypeInt}, {"big", TypeInt},
		{"small", TypeInt}}
	if fmt.Sprint(hit.Columns) != fmt.Sprint(wantCols) {
		t.Errorf("columns\n got %v\nwant %v", hit.Columns, wantCols)
	}
	want := []any{int64(1), true, 1.5, "héllo", []byte{0, 0xff},
		time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC),
		time.Date(2024, 1, 2, 3, 4, 5, 123456000, time.UTC), // 04:04:05+01 as an instant
		MustDecimal("12345678901234567890.50"), json.RawMessage(`{"k": [1, 2]}`), "{a,b}",
		"2024-02-29", int64(7), int64(math.MaxInt64), int64(math.MinInt64)}
	for _, r := range []*Result{miss, hit} {
		if len(r.Rows) != 1 || fmt.Sprintf("%#v", r.Rows[0]) != fmt.Sprintf("%#v", want) {
			t.Fatalf("row\n got %#v\nwant %#v", r.Rows, want)
		}
	}
	var j struct{ K []int }
	if err := hit.ScanJSON(0, "j", &j); err != nil || fmt.Sprint(j.K) != "[1 2]" {
		t.Errorf("json column: %v %v", j, err)
	}
	// NULL in every column but the key.
	nulls, err := cl.Get(ctx, Q("go_types", 2))
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range nulls.Rows[0][1:12] {
		if v != nil {
			t.Errorf("column %s of the NULL row: %#v", nulls.Columns[i+1].Name, v)
		}
	}
	// Bypass reads the database even when the entry is cached.
	by, err := cl.Get(ctx, Query{Name: "go_types", Params: []any{1}, Bypass: true})
	if err != nil || by.Meta.Source == SourceCache {
		t.Errorf("bypass: %v %v", by, err)
	}
	// Tiers are accepted.
	for _, tier := range []Tier{TierCritical, TierDefault, TierBatch} {
		if _, err := cl.Get(ctx, Query{Name: "go_types", Params: []any{1}, Tier: tier}); err != nil {
			t.Errorf("tier %v: %v", tier, err)
		}
	}
	// Read-your-writes: a write's LSN from PostgreSQL ("X/Y"), parsed, as MinLSN.
	lsn, err := ParseLSN(psql(t, "INSERT INTO flags VALUES ('lsn-probe') ON CONFLICT DO NOTHING; SELECT pg_current_wal_lsn()"))
	if err != nil {
		t.Fatal(err)
	}
	ryw, err := cl.Get(ctx, Query{Name: "go_count", MinLSN: lsn})
	if err != nil {
		t.Fatalf("GET with MinLSN %v: %v", lsn, err)
	}
	if ryw.Meta.LSN < lsn {
		t.Errorf("MinLSN %v answered with data at %v", lsn, ryw.Meta.LSN)
	}
	if ryw.Rows[0][0] != int64(40) {
		t.Errorf("count: %#v", ryw.Rows[0][0])
	}
	if back, _ := ParseLSN(lsn.String()); back != lsn {
		t.Errorf("LSN %v does not round-trip", lsn)
	}
	// A token naming its shard: this deployment has no [shard NAME] sections, so it is
	// refused with bad_params; the same token without the shard is answered (control).
	tok, err := ParseToken("s1:" + lsn.String())
	if err != nil {
		t.Fatal(err)
	}
	_, err = cl.Get(ctx, Query{Name: "go_count"}.WithToken(tok))
	var ce *Error
	if !errors.As(err, &ce) || ce.Code != CodeBadParams || ce.Local ||
		!strings.Contains(ce.Msg, "shard tokens need [shard NAME] sections") {
		t.Errorf("GET with the token %v: %v, want the server's bad_params", tok, err)
	}
	tok.Shard = ""
	if _, err := cl.Get(ctx, Query{Name: "go_count"}.WithToken(tok)); err != nil {
		t.Errorf("GET with the bare token %v: %v", tok, err)
	}
}

func TestIntegrationOpcodes(t *testing.T) {
	addr, token := integrationEnv(t)
	cl := openClient(t, Options{Addr: addr, Token: token})
	ctx := ctxT(t, 60*time.Second)

	if err := cl.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// MGET: results and item errors, in request order.
	items, err := cl.MGet(ctx, []Query{Q("go_types", 3), Q("go_nosuch", 1), Q("go_types", 4), Q("go_count")})
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 4 || items[0].Err != nil || items[0].Result.Value(0, "txt") != "row 3" ||
		!errors.Is(items[1].Err, ErrUnknownQuery) || items[2].Err != nil ||
		items[2].Result.Value(0, "txt") != "row 4" || items[3].Err != nil {
		t.Fatalf("MGET items: %+v", items)
	}
	// REFRESH re-reads the database.
	if _, err := cl.Get(ctx, Q("go_types", 5)); err != nil {
		t.Fatal(err)
	}
	r, err := cl.Refresh(ctx, Query{Name: "go_types", Params: []any{5}, Tier: TierBatch})
	if err != nil || r.Meta.Source == SourceCache {
		t.Fatalf("REFRESH: %v %v", r, err)
	}
	// A REFRESH answer waits for its fill, so it may say whether it was stored (the
	// engine does not set "stored" yet: when it does, this small result must say true).
	if r.Meta.Stored != nil && !*r.Meta.Stored {
		t.Errorf("REFRESH of a small result: meta stored false")
	}
	// INVALIDATE one key: deleted once, then nothing to delete; the next GET misses.
	if del, err := cl.InvalidateKey(ctx, "go_types", 5); err != nil || !del {
		t.Fatalf("InvalidateKey: %v %v", del, err)
	}
	if del, err := cl.InvalidateKey(ctx, "go_types", 5); err != nil || del {
		t.Fatalf("InvalidateKey of a missing key: %v %v", del, err)
	}
	if r, err := cl.Get(ctx, Q("go_types", 5)); err != nil || r.Meta.Source == SourceCache {
		t.Fatalf("GET after INVALIDATE: %v %v", r, err)
	}
	// The zero-parameter query's one key.
	if _, err := cl.Get(ctx, Q("go_count")); err != nil {
		t.Fatal(err)
	}
	if del, err := cl.InvalidateKey(ctx, "go_count"); err != nil || !del {
		t.Fatalf("InvalidateKey of the zero-parameter key: %v %v", del, err)
	}
	// INVALIDATE the whole query: the generation goes up by one each time.
	if _, err := cl.Get(ctx, Q("go_types", 6)); err != nil {
		t.Fatal(err)
	}
	if r, err := cl.Get(ctx, Q("go_types", 6)); err != nil || r.Meta.Source != SourceCache {
		t.Fatalf("no hit before INVALIDATE of the query: %v %v", r, err)
	}
	g1, err := cl.InvalidateQuery(ctx, "go_types")
	if err != nil {
		t.Fatal(err)
	}
	g2, err := cl.InvalidateQuery(ctx, "go_types")
	if err != nil || g2 != g1+1 {
		t.Fatalf("generations %d then %d (%v)", g1, g2, err)
	}
	if r, err := cl.Get(ctx, Q("go_types", 6)); err != nil || r.Meta.Source == SourceCache {
		t.Fatalf("GET after INVALIDATE of the query: %v %v", r, err)
	}
	// STATS.
	st, err := cl.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Counters["hits"] < 1 || st.Counters["requests"] < 10 {
		t.Errorf("STATS: hits %d, requests %d", st.Counters["hits"], st.Counters["requests"])
	}
}

func TestIntegrationPipelinedOutOfOrder(t *testing.T) {
	addr, token := integrationEnv(t)
	cl := openClient(t, Options{Addr: addr, Token: token, PoolSize: 1})
	ctx := ctxT(t, 60*time.Second)
	c, err := cl.Conn(ctx) // one connection: both requests share it
	if err != nil {
		t.Fatal(err)
	}
	// cached first: a miss is answered before its fill is stored (a CI run read the key again
	// before the fill landed), so until a read of it is a hit
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		r, err := c.Get(ctx, Q("go_types", 7))
		if err != nil {
			t.Fatal(err)
		}
		if r.Meta.Source == SourceCache {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("go_types 7 never cached: %v", r)
		}
	}
	tok := fmt.Sprintf("tok-%d-%d", os.Getpid(), rand.Int63())
	slow := c.GetAsync(ctx, Q("go_wait", tok)) // a miss that waits for the flag below
	hit := c.GetAsync(ctx, Q("go_types", 7))
	r, err := hit.Wait()
	if err != nil || r.Meta.Source != SourceCache {
		t.Fatalf("hit: %v %v", r, err)
	}
	// The hit was answered while the earlier miss is still running: it cannot finish
	// before the flag exists.
	if slow.Ready() {
		t.Fatal("the slow miss finished before its flag was set")
	}
	psql(t, fmt.Sprintf("INSERT INTO flags VALUES ('%s')", tok))
	s, err := slow.Wait()
	if err != nil || s.Meta.Source == SourceCache || s.Rows[0][0] != true || s.Rows[0][1] != tok {
		t.Fatalf("slow miss: %v %v", s, err)
	}
	// Many requests at once on the one connection, all answered correctly.
	ps := make([]*Pending[*Result], 40)
	for i := range ps {
		ps[i] = c.GetAsync(ctx, Q("go_types", 1+i%40))
	}
	for i, p := range ps {
		r, err := p.Wait()
		if err != nil || r.Rows[0][0] != int64(1+i%40) {
			t.Fatalf("pipelined %d: %v %v", i, r, err)
		}
	}
}

func TestIntegrationErrors(t *testing.T) {
	addr, token := integrationEnv(t)
	ctx := ctxT(t, 60*time.Second)
	c, err := Dial(ctx, Options{Addr: addr, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Request errors: the connection stays.
	_, err = c.Get(ctx, Q("go_nosuch", 1))
	var e *Error
	if !errors.Is(err, ErrUnknownQuery) || !errors.As(err, &e) || e.Local || e.Msg == "" {
		t.Fatalf("unknown query: %v", err)
	}
	if _, err := c.Get(ctx, Q("go_types", "abc")); !errors.Is(err, ErrBadParams) {
		t.Fatalf("bad parameter: %v", err)
	}
	if _, err := c.Get(ctx, Q("go_types", 1, 2)); !errors.Is(err, ErrBadParams) {
		t.Fatalf("two parameters for one: %v", err)
	}
	if r, err := c.Get(ctx, Q("go_types", 1)); err != nil || !c.Alive() || r.Rows[0][0] != int64(1) {
		t.Fatalf("after request errors: %v %v alive=%v", r, err, c.Alive())
	}
	// A protocol error (a GET with an unknown key, which this client never sends): the
	// server answers protocol and closes; the request in flight beside it fails too.
	heldTok := fmt.Sprintf("held-%d", rand.Int63())
	defer psql(t, fmt.Sprintf("INSERT INTO flags VALUES ('%s')", heldTok)) // let its query end
	held := c.GetAsync(ctx, Q("go_wait", heldTok))
	bad := body(omap{{"q", "go_types"}, {"p", []any{1}}, {"zz", 1}})
	_, err = c.sendRaw(ctx, OpGet, bad).Wait()
	if !errors.Is(err, ErrProtocol) || !errors.As(err, &e) || e.Local {
		t.Fatalf("want the server's protocol error, got %v", err)
	}
	if c.Alive() {
		t.Fatal("the connection is alive after a protocol error")
	}
	if _, err := held.Wait(); !errors.Is(err, ErrClosed) {
		t.Fatalf("request in flight beside the protocol error: %v", err)
	}
	if err := c.Ping(ctx); !errors.Is(err, ErrNotSent) {
		t.Fatalf("request after the close: %v", err)
	}
	// The pool replaces a connection closed by a protocol error.
	cl := openClient(t, Options{Addr: addr, Token: token, PoolSize: 1})
	pc, _ := cl.Conn(ctx)
	if _, err := pc.sendRaw(ctx, 0x0a, []byte{0xc0}).Wait(); !errors.Is(err, ErrProtocol) {
		t.Fatalf("unknown opcode: %v", err)
	}
	if r, err := cl.Get(ctx, Q("go_types", 1)); err != nil || r.Rows[0][0] != int64(1) {
		t.Fatalf("pool after a protocol error: %v %v", r, err)
	}
	// A request over the server's max_frame is refused here, before it is sent.
	if _, err := cl.Get(ctx, Q("go_types", strings.Repeat("x", int(pc.Hello().MaxFrame)))); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("request over max_frame: %v", err)
	}
}

func TestIntegrationAuthAndUnixSocket(t *testing.T) {
	addr, token := integrationEnv(t)
	ctx := ctxT(t, 60*time.Second)
	for _, tok := range []string{"", "wrong-" + token} {
		_, err := Dial(ctx, Options{Addr: addr, Token: tok})
		var e *Error
		if !errors.Is(err, ErrAuth) || !errors.As(err, &e) || e.Local {
			t.Errorf("token %q: want auth, got %v", tok, err)
		}
		// The pool does not retry a wrong token.
		if _, err := Open(ctx, Options{Addr: addr, Token: tok}); !errors.Is(err, ErrAuth) {
			t.Errorf("Open with token %q: %v", tok, err)
		}
	}
	sock := os.Getenv("CS_SOCK")
	for _, a := range []string{"unix:" + sock, sock} {
		c, err := Dial(ctx, Options{Addr: a, Token: token, ClientName: "go-integration"})
		if err != nil {
			t.Fatalf("unix socket %s: %v", a, err)
		}
		if !strings.HasPrefix(c.Hello().Server, "cachesvc") || c.Hello().MaxFrame < 1024 {
			t.Errorf("HELLO reply %+v", c.Hello())
		}
		if r, err := c.Get(ctx, Q("go_types", 1)); err != nil || r.Rows[0][0] != int64(1) {
			t.Errorf("GET over %s: %v %v", a, r, err)
		}
		c.Close()
	}
}

// daemon2 runs the second daemon (its own ports), started and stopped by this test.
type daemon2 struct {
	t   *testing.T
	cmd *exec.Cmd
}

func (d *daemon2) start() {
	cmd := exec.Command(os.Getenv("CS_CACHESVC"), "-c", os.Getenv("CS_CONF2"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	log, err := os.OpenFile(os.Getenv("CS_CONF2")+".log", os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	log.Close()
	if f, err := os.OpenFile(os.Getenv("CS_PIDFILE"), os.O_APPEND|os.O_WRONLY, 0); err == nil {
		fmt.Fprintln(f, cmd.Process.Pid)
		f.Close()
	}
	d.cmd = cmd
}

func (d *daemon2) stop() {
	if d.cmd == nil {
		return
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { d.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		d.cmd.Process.Kill()
		<-done
		d.t.Error("the daemon did not exit within 15 s of SIGTERM")
	}
	d.cmd = nil
}

func TestIntegrationReconnectAfterRestart(t *testing.T) {
	_, token := integrationEnv(t)
	addr := os.Getenv("CS_ADDR2")
	d := &daemon2{t: t}
	d.start()
	t.Cleanup(d.stop)
	// The pool's backoff covers the daemon's start-up: Open retries within its context.
	cl := New(Options{Addr: addr, Token: token, PoolSize: 2,
		BackoffMin: 20 * time.Millisecond, BackoffMax: 500 * time.Millisecond})
	defer cl.Close()
	ctx := ctxT(t, 120*time.Second)
	if err := cl.Ping(ctx); err != nil {
		t.Fatalf("the second daemon never answered: %v", err)
	}
	if r, err := cl.Get(ctx, Q("go_types", 8)); err != nil || r.Rows[0][0] != int64(8) {
		t.Fatalf("before the restart: %v %v", r, err)
	}
	d.stop()
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := cl.Get(short, Q("go_types", 8))
	cancel()
	if err == nil {
		t.Fatal("a GET succeeded with the daemon stopped")
	}
	d.start()
	r, err := cl.Get(ctx, Q("go_types", 8))
	if err != nil || r.Rows[0][0] != int64(8) {
		t.Fatalf("after the restart: %v %v", r, err)
	}
	// Every pool connection works again.
	for i := 0; i < 6; i++ {
		if err := cl.Ping(ctx); err != nil {
			t.Fatalf("ping %d after the restart: %v", i, err)
		}
	}
}

func TestIntegrationConcurrentPool(t *testing.T) {
	addr, token := integrationEnv(t)
	cl := openClient(t, Options{Addr: addr, Token: token, PoolSize: 4})
	ctx := ctxT(t, 90*time.Second)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		g := g
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 40; i++ {
				id := 3 + rng.Intn(37)
				var r *Result
				var err error
				switch i % 4 {
				case 0: // a pipelined pair
					a, b := cl.GetAsync(ctx, Q("go_types", id)), cl.GetAsync(ctx, Q("go_types", id+1))
					if r, err = b.Wait(); err == nil && r.Value(0, "txt") != fmt.Sprintf("row %d", id+1) {
						err = fmt.Errorf("row %d: %v", id+1, r.Rows)
					}
					if err == nil {
						r, err = a.Wait()
					}
				case 1:
					var items []Item
					if items, err = cl.MGet(ctx, []Query{Q("go_types", id)}); err == nil {
						r, err = items[0].Result, items[0].Err
					}
				default:
					r, err = cl.Get(ctx, Q("go_types", id))
				}
				if err == nil && r.Value(0, "txt") != fmt.Sprintf("row %d", id) {
					err = fmt.Errorf("id %d answered with %v", id, r.Rows)
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d request %d: %w", g, i, err)
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
}

// TestIntegrationAdmin: SHOW and ADMIN against the daemon. show queries lists every
// configured query with real counters; an unknown view is bad_params; a paused query is
// answered from the replica, a resumed one from the cache; reload answers applied (and
// refused with the reason); with admin_token set (by a reload of the rewritten config) the
// data token gets auth on Show/Pause/Reload and the admin token succeeds.
func TestIntegrationAdmin(t *testing.T) {
	addr, token := integrationEnv(t)
	conf := os.Getenv("CS_CONF")
	if conf == "" {
		t.Fatal("CS_CONF is not set")
	}
	const adminToken = "opensesame"
	ctx := ctxT(t, 120*time.Second)
	dial := func(tok string) *Conn {
		c, err := Dial(ctx, Options{Addr: addr, Token: tok})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	queries := func(c *Conn) map[string]map[string]any {
		t.Helper()
		tab, err := c.ShowTable(ctx, "queries")
		if err != nil {
			t.Fatalf("show queries: %v", err)
		}
		if len(tab.Columns) < 11 || tab.Columns[0] != "name" {
			t.Errorf("show queries columns %v", tab.Columns)
		}
		m := map[string]map[string]any{}
		for _, r := range tab.Rows {
			m[r["name"].(string)] = r
		}
		return m
	}
	source := func(c *Conn) Source {
		t.Helper()
		r, err := c.Get(ctx, Q("user_orders", 30))
		if err != nil || r.Rows[0][0] != int64(30) {
			t.Fatalf("get user_orders 30: %v %v", r, err)
		}
		return r.Meta.Source
	}

	c := dial(token)
	if _, err := c.InvalidateKey(ctx, "user_orders", 30); err != nil {
		t.Fatal(err)
	}
	before := queries(c)
	for _, name := range []string{"go_types", "go_wait", "go_count", "user_profile", "user_orders"} {
		if before[name] == nil {
			t.Errorf("show queries has no %s: %v", name, before)
		}
	}
	q := before["user_orders"]
	if q["params"] != "id:int8" || q["kind"] != "row" || q["paused"] != false {
		t.Errorf("user_orders row %v", q)
	}
	if s := source(c); s == SourceCache {
		t.Fatalf("user_orders 30 was cached")
	}
	for i := 0; i < 3; i++ {
		if s := source(c); s != SourceCache {
			t.Fatalf("user_orders 30 read %d from %v", i, s)
		}
	}
	after := queries(c)["user_orders"]
	for k, want := range map[string]int64{"hits": 3, "misses": 1, "fills": 1} {
		if d := after[k].(int64) - q[k].(int64); d != want {
			t.Errorf("show queries %s moved by %d, want %d (%v -> %v)", k, d, want, q, after)
		}
	}
	if _, err := c.Show(ctx, "nosuch"); !errors.Is(err, ErrBadParams) || !strings.Contains(err.Error(), "queries") || !c.Alive() {
		t.Errorf("unknown view: %v", err)
	}
	for _, v := range []string{"servers", "clients", "invalidator", "config"} {
		if rows, err := c.Show(ctx, v); err != nil || len(rows) == 0 {
			t.Errorf("show %s: %v %v", v, rows, err)
		}
	}

	row, err := c.Pause(ctx, "user_orders")
	if err != nil || !reflect.DeepEqual(row, map[string]any{"query": "user_orders", "paused": true, "changed": true}) {
		t.Fatalf("pause: %v %v", row, err)
	}
	for i := 0; i < 2; i++ {
		if s := source(c); s != SourceReplica {
			t.Errorf("paused user_orders answered from %v", s)
		}
	}
	if p := queries(c)["user_orders"]["paused"]; p != true {
		t.Errorf("show queries paused: %v", p)
	}
	row, err = c.Resume(ctx, "user_orders")
	if err != nil || !reflect.DeepEqual(row, map[string]any{"query": "user_orders", "paused": false, "changed": true}) {
		t.Fatalf("resume: %v %v", row, err)
	}
	// resume starts a new generation: the entry from before the pause is not served; once
	// the bump is confirmed a miss fills and the cache answers again
	if s := source(c); s == SourceCache {
		t.Errorf("resume served user_orders from before the pause")
	}
	for deadline := time.Now().Add(10 * time.Second); source(c) != SourceCache; {
		if time.Now().After(deadline) {
			t.Fatalf("resumed user_orders never answered from the cache")
		}
		time.Sleep(100 * time.Millisecond)
	}
	// claim of a query no other definition owns: nothing to take over
	if row, err := c.Claim(ctx, "user_orders"); err != nil || row["claimed"] != false || row["query"] != "user_orders" {
		t.Fatalf("claim: %v %v", row, err)
	}
	if _, err := c.Claim(ctx, "nosuch"); !errors.Is(err, ErrUnknownQuery) {
		t.Fatalf("claim of an unknown query: %v", err)
	}
	if _, err := c.Pause(ctx, "nosuch"); !errors.Is(err, ErrUnknownQuery) {
		t.Errorf("pause nosuch: %v", err)
	}

	orig, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	withAdmin := strings.Replace(string(orig), "\nauth_token = sesame\n", "\nauth_token = sesame\nadmin_token = "+adminToken+"\n", 1)
	if withAdmin == string(orig) {
		t.Fatalf("no auth_token line in %s", conf)
	}
	write := func(s string) {
		if err := os.WriteFile(conf, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	nq := int64(len(before))
	write(withAdmin)
	defer write(string(orig))
	if row, err := c.Reload(ctx); err != nil || !reflect.DeepEqual(row, map[string]any{"reload": "applied", "queries": nq}) {
		t.Fatalf("reload: %v %v", row, err)
	}
	d := dial(token) // HELLO after admin_token was set
	if _, err := d.Show(ctx, "queries"); !errors.Is(err, ErrAuth) {
		t.Errorf("show with the data token: %v", err)
	}
	if _, err := d.Pause(ctx, "user_orders"); !errors.Is(err, ErrAuth) {
		t.Errorf("pause with the data token: %v", err)
	}
	if _, err := d.Reload(ctx); !errors.Is(err, ErrAuth) || !d.Alive() {
		t.Errorf("reload with the data token: %v", err)
	}
	if s := source(d); s != SourceCache {
		t.Errorf("the data token's read: %v", s)
	}
	a := dial(adminToken)
	if queries(a)["user_orders"] == nil {
		t.Errorf("show with the admin token")
	}
	if row, err := a.Pause(ctx, "go_count"); err != nil || row["changed"] != true {
		t.Errorf("pause with the admin token: %v %v", row, err)
	}
	if row, err := a.Resume(ctx, "go_count"); err != nil || row["changed"] != true {
		t.Errorf("resume with the admin token: %v %v", row, err)
	}
	write(string(orig) + "\n[query go_bad]\nsql = SELECT nope FROM t WHERE id = $1\nparams = id:int8\n")
	if row, err := a.Reload(ctx); err != nil || row["reload"] != "refused" || !strings.Contains(fmt.Sprint(row["error"]), "nope") {
		t.Errorf("a reload with bad SQL: %v %v", row, err)
	}
	write(string(orig))
	pool := openClient(t, Options{Addr: addr, Token: adminToken})
	if rows, err := pool.Show(ctx, "servers"); err != nil || len(rows) < 2 {
		t.Errorf("pool show servers: %v %v", rows, err)
	}
	if row, err := pool.Reload(ctx); err != nil || !reflect.DeepEqual(row, map[string]any{"reload": "applied", "queries": nq}) {
		t.Errorf("pool reload back: %v %v", row, err)
	}
	if _, err := dial(token).Show(ctx, "queries"); err != nil {
		t.Errorf("show with the data token once admin_token is gone: %v", err)
	}
}
