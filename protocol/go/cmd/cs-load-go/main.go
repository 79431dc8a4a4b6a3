// Command cs-load-go is the Go client's load generator: W1-style GET throughput and latency
// from one process, pipelined or not, so the Go client can be compared with the C client
// (bench/cs_load) on the same daemon and the same connections. It prints one JSON object.
//
//	cs-load-go -addr 127.0.0.1:6380 -c 50 -d 5s -k 1:100000 w1_profile        # 50 conns
//	cs-load-go -addr 127.0.0.1:6380 -c 50 -d 5s -k 1:100000 -P 16 w1_profile  # 16 in flight per conn
//	cs-load-go -addr 127.0.0.1:6380 -c 8 -unique -k 1:100000 w1_profile       # every key once (warm-up)
//
// Each connection is its own Conn driven by one goroutine: with -P 1 it calls Get; with
// -P N it keeps N requests in flight (GetAsync, then Wait on the oldest). The query takes one integer parameter, the key:
// Zipfian over [lo, hi] (key lo hottest, exponent -zipf), -uniform, or -unique.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"runtime/pprof"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cachesvc "cachesvc.dev/client"
)

type result struct {
	Client       string           `json:"client"`
	Query        string           `json:"query"`
	Conns        int              `json:"conns"`
	Pipeline     int              `json:"pipeline"`
	Seconds      float64          `json:"seconds"`
	Requests     int64            `json:"requests"`
	Throughput   float64          `json:"throughput"`
	LatencyUs    map[string]int64 `json:"latency_us"`
	Sources      map[string]int64 `json:"sources"`
	HitRatio     float64          `json:"hit_ratio"`
	Errors       int64            `json:"errors"`
	ErrorsByCode map[string]int64 `json:"errors_by_code"`
}

type worker struct {
	lat     []time.Duration
	sources [3]int64
	errs    map[string]int64
}

func main() {
	addr := flag.String("addr", "127.0.0.1:6380", "host:port, or unix:/path")
	token := flag.String("token", os.Getenv("CACHESVC_TOKEN"), "auth token (default $CACHESVC_TOKEN)")
	conns := flag.Int("c", 10, "connections, one goroutine each")
	dur := flag.Duration("d", 5*time.Second, "run this long")
	depth := flag.Int("P", 1, "requests in flight per connection (the server's max_inflight is 128 by default)")
	keys := flag.String("k", "1:100000", "key range LO:HI")
	zipf := flag.Float64("zipf", 1.1, "Zipfian exponent (> 1)")
	uniform := flag.Bool("uniform", false, "uniform keys")
	unique := flag.Bool("unique", false, "each key of the range once, then stop (warm-up)")
	timeout := flag.Duration("t", 10*time.Second, "per-request timeout")
	seed := flag.Int64("seed", 1, "random seed")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: cs-load-go [flags] QUERY\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 || *conns < 1 || *depth < 1 || *zipf <= 1 {
		flag.Usage()
		os.Exit(2)
	}
	query := flag.Arg(0)
	lo, hi, err := parseRange(*keys)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cs-load-go:", err)
		os.Exit(2)
	}

	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cs-load-go:", err)
			os.Exit(2)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	ctx := context.Background()
	cs := make([]*cachesvc.Conn, *conns)
	for i := range cs {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		cs[i], err = cachesvc.Dial(dctx, cachesvc.Options{Addr: *addr, Token: *token,
			ClientName: "cs-load-go", RequestTimeout: *timeout})
		cancel()
		if err != nil {
			fmt.Fprintln(os.Stderr, "cs-load-go:", err)
			os.Exit(1)
		}
		defer cs[i].Close()
	}

	var next atomic.Int64 // -unique: the next key
	next.Store(lo)
	var stop atomic.Bool
	ws := make([]*worker, *conns)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range cs {
		w := &worker{errs: map[string]int64{}}
		ws[i] = w
		rng := rand.New(rand.NewSource(*seed + int64(i)))
		var z *rand.Zipf
		if !*uniform {
			z = rand.NewZipf(rng, *zipf, 1, uint64(hi-lo))
		}
		key := func() (int64, bool) {
			switch {
			case *unique:
				k := next.Add(1) - 1
				return k, k <= hi
			case z != nil:
				return lo + int64(z.Uint64()), true
			}
			return lo + rng.Int63n(hi-lo+1), true
		}
		wg.Add(1)
		go func(c *cachesvc.Conn) {
			defer wg.Done()
			if *depth == 1 { // not pipelined: what a caller of Get sees
				for !stop.Load() {
					k, ok := key()
					if !ok {
						return
					}
					at := time.Now()
					r, err := c.Get(ctx, cachesvc.Q(query, k))
					if !w.done(r, err, at) && !c.Alive() {
						return
					}
				}
				return
			}
			type flight struct {
				p  *cachesvc.Pending[*cachesvc.Result]
				at time.Time
			}
			ring := make([]flight, 0, *depth)
			send := func() bool {
				if stop.Load() {
					return false
				}
				k, ok := key()
				if !ok {
					return false
				}
				ring = append(ring, flight{c.GetAsync(ctx, cachesvc.Q(query, k)), time.Now()})
				return true
			}
			for len(ring) < *depth && send() {
			}
			for len(ring) > 0 {
				f := ring[0]
				ring = ring[1:]
				r, err := f.p.Wait()
				if !w.done(r, err, f.at) && !c.Alive() {
					return
				}
				send()
			}
		}(cs[i])
	}
	if !*unique {
		time.Sleep(*dur)
		stop.Store(true)
	}
	wg.Wait()
	elapsed := time.Since(start)

	res := result{Client: "go", Query: query, Conns: *conns, Pipeline: *depth,
		Seconds: elapsed.Seconds(), LatencyUs: map[string]int64{},
		Sources: map[string]int64{}, ErrorsByCode: map[string]int64{}}
	var all []time.Duration
	var src [3]int64
	for _, w := range ws {
		all = append(all, w.lat...)
		for i, n := range w.sources {
			src[i] += n
		}
		for k, n := range w.errs {
			res.ErrorsByCode[k] += n
			res.Errors += n
		}
	}
	res.Requests = int64(len(all))
	res.Throughput = float64(len(all)) / elapsed.Seconds()
	for i, n := range src {
		res.Sources[cachesvc.Source(i).String()] = n
	}
	if len(all) > 0 {
		res.HitRatio = float64(src[cachesvc.SourceCache]) / float64(len(all))
		sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
		var sum time.Duration
		for _, d := range all {
			sum += d
		}
		pct := func(p float64) int64 { return all[int(p*float64(len(all)-1))].Microseconds() }
		res.LatencyUs = map[string]int64{"p50": pct(0.50), "p90": pct(0.90), "p99": pct(0.99),
			"p999": pct(0.999), "max": all[len(all)-1].Microseconds(),
			"mean": (sum / time.Duration(len(all))).Microseconds()}
	}
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if res.Requests == 0 {
		os.Exit(1)
	}
}

// done records one answer; false for an error.
func (w *worker) done(r *cachesvc.Result, err error, at time.Time) bool {
	if err != nil {
		var e *cachesvc.Error
		name := "client"
		if errors.As(err, &e) {
			name = e.Name()
		} else if errors.Is(err, cachesvc.ErrClosed) {
			name = "closed"
		}
		w.errs[name]++
		return false
	}
	w.lat = append(w.lat, time.Since(at))
	w.sources[r.Meta.Source]++
	return true
}

func parseRange(s string) (int64, int64, error) {
	a, b, ok := strings.Cut(s, ":")
	lo, err1 := strconv.ParseInt(a, 10, 64)
	hi, err2 := strconv.ParseInt(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || lo > hi {
		return 0, 0, fmt.Errorf("-k takes LO:HI with LO <= HI, not %q", s)
	}
	return lo, hi, nil
}
