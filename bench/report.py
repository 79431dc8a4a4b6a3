#!/usr/bin/env python3
"""report.py - bench/run's helper: turns pgbench and redis-benchmark output into the same JSON
shape as cs_load's, and prints the side-by-side table (and writes it as JSON).

  report.py pgbench OUT.json LOGPREFIX < pgbench-stdout     tps + latency percentiles (us)
  report.py redisbench OUT.json < redis-benchmark --csv     one object per test
  report.py table RESULTS_DIR OUT.json                      the table, from RESULTS_DIR/*.json
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


def cmd_table(d, out):
    meta = load(d, "meta") or {}
    rows = []

    def row(name, ours, base, target=None, kind="ge", unit="", ratio=None, note="",
            met=None):
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
        rows.append({
            "name": name, "cachesvc": ours, "baseline": base, "unit": unit,
            "ratio": ratio, "target": tgt,
            "met": None if target is None else bool(met) if met is not None else None,
            "note": note,
        })

    tp = lambda n: get(load(d, n), "throughput")
    lat = lambda n, q: get(load(d, n), "latency_us", q)
    hit = lambda n: get(load(d, n), "hit_ratio")
    rb = load(d, "redis_get") or {}
    rbp = load(d, "redis_get_p16") or {}
    rget = get(rb, "GET")
    rgetp = get(rbp, "GET")
    conns = meta.get("conns")

    row(f"W1 hit throughput, {conns} conns, no pipelining (req/s) vs redis-benchmark GET",
        tp("cs_w1_warm"), get(rget, "throughput"), 0.9, "ge",
        note=f"value {meta.get('value_size')} B; hit ratio {fmt_num(hit('cs_w1_warm'))}")
    row("W1 hit p99 (us) vs redis-benchmark GET p99", lat("cs_w1_warm", "p99"),
        get(rget, "latency_us", "p99"), 1.5, "le", note="p50 %s vs %s us" % (
            fmt_num(lat("cs_w1_warm", "p50")), fmt_num(get(rget, "latency_us", "p50"))))
    row("W1 MGET 16 (keys/s) vs redis-benchmark -P 16 GET", tp("cs_w1_mget16"),
        get(rgetp, "throughput"), 0.7, "ge")
    row("W1 pipelined GET -P 16 (req/s) vs redis-benchmark -P 16 GET", tp("cs_w1_p16"),
        get(rgetp, "throughput"), None)
    for w, label in (("w1", "W1 profile"), ("w2", "W2 last 50 msgs"), ("w3", "W3 aggregate")):
        tgt = 100 if w == "w3" else None
        row(f"{label} warm (req/s) vs pgbench on the replica", tp(f"cs_{w}_warm"),
            tp(f"pgb_{w}_replica"), tgt, "ge",
            note="p99 %s vs %s us" % (fmt_num(lat(f"cs_{w}_warm", "p99")),
                                      fmt_num(lat(f"pgb_{w}_replica", "p99"))))
        row(f"{label} warm (req/s) vs pgbench through PgBouncer", tp(f"cs_{w}_warm"),
            tp(f"pgb_{w}_bouncer"), None,
            note="p99 %s vs %s us" % (fmt_num(lat(f"cs_{w}_warm", "p99")),
                                      fmt_num(lat(f"pgb_{w}_bouncer", "p99"))))
        row(f"{label} cold (req/s) vs pgbench on the replica", tp(f"cs_{w}_cold"),
            tp(f"pgb_{w}_replica"), None,
            note=f"hit ratio {fmt_num(hit(f'cs_{w}_cold'))}")
    for m, label in (("cs_mix_warm", "warm"), ("cs_mix_cold", "cold")):
        j = load(d, m)
        row(f"95/5 mix on W1, {label}, invalidation %s (req/s) vs pgbench W1 on the replica"
            % ("on" if meta.get("invalidator") else "OFF (n/a)"), tp(m), tp("pgb_w1_replica"),
            None, note="hit ratio %s, read p99 %s us, %s writes/s" % (
                fmt_num(get(j, "hit_ratio")), fmt_num(get(j, "latency_us", "p99")),
                fmt_num(get(j, "writes_per_s"))))
    rtt = get(load(d, "redis_ping"), "PING_MBULK", "latency_us", "p50")
    for w in ("w1", "w2"):
        pgp50 = lat(f"pgb_{w}_miss", "p50")
        base = (pgp50 + rtt) if pgp50 is not None and rtt is not None else None
        row(f"{w.upper()} miss p50, 1 conn (us) vs replica query p50 + Redis RTT",
            lat(f"cs_{w}_miss", "p50"), base, 1.1, "le",
            note=f"replica {fmt_num(pgp50)} + redis {fmt_num(rtt)} us; hit ratio "
                 f"{fmt_num(hit(f'cs_{w}_miss'))}")
    st = load(d, "stampede") or {}
    row("stampede: 1000 concurrent misses on one key -> replica queries",
        st.get("replica_queries"), None, 1, "eq",
        note="answered %s, errors %s" % (st.get("answered"), st.get("errors")))
    lag = load(d, "lag") or {}
    if lag.get("available"):
        row("invalidation lag p99 (ms) at %s rows/s" % fmt_num(lag.get("rows_per_s")),
            lag.get("p99_ms"), None, None,
            note="p50 %s ms (bucket upper bounds); %s samples %s" % (
                fmt_num(lag.get("p50_ms")), fmt_num(lag.get("samples")), lag.get("note") or ""))
        rows[-1]["target"] = "<= 5 ms"
        rows[-1]["met"] = lag.get("p99_ms") is not None and lag["p99_ms"] <= 5
    else:
        row("invalidation lag p99 at 5k rows/s",
            "n/a (%s)" % lag.get("note", "invalidator not available"), None, None)
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
                                         fmt_num(get(load(d, "cs_w3_noswr"), "stale"))))
    lib = load(d, "lib_w1") or {}
    if lib:
        row("library mode W1 hits (ops/s, %s threads) vs the daemon (%s conns)" %
            (lib.get("threads"), lib.get("threads")), lib.get("ops_per_sec"), tp("cs_w1_lib_peer"))
        row("library mode W1 hit p99 (us) vs the daemon", lib.get("p99_us"),
            lat("cs_w1_lib_peer", "p99"))
    mem = load(d, "memory") or {}
    row("RSS per idle client connection (bytes), %s conns" % mem.get("connections"),
        mem.get("per_conn_bytes"), None, None,
        note="RSS %s -> %s kB" % (mem.get("rss0_kb"), mem.get("rss1_kb")))
    rows[-1]["target"] = "<= 4096 B"
    if mem.get("per_conn_bytes") is not None:
        rows[-1]["met"] = mem["per_conn_bytes"] <= 4096

    # --- print
    hdr = ("comparison", "cachesvc", "baseline", "ratio", "target", "met")
    lines = []
    for r in rows:
        met = "" if r["met"] is None else ("yes" if r["met"] else "NO")
        if r["target"] and r["met"] is None:
            met = "n/a"
        lines.append((r["name"], fmt_num(r["cachesvc"]), fmt_num(r["baseline"])
                      if r["baseline"] is not None else "", fmt_num(r["ratio"], "x")
                      if r["ratio"] is not None else "", r["target"], met))
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
