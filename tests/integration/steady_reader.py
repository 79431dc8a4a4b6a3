"""steady_reader.py - test tool: one client connection that keeps reading through a cachesvc
until a stop file appears, then prints a JSON tally. Used by tests that change the database
topology or the configuration under traffic (engine_reload_replicas.sh, failover.sh): the
connection must survive (exit 1 if it is lost), and error replies are counted by name.

  steady_reader.py ADDRESS STOPFILE OUTFILE QUERY NKEYS [--bypass]

GETs QUERY with key 1..NKEYS in turn; OUTFILE gets
{"ok": n, "errors": {name: n}, "src": {"cache": n, "replica": n, "primary": n},
 "max_gap_ms": longest time between two answers, "lost": false}."""
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "protocol", "python", "src"))
import cachesvc  # noqa: E402

addr, stopfile, outfile, query, nkeys = sys.argv[1:6]
bypass = "--bypass" in sys.argv[6:]
nkeys = int(nkeys)
tally = {"ok": 0, "errors": {}, "src": {"cache": 0, "replica": 0, "primary": 0},
         "max_gap_ms": 0, "lost": False}
conn = cachesvc.connect(addr, timeout=10.0)
last = time.monotonic()
i = 0
rc = 0
try:
    while not os.path.exists(stopfile):
        key = i % nkeys + 1
        i += 1
        try:
            r = conn.get(query, [key], bypass=bypass)
            tally["ok"] += 1
            src = {0: "cache", 1: "replica", 2: "primary"}.get(int(r.meta.source), "other")
            tally["src"][src] = tally["src"].get(src, 0) + 1
        except cachesvc.ServerError as e:
            if getattr(e, "fatal", False):
                raise
            name = getattr(e, "name", type(e).__name__)
            tally["errors"][name] = tally["errors"].get(name, 0) + 1
            time.sleep(0.01)
        now = time.monotonic()
        tally["max_gap_ms"] = max(tally["max_gap_ms"], int((now - last) * 1000))
        last = now
        time.sleep(0.002)
except Exception as e:  # the connection broke
    tally["lost"] = True
    tally["lost_why"] = repr(e)
    rc = 1
with open(outfile, "w") as f:
    json.dump(tally, f)
sys.exit(rc)
