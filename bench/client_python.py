#!/usr/bin/python3
"""client_python.py - W1 hit throughput of the Python client (protocol/python) from one
process, not pipelined and pipelined, sync and asyncio; optionally next to the C client
(cs_load) on the same number of connections, so a user sees what the client itself costs.

    /usr/bin/python3 bench/client_python.py -a 127.0.0.1:6380 [-t TOKEN] [-q w1_profile]
        [-k 1:100000] [-d 5] [-P 16] [--cs-load build/bench/cs_load]

The query takes one integer key (W1: SELECT id, name, email FROM users WHERE id = $1). The
keys are first read once (MGET batches) so every measured request is a hit; keys are then
drawn Zipfian (s = 1.1, key lo hottest, like cs_load) from a precomputed CDF. Every run
uses ONE connection. Prints a table of requests/s and of this process's CPU time per
request (what the client costs, whatever the machine's load), and one JSON line. Asserts
nothing.
"""

import argparse
import asyncio
import bisect
import json
import os
import random
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "protocol", "python", "src"))

import cachesvc  # noqa: E402
from cachesvc import aio  # noqa: E402


def zipf_sampler(lo, hi, s, seed):
    n = hi - lo + 1
    acc, cdf = 0.0, []
    for k in range(1, n + 1):
        acc += 1.0 / k**s
        cdf.append(acc)
    rnd = random.Random(seed)
    total = cdf[-1]
    return lambda: lo + bisect.bisect_left(cdf, rnd.random() * total)


def warm(conn, query, lo, hi):
    """Reads every key once (MGET batches of 16; overloaded items are retried after a
    pause). Returns how many were misses."""
    miss = 0
    todo = list(range(lo, hi + 1))
    pause = 0.01
    while todo:
        again = []
        for i in range(0, len(todo), 16):
            batch = todo[i : i + 16]
            for k, r in zip(batch, conn.mget([(query, [k]) for k in batch])):
                if isinstance(r, cachesvc.OverloadedError):
                    again.append(k)
                elif isinstance(r, Exception):
                    raise r
                else:
                    miss += r.meta.source != cachesvc.Source.CACHE
        if again:
            time.sleep(pause)
            pause = min(1.0, pause * 2)
        todo = again
    return miss


def run_sync(conn, query, keys, duration, depth):
    """depth 1: one GET, wait, next. depth P: P GETs in one write, then their P replies."""
    n = hits = 0
    end = time.monotonic() + duration
    t0 = time.monotonic()
    c0 = time.process_time()
    if depth == 1:
        while time.monotonic() < end:
            r = conn.get(query, [keys()])
            n += 1
            hits += r.meta.source == cachesvc.Source.CACHE
    else:
        while time.monotonic() < end:
            out = conn.pipeline([cachesvc.Get(query, [keys()]) for _ in range(depth)])
            n += depth
            hits += sum(r.meta.source == cachesvc.Source.CACHE for r in out)
    return n, hits, time.monotonic() - t0, time.process_time() - c0


async def run_async(addr, token, query, keys, duration, depth):
    """depth coroutines issuing GETs back to back on one connection."""
    conn = await aio.connect(addr, token=token, timeout=30)
    counts = [0, 0]
    end = time.monotonic() + duration

    async def worker():
        while time.monotonic() < end:
            r = await conn.get(query, [keys()])
            counts[0] += 1
            counts[1] += r.meta.source == cachesvc.Source.CACHE

    t0 = time.monotonic()
    c0 = time.process_time()
    await asyncio.gather(*(worker() for _ in range(depth)))
    elapsed = time.monotonic() - t0
    cpu = time.process_time() - c0
    conn.close()
    return counts[0], counts[1], elapsed, cpu


def run_cs_load(path, addr, token, query, lo, hi, duration, depth):
    if addr.startswith("unix:") or addr.startswith("/"):
        target = ["-s", addr[5:] if addr.startswith("unix:") else addr]
    else:
        host, _, port = addr.rpartition(":")
        target = ["-h", host, "-p", port] if host not in ("", "127.0.0.1") else ["-p", port]
    cmd = [path, *target, "-c", "1", "-d", str(duration), "-k", f"{lo}:{hi}"]
    if depth > 1:
        cmd += ["-P", str(depth)]
    env = dict(os.environ)
    if token:
        env["CACHESVC_TOKEN"] = token
    out = subprocess.run(cmd + [query], capture_output=True, text=True, env=env, timeout=duration + 60)
    if out.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {out.stderr.strip()}")
    return json.loads(out.stdout)["throughput"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-a", "--addr", default="127.0.0.1:6380")
    ap.add_argument("-t", "--token", default=os.environ.get("CACHESVC_TOKEN"))
    ap.add_argument("-q", "--query", default="w1_profile")
    ap.add_argument("-k", "--keys", default="1:100000", help="key range lo:hi (default 1:100000)")
    ap.add_argument("-d", "--duration", type=float, default=5.0, help="seconds per run (default 5)")
    ap.add_argument("-P", "--depth", type=int, default=16, help="pipeline depth (default 16)")
    ap.add_argument("--no-warm", action="store_true", help="skip reading every key first")
    ap.add_argument("--cs-load", help="path of bench's cs_load: also run the C client (1 connection)")
    args = ap.parse_args()
    lo, hi = (int(x) for x in args.keys.split(":"))

    conn = cachesvc.connect(args.addr, token=args.token, timeout=30)
    if not args.no_warm:
        t = time.monotonic()
        misses = warm(conn, args.query, lo, hi)
        print(f"warmed {hi - lo + 1} keys ({misses} misses) in {time.monotonic() - t:.1f} s", file=sys.stderr)
    keys = zipf_sampler(lo, hi, 1.1, 1)

    rows = []

    def record(name, n, hits, elapsed, cpu, c_rate=None):
        rate = n / elapsed if elapsed > 0 else 0.0
        rows.append({"run": name, "requests": n, "hit_ratio": round(hits / n, 4) if n else 0,
                     "req_per_s": round(rate), "cpu_us_per_req": round(cpu / n * 1e6, 1) if n else None,
                     "c_client_req_per_s": round(c_rate) if c_rate else None})

    c1 = cP = None
    if args.cs_load:
        c1 = run_cs_load(args.cs_load, args.addr, args.token, args.query, lo, hi, args.duration, 1)
        cP = run_cs_load(args.cs_load, args.addr, args.token, args.query, lo, hi, args.duration, args.depth)
    record("sync, not pipelined", *run_sync(conn, args.query, keys, args.duration, 1), c1)
    record(f"sync, pipelined -P {args.depth}", *run_sync(conn, args.query, keys, args.duration, args.depth), cP)
    conn.close()
    record("asyncio, 1 in flight", *asyncio.run(run_async(args.addr, args.token, args.query, keys, args.duration, 1)), c1)
    record(f"asyncio, {args.depth} in flight",
           *asyncio.run(run_async(args.addr, args.token, args.query, keys, args.duration, args.depth)), cP)

    print(f"W1 hits ({args.query}, keys {lo}:{hi} Zipf 1.1), one connection, {args.duration:g} s per run")
    print(f"{'run':28} {'req/s':>10} {'CPU us/req':>11} {'hit ratio':>10} {'C client':>10} {'Python/C':>9}")
    for r in rows:
        c = r["c_client_req_per_s"]
        ratio = f"{r['req_per_s'] / c:.2f}" if c else "-"
        print(f"{r['run']:28} {r['req_per_s']:>10} {r['cpu_us_per_req']:>11} {r['hit_ratio']:>10} "
              f"{c if c else '-':>10} {ratio:>9}")
    print(json.dumps({"bench": "client_python", "query": args.query, "keys": args.keys,
                      "duration": args.duration, "depth": args.depth, "runs": rows}))


if __name__ == "__main__":
    main()
