#!/usr/bin/env python3
"""report.py - bench/run's helper: turns pgbench and redis-benchmark output into the same JSON
shape as cs_load's, and prints the side-by-side table (and writes it as JSON).

  report.py pgbench OUT.json LOGPREFIX < pgbench-stdout     tps + latency percentiles (us)
  report.py redisbench OUT.json < redis-benchmark --csv     one object per test
  report.py table RESULTS_DIR OUT.json                      the table, from RESULTS_DIR/*.json

Runs are stored per round (NAME.rN.json, with cpu_NAME.rN.json: the CPU milliseconds each
process spent on it); `table` first merges the rounds of each NAME into NAME.json: every
number is the median over the rounds, "rounds" keeps each round's figures, and "cpu" the
median CPU microseconds per request of the load generator (client), the cachesvc daemon,
Redis and PostgreSQL, with the 1-minute load average at the start and end of each round.
"""
import glob
import json
import math
import os
import re
import sys


def pct(sorted_vals, q):
    """Nearest-rank quantile of an ascending list (0 when empty)."""
    if not sorted_vals:
        return 0
    k = max(1, math.ceil(q * len(sorted_vals)))
    return sorted_vals[k - 1]


def cmd_pgbench(out, prefix):
    text = sys.stdin.read()
    m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    tps = float(m.group(1)) if m else 0.0
    fails = re.search(r"number of failed transactions: (\d+)", text)
    lat = []
    for path in glob.glob(prefix + "*"):
        with open(path) as f:
            for line in f:
                parts = line.split()
                # client_id transaction_no time script_no time_epoch time_us [lag]
                if len(parts) >= 6 and parts[2].isdigit():
                    lat.append(int(parts[2]))
    lat.sort()
    res = {
        "throughput": tps,
        "requests": len(lat),
        "errors": int(fails.group(1)) if fails else (0 if m else 1),
        "latency_us": {
            "count": len(lat),
            "mean": (sum(lat) / len(lat)) if lat else 0,
            "p50": pct(lat, 0.5), "p90": pct(lat, 0.9), "p99": pct(lat, 0.99),
            "p999": pct(lat, 0.999), "max": lat[-1] if lat else 0,
        },
    }
    if not m:
        res["output"] = text[-2000:]
    with open(out, "w") as f:
        json.dump(res, f)


def cmd_redisbench(out):
    # redis-benchmark 7 --csv: "test","rps","avg_latency_ms","min_latency_ms",
    # "p50_latency_ms","p95_latency_ms","p99_latency_ms","max_latency_ms"
    res = {}
    header = None
    for line in sys.stdin:
        cols = [c.strip('"') for c in line.strip().split('","')]
        if not cols or not cols[0]:
            continue
        if cols[0] == "test":
            header = cols
            continue
        if header is None or len(cols) != len(header):
            continue
        row = dict(zip(header, cols))
        res[row["test"]] = {
            "throughput": float(row["rps"]),
            "latency_us": {
                "mean": float(row["avg_latency_ms"]) * 1000,
                "p50": float(row["p50_latency_ms"]) * 1000,
                "p99": float(row["p99_latency_ms"]) * 1000,
                "max": float(row["max_latency_ms"]) * 1000,
            },
        }
    with open(out, "w") as f:
        json.dump(res, f)


def load(d, name):
    try:
        with open(os.path.join(d, name + ".json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def get(obj, *path):
    for p in path:
        if obj is None:
            return None
        obj = obj.get(p) if isinstance(obj, dict) else None
    return obj


def fmt_num(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, str):
        return v
    if abs(v) >= 100:
        s = f"{v:,.0f}"
    elif abs(v) >= 10:
        s = f"{v:.1f}"
    else:
        s = f"{v:.2f}"
    return s + unit


def median(vals):
    vals = sorted(vals)
    n = len(vals)
    if n == 0:
        return None
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2


def merge(objs):
    """Median of every number over objs (same shape); anything else from the first."""
    first = objs[0]
    if isinstance(first, dict):
        return {k: merge([o.get(k) for o in objs if isinstance(o, dict) and k in o])
                for k in first}
    nums = [o for o in objs if isinstance(o, (int, float)) and not isinstance(o, bool)]
    if nums and len(nums) == len(objs):
        m = median(nums)
        return int(m) if all(isinstance(o, int) for o in nums) and m == int(m) else m
    return first


def requests_of(res, cpu):
    if cpu and cpu.get("requests"):
        return cpu["requests"]
    if isinstance(res, dict):
        return res.get("requests") or res.get("ops")
    return None


def combine_rounds(d):
    """NAME.rN.json (+ cpu_NAME.rN.json) -> NAME.json with medians, rounds and cpu."""
    names = {}
    for path in glob.glob(os.path.join(d, "*.r[0-9]*.json")):
        base = os.path.basename(path)
        m = re.match(r"(.+)\.r(\d+)\.json$", base)
        if m and not m.group(1).startswith("cpu_"):
            names.setdefault(m.group(1), []).append(int(m.group(2)))
    for name, rounds in names.items():
        res, cpus = [], []
        for r in sorted(rounds):
            j = load(d, f"{name}.r{r}")
            if j is None:
                continue
            c = load(d, f"cpu_{name}.r{r}")
            n = requests_of(j, c)
            per = None
            if c and n:
                per = {k: c[k + "_ms"] * 1000.0 / n for k in ("client", "daemon", "redis", "pg")}
                per.update(load1_start=c.get("load1_start"), load1_end=c.get("load1_end"),
                           wall_s=c.get("wall_s"), requests=n)
            res.append(j)
            cpus.append(per)
        if not res:
            continue
        merged = merge(res)
        got = [c for c in cpus if c]
        if got:
            merged["cpu"] = merge(got)
            merged["cpu"]["load1"] = [c["load1_start"] for c in got] + [got[-1]["load1_end"]]
        merged["rounds"] = [{"throughput": get(j, "throughput") or get(j, "GET", "throughput")
                             or get(j, "PING_MBULK", "throughput") or get(j, "ops_per_sec"),
                             "cpu_us_per_request": c} for j, c in zip(res, cpus)]
        with open(os.path.join(d, name + ".json"), "w") as f:
            json.dump(merged, f)


def fmt_cpu(c):
    """client/daemon/redis/pg CPU us per request, e.g. "9.8/25/8.0/0"."""
    if not c:
        return ""
    return "/".join(fmt_num(c.get(k)) if c.get(k) is not None else "-"
                    for k in ("client", "daemon", "redis", "pg"))


def cmd_table(d, out):
    combine_rounds(d)
    meta = load(d, "meta") or {}
    rows = []

    def cpu_for(n):
        """The run's median CPU per request; for a run outside the rounds (lag), its one
        cpu_NAME.r1.json divided by the requests recorded there. A list of runs (a baseline
        that is the sum of several, as the miss row's): each process's CPU summed over them."""
        if not n:
            return None
        if isinstance(n, (list, tuple)):
            parts = [cpu_for(x) for x in n]
            if None in parts:
                return None
            c = {k: sum(p.get(k) or 0.0 for p in parts) for k in ("client", "daemon", "redis", "pg")}
            c["load1"] = [x for p in parts for x in (p.get("load1") or [])]
            return c
        c = get(load(d, n), "cpu")
        raw = load(d, f"cpu_{n}.r1")
        if c is None and raw and raw.get("requests"):
            c = {k: raw[k + "_ms"] * 1000.0 / raw["requests"]
                 for k in ("client", "daemon", "redis", "pg")}
            c["load1"] = [raw.get("load1_start"), raw.get("load1_end")]
        return c

    def row(name, ours, base, target=None, kind="ge", unit="", ratio=None, note="",
            met=None, a=None, b=None):
        """kind: ge (ratio >= target), le (ratio <= target), eq (ours == target)."""
        if ratio is None and isinstance(ours, (int, float)) and isinstance(base, (int, float)) \
                and base:
            ratio = ours / base
        if met is None and target is not None:
            if kind == "eq":
                met = ours is not None and not isinstance(ours, str) and ours == target
            elif ratio is not None:
                met = ratio >= target if kind == "ge" else ratio <= target
        tgt = "" if target is None else ({"ge": ">= ", "le": "<= ", "eq": "= "}[kind] +
                                          (f"{target:g}" + ("" if kind == "eq" else "x")))
        ca, cb = cpu_for(a), cpu_for(b)
        loads = (get(ca, "load1") or []) + (get(cb, "load1") or [])
        loads = [x for x in loads if isinstance(x, (int, float))]
        rows.append({
            "name": name, "cachesvc": ours, "baseline": base, "unit": unit,
            "ratio": ratio, "target": tgt,
            "met": None if target is None else bool(met) if met is not None else None,
            "note": note, "runs": [a, b],
            "cpu_us_per_request": {"cachesvc": ca, "baseline": cb},
            "load1": [min(loads), max(loads)] if loads else None,
        })

    tp = lambda n: get(load(d, n), "throughput")
    lat = lambda n, q: get(load(d, n), "latency_us", q)
    hit = lambda n: get(load(d, n), "hit_ratio")
    rb = load(d, "redis_get") or {}
    rbp = load(d, "redis_get_p16") or {}
    rget = get(rb, "GET")
    rgetp = get(rbp, "GET")
    conns = meta.get("conns")

    # Row names are kept fixed (issue 16's table) so runs compare over time; the
    # connection count and value size are in the note.
    near_on = load(d, "cs_w1_near") is not None
    na = lambda v: v if near_on else "n/a (near cache daemon did not start)"
    row("W1 hit throughput, near cache (req/s) vs redis-benchmark GET",
        na(tp("cs_w1_near")), get(rget, "throughput"), 1.2, "ge",
        note=f"{conns} conns, no pipelining, value {meta.get('value_size')} B; hit ratio "
             f"{fmt_num(hit('cs_w1_near'))}", a="cs_w1_near", b="redis_get")
    row("W1 hit throughput, no near cache (req/s) vs redis-benchmark GET",
        tp("cs_w1_warm"), get(rget, "throughput"), 0.9, "ge",
        note=f"{conns} conns, no pipelining, value {meta.get('value_size')} B; hit ratio "
             f"{fmt_num(hit('cs_w1_warm'))}", a="cs_w1_warm", b="redis_get")
    row("W1 hit p99, near cache (us) vs redis-benchmark GET p99", na(lat("cs_w1_near", "p99")),
        get(rget, "latency_us", "p99"), 1.0, "le", note="p50 %s vs %s us" % (
            fmt_num(lat("cs_w1_near", "p50")), fmt_num(get(rget, "latency_us", "p50"))),
        a="cs_w1_near", b="redis_get")
    row("W1 hit p99, no near cache (us) vs redis-benchmark GET p99", lat("cs_w1_warm", "p99"),
        get(rget, "latency_us", "p99"), None, note="p50 %s vs %s us" % (
            fmt_num(lat("cs_w1_warm", "p50")), fmt_num(get(rget, "latency_us", "p50"))),
        a="cs_w1_warm", b="redis_get")
    row("W1 MGET 16, near cache (keys/s) vs redis-benchmark -P 16 GET",
        na(tp("cs_w1_mget16_near")), get(rgetp, "throughput"), 1.0, "ge",
        a="cs_w1_mget16_near", b="redis_get_p16")
    row("W1 MGET 16, no near cache (keys/s) vs redis-benchmark -P 16 GET", tp("cs_w1_mget16"),
        get(rgetp, "throughput"), 0.7, "ge", a="cs_w1_mget16", b="redis_get_p16")
    row("W1 pipelined GET -P 16 (req/s) vs redis-benchmark -P 16 GET", tp("cs_w1_p16"),
        get(rgetp, "throughput"), None, a="cs_w1_p16", b="redis_get_p16")
    ping = load(d, "cs_ping")
    row("load generator CPU (us/request): cs_load PING (daemon) vs redis-benchmark GET (Redis)",
        get(ping, "cpu", "client"), get(load(d, "redis_get"), "cpu", "client"), 1.0, "le",
        note="cs_load engine %s, %s req/s; its own getrusage: %s us/req" % (
            get(ping, "engine"), fmt_num(get(ping, "throughput")),
            fmt_num(get(ping, "cpu_us_per_request"))),
        a="cs_ping", b="redis_get")
    for w, label in (("w1", "W1 profile"), ("w2", "W2 last 50 msgs"), ("w3", "W3 aggregate")):
        tgt = 100 if w == "w3" else None
        row(f"{label} warm (req/s) vs pgbench on the replica", tp(f"cs_{w}_warm"),
            tp(f"pgb_{w}_replica"), tgt, "ge",
            note="p99 %s vs %s us" % (fmt_num(lat(f"cs_{w}_warm", "p99")),
                                      fmt_num(lat(f"pgb_{w}_replica", "p99"))),
            a=f"cs_{w}_warm", b=f"pgb_{w}_replica")
        row(f"{label} warm (req/s) vs pgbench through PgBouncer", tp(f"cs_{w}_warm"),
            tp(f"pgb_{w}_bouncer"), None,
            note="p99 %s vs %s us" % (fmt_num(lat(f"cs_{w}_warm", "p99")),
                                      fmt_num(lat(f"pgb_{w}_bouncer", "p99"))),
            a=f"cs_{w}_warm", b=f"pgb_{w}_bouncer")
        row(f"{label} cold (req/s) vs pgbench on the replica", tp(f"cs_{w}_cold"),
            tp(f"pgb_{w}_replica"), None,
            note=f"hit ratio {fmt_num(hit(f'cs_{w}_cold'))}",
            a=f"cs_{w}_cold", b=f"pgb_{w}_replica")
    for m, label in (("cs_mix_warm", "warm"), ("cs_mix_cold", "cold")):
        j = load(d, m)
        row(f"95/5 mix on W1, {label}, invalidation %s (req/s) vs pgbench W1 on the replica"
            % ("on" if meta.get("invalidator") else "OFF (n/a)"), tp(m), tp("pgb_w1_replica"),
            None, note="hit ratio %s, read p99 %s us, %s writes/s" % (
                fmt_num(get(j, "hit_ratio")), fmt_num(get(j, "latency_us", "p99")),
                fmt_num(get(j, "writes_per_s"))), a=m, b="pgb_w1_replica")
    rtt = get(load(d, "redis_ping"), "PING_MBULK", "latency_us", "p50")
    hop = lat("cs_ping1", "p50")
    for w in ("w1", "w2"):
        pgp50 = lat(f"pgb_{w}_miss", "p50")
        base = (pgp50 + rtt + hop) if None not in (pgp50, rtt, hop) else None
        row(f"{w.upper()} miss p50 (us) vs replica query + Redis RTT + cachesvc PING RTT",
            lat(f"cs_{w}_miss", "p50"), base, 1.1, "le",
            note=f"1 conn; replica {fmt_num(pgp50)} + redis {fmt_num(rtt)} + cachesvc PING "
                 f"{fmt_num(hop)} us (p50s); hit ratio {fmt_num(hit(f'cs_{w}_miss'))}; the "
                 "baseline's CPU is the three runs' summed per process",
            a=f"cs_{w}_miss", b=[f"pgb_{w}_miss", "redis_ping", "cs_ping1"])
    st = load(d, "stampede") or {}
    row("stampede: 1000 concurrent misses on one key -> replica queries",
        st.get("replica_queries"), None, 1, "eq",
        note="answered %s, errors %s" % (st.get("answered"), st.get("errors")))
    lag = load(d, "lag") or {}
    if lag.get("available"):
        row("invalidation lag p99 (ms) at 5k rows/s",
            lag.get("p99_ms"), None, None,
            note="%s rows/s; p50 %s ms, p90 %s ms, p99.9 %s ms (%s); %s samples; %s" % (
                fmt_num(lag.get("rows_per_s")),
                fmt_num(lag.get("p50_ms")), fmt_num(lag.get("p90_ms")),
                fmt_num(lag.get("p999_ms")), lag.get("source") or "bucket upper bounds",
                fmt_num(lag.get("samples")),
                "no other samples in the histogram" if lag.get("samples_before") == 0
                else "%s samples before the run" % fmt_num(lag.get("samples_before")))
            + ("; of which commit -> Commit message received (the primary, walsender and "
               "network): p50 %s ms, p99 %s ms" % (fmt_num((lag.get("receive") or {}).get("p50_ms")),
                                                   fmt_num((lag.get("receive") or {}).get("p99_ms")))
               if lag.get("receive") else "")
            + ("; of which commit -> Commit message sent by the walsender (the primary alone): "
               "p50 %s ms, p99 %s ms" % (fmt_num(lag["send"].get("p50_ms")),
                                         fmt_num(lag["send"].get("p99_ms")))
               if lag.get("send") else "")
            + ("; run-queue wait per timeslice (ms): %s" % ", ".join(
                "%s %s" % (k, fmt_num(v.get("wait_ms_per_timeslice")))
                for k, v in lag["sched"].items()) if lag.get("sched") else ""),
            a="lag")
        rows[-1]["target"] = "<= 5 ms"
        rows[-1]["met"] = lag.get("p99_ms") is not None and lag["p99_ms"] <= 5
        nr = lag.get("near") or {}
        if nr.get("available") and nr.get("samples"):
            row("near cache staleness p99 (ms) at 5k rows/s", nr.get("p99_ms"), None, None,
                note="same run: commit -> near entry dropped; p50 %s ms, p90 %s ms, p99.9 %s "
                     "ms (fine histogram); %s samples (%s before); readers %s reads, %s near "
                     "hits; %s flushes" % (
                         fmt_num(nr.get("p50_ms")), fmt_num(nr.get("p90_ms")),
                         fmt_num(nr.get("p999_ms")), fmt_num(nr.get("samples")),
                         fmt_num(nr.get("samples_before")), fmt_num(nr.get("reads")),
                         fmt_num(nr.get("near_hits")), fmt_num(nr.get("flushes"))),
                a="lag")
            rows[-1]["met"] = nr.get("p99_ms") is not None and nr["p99_ms"] <= 5
        else:
            row("near cache staleness p99 (ms) at 5k rows/s",
                "n/a (%s)" % ("no staleness samples" if nr.get("available")
                              else "no near cache metrics"), None, None)
        rows[-1]["target"] = "<= 5 ms"
    else:
        for n in ("invalidation lag p99 (ms) at 5k rows/s",
                  "near cache staleness p99 (ms) at 5k rows/s"):
            row(n, "n/a (%s)" % lag.get("note", "invalidator not available"), None, None)
            rows[-1]["target"] = "<= 5 ms"
    cu = load(d, "catchup") or {}
    if cu.get("invalidator_s") is not None:
        row("invalidation catch-up, %s-row UPDATE (s) vs pg_recvlogical" %
            fmt_num(cu.get("rows")), cu.get("invalidator_s"), cu.get("recvlogical_s"), 1.2,
            "le", note=f"{fmt_num(cu.get('wal_mb'))} MB of WAL")
    else:
        failed = bool(cu.get("note"))
        row("invalidation catch-up, %s-row UPDATE (s) vs pg_recvlogical" %
            fmt_num(cu.get("rows")), cu["note"] if failed else
            "n/a (invalidator not available)", cu.get("recvlogical_s"), None,
            note=f"{fmt_num(cu.get('wal_mb'))} MB of WAL")
        rows[-1]["target"] = "<= 1.2x"
        if failed:
            rows[-1]["met"] = False
    for q in ("p99", "p999"):
        row(f"hot W3 expiring under load (ttl 2 s), {q} (us): with vs without stale-while-revalidate",
            lat("cs_w3_swr", q), lat("cs_w3_noswr", q), None,
            note="stale hits %s vs %s" % (fmt_num(get(load(d, "cs_w3_swr"), "stale")),
                                         fmt_num(get(load(d, "cs_w3_noswr"), "stale"))),
            a="cs_w3_swr", b="cs_w3_noswr")
    lib = load(d, "lib_w1") or {}
    if lib:
        row("library mode W1 hits (ops/s, %s threads) vs the daemon (%s conns)" %
            (lib.get("threads"), lib.get("threads")), lib.get("ops_per_sec"), tp("cs_w1_lib_peer"),
            a="lib_w1", b="cs_w1_lib_peer")
        row("library mode W1 hit p99 (us) vs the daemon", lib.get("p99_us"),
            lat("cs_w1_lib_peer", "p99"), a="lib_w1", b="cs_w1_lib_peer")
    libn = load(d, "lib_w1_near") or {}
    row("library mode W1 hits, near cache (ops/s) vs the daemon",
        libn.get("ops_per_sec") if libn else "n/a (lib_bench -a or the near daemon missing)",
        tp("cs_w1_lib_near_peer"), 10, "ge",
        note="async API, 1 thread, %s outstanding, p99 %s us; daemon with the near cache, "
             "cs_load %s conns, p99 %s us; uniform keys" % (
                 libn.get("outstanding"), fmt_num(libn.get("p99_us")), conns,
                 fmt_num(lat("cs_w1_lib_near_peer", "p99"))),
        a="lib_w1_near", b="cs_w1_lib_near_peer")
    mem = load(d, "memory") or {}
    row("RSS per idle client connection (bytes), %s conns" % mem.get("connections"),
        mem.get("per_conn_bytes"), None, None,
        note="RSS %s -> %s kB" % (mem.get("rss0_kb"), mem.get("rss1_kb")))
    rows[-1]["target"] = "<= 4096 B"
    if mem.get("per_conn_bytes") is not None:
        rows[-1]["met"] = mem["per_conn_bytes"] <= 4096

    # --- print
    hdr = ("comparison", "cachesvc", "baseline", "ratio", "target", "met",
           "CPU us/req cachesvc side", "CPU us/req baseline", "load1")
    lines = []
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        if r["target"] and r["met"] is None:
            met = "n/a"
        cpu = r["cpu_us_per_request"]
        l1 = r["load1"]
        lines.append((r["name"], fmt_num(r["cachesvc"]), fmt_num(r["baseline"])
                      if r["baseline"] is not None else "", fmt_num(r["ratio"], "x")
                      if r["ratio"] is not None else "", r["target"], met,
                      fmt_cpu(cpu["cachesvc"]), fmt_cpu(cpu["baseline"]),
                      "%.1f-%.1f" % tuple(l1) if l1 else ""))
    print("Load average (1/5/15 min): %s at the start, %s at the end; %s round(s) per "
          "comparison, medians shown." % (meta.get("loadavg_start"), meta.get("loadavg_end"),
                                          meta.get("rounds", 1)))
    print("CPU us/req = CPU microseconds per request of client/daemon/redis/pg (load "
          "generator, cachesvc, Redis, PostgreSQL), median over the rounds; load1 = range "
          "of the 1-minute load average over the row's runs.")
    print()
    widths = [max(len(h), *(len(l[i]) for l in lines)) for i, h in enumerate(hdr)]
    print("| " + " | ".join(h.ljust(widths[i]) for i, h in enumerate(hdr)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for l in lines:
        print("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(l)) + " |")
    print()
    for r in rows:
        if r["note"]:
            print(f"- {r['name']}: {r['note']}")
    result = {"meta": meta, "rows": rows, "raw": {}}
    for path in sorted(glob.glob(os.path.join(d, "*.json"))):
        name = os.path.basename(path)[:-5]
        if name != "meta":
            result["raw"][name] = load(d, name)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


def main():
    if len(sys.argv) >= 4 and sys.argv[1] == "pgbench":
        cmd_pgbench(sys.argv[2], sys.argv[3])
    elif len(sys.argv) >= 3 and sys.argv[1] == "redisbench":
        cmd_redisbench(sys.argv[2])
    elif len(sys.argv) >= 4 and sys.argv[1] == "table":
        cmd_table(sys.argv[2], sys.argv[3])
    else:
        sys.stderr.write(__doc__)
        sys.exit(2)


if __name__ == "__main__":
    main()
