"""The Python client against a real cachesvc daemon on the sandbox.

Run by tests/integration/client_python.sh, which starts the daemon and passes:
  argv[1], argv[2]   a command FIFO and an answer FIFO: this script asks the shell to
                     "restart", "stop" or "start" the daemon or to "write ID NAME" on the
                     primary (answer: the primary's LSN after the commit)
  CS_PORT, CS_SOCK   the daemon's TCP port and unix socket; CS_TOKEN its auth token
  CS_CONF            the daemon's config file (the admin checks rewrite it and reload)
Each check prints "ok - ..."; the first failure raises (exit status 1).
"""

import asyncio
import datetime as dt
import decimal
import os
import sys
import threading
import time

CMD = open(sys.argv[1], "w")  # noqa: SIM115 - opened first: the shell waits on them
ANS = open(sys.argv[2], "r")  # noqa: SIM115

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import cachesvc  # noqa: E402
from cachesvc import Source, aio, codec  # noqa: E402

PORT = int(os.environ["CS_PORT"])
SOCK = os.environ["CS_SOCK"]
TOKEN = os.environ["CS_TOKEN"]
CONF = os.environ["CS_CONF"]
ADMIN_TOKEN = "opensesame"
TCP = f"127.0.0.1:{PORT}"
UTC = dt.timezone.utc


def shell(command):
    CMD.write(command + "\n")
    CMD.flush()
    line = ANS.readline()
    if not line.startswith("done"):
        raise AssertionError(f"the shell failed {command!r}: {line!r}")
    return line[4:].strip()


def ok(msg):
    print("ok -", msg, flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def raises(exc_type, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except exc_type as e:
        return e
    raise AssertionError(f"{fn.__name__}{args} did not raise {exc_type.__name__}")


def conn(**kw):
    kw.setdefault("token", TOKEN)
    return cachesvc.connect(TCP, **kw)


# ---- the rows the shell's SQL created (id 1..50, 51 all NULL) -------------------------------------

EXPECTED_COLUMNS = [
    ("id", 2), ("name", 4), ("price", 8), ("born", 10), ("seen", 7), ("at", 6), ("avatar", 5),
    ("tags", 10), ("meta", 9), ("ok", 1), ("score", 3), ("big", 2),
]


def expected_row(i, name=None):
    return (
        i,
        name or f"item {i}",
        decimal.Decimal(i) * decimal.Decimal("1.25") + decimal.Decimal("0.005"),
        (dt.date(2000, 1, 1) + dt.timedelta(days=i)).isoformat(),
        dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC) + dt.timedelta(hours=i),
        dt.datetime(2024, 1, 2, 3, 4, 5) + dt.timedelta(minutes=i),
        bytes([0, 255, i]),
        "{a,b}",
        {"k": i, "nested": [1, None, "x"]},
        i % 2 == 0,
        i / 4,
        2**53 + i,  # beyond a float's exact integers: int8 without precision loss
    )


def test_connect_and_auth():
    with conn() as c:
        check(c.server.version == 1 and c.server.max_frame > 0, f"HELLO reply {c.server}")
        c.ping()
    with cachesvc.connect(SOCK, token=TOKEN) as c:
        c.ping()
        check(c.get("py_item", [1]).rows[0][0] == 1, "unix socket GET")
    with cachesvc.connect("unix:" + SOCK, token=TOKEN, connect_timeout=2.0, timeout=10.0) as c:
        c.ping()
    ok(f"connect over TCP and the unix socket, HELLO: server {c.server.server!r}")
    e = raises(cachesvc.AuthError, cachesvc.connect, TCP, token="wrong")
    check(e.code == 6 and e.name == "auth", f"auth error {e!r}")
    e = raises(cachesvc.AuthError, cachesvc.connect, TCP)
    ok(f"a wrong or missing token is refused at HELLO: {e}")


def test_hit_miss_and_types():
    with conn() as c:
        r = c.get("py_item", [7])
        check(r.meta.source in (Source.REPLICA, Source.PRIMARY), f"first read from {r.meta.source}")
        check(r.meta.stored in (None, True), f"stored {r.meta.stored}")
        check(not r.meta.stale, "stale on a fresh fill")
        check(r.meta.lsn > 0 and "/" in str(r.meta.lsn), f"lsn {r.meta.lsn!r}")
        check([(col.name, col.type) for col in r.columns] == EXPECTED_COLUMNS, f"columns {r.columns}")
        check(r.rows == [expected_row(7)], f"row\n{r.rows}\n!=\n{[expected_row(7)]}")
        h = c.get("py_item", ["7"])  # text: the server converts, same key
        check(h.meta.source == Source.CACHE, f"second read from {h.meta.source}")
        check(h.rows == r.rows and h.meta.lsn == r.meta.lsn, "the cache returned other rows or LSN")
        check(h.meta.age_ms >= 0 and h.meta.stored is None, f"hit meta {h.meta}")
        ok(f"miss from the {r.meta.source.name.lower()} then hit from cache, LSN {r.meta.lsn}")
        seen = r.rows[0][4]
        check(seen.tzinfo is not None and seen.utcoffset() == dt.timedelta(0), "timestamptz not UTC-aware")
        check(r.rows[0][5].tzinfo is None, "timestamp not naive")
        check(isinstance(r.rows[0][2], decimal.Decimal), "numeric not Decimal")
        check(type(r.rows[0][11]) is int and r.rows[0][11] == 2**53 + 7, "int8 lost precision")
        ok("typed values: int8, numeric Decimal, timestamptz aware, timestamp naive, bytea, json, text[]")
        n = c.get("py_item", [51])
        check(n.rows == [(51,) + (None,) * 11], f"NULL row {n.rows}")
        check(c.get("py_item", [999]).rows == [], "no row")
        ok("NULL is None; an empty result has no rows")
        d = c.get("py_item", [7]).as_dicts()[0]
        check(d["name"] == "item 7" and d["meta"]["k"] == 7, f"as_dicts {d}")
    with conn(json="raw") as c:
        raw = c.get("py_item", [7]).rows[0][8]
        check(isinstance(raw, str) and '"nested"' in raw, f"raw json {raw!r}")
    ok("json parsed by default, raw text with json='raw'")


def test_bypass_tiers_and_lsn():
    with conn() as c:
        c.invalidate("py_item", [8])
        b = c.get("py_item", [8], bypass=True)
        check(b.meta.source != Source.CACHE and b.rows == [expected_row(8)], f"bypass {b.meta}")
        m = c.get("py_item", [8])
        check(m.meta.source != Source.CACHE, "bypass filled the cache")
        ok("bypass reads the database and does not fill")
        for tier in (cachesvc.Tier.CRITICAL, 1, cachesvc.Tier.BATCH):
            check(c.get("py_item", [8], tier=tier).rows == [expected_row(8)], f"tier {tier}")
        raises(cachesvc.InvalidRequestError, c.get, "py_item", [8], tier=3)
        ok("tiers 0, 1, 2; tier 3 refused before sending")
        token = shell("write 9 renamed")
        r = c.get("py_item", [9], lsn=token)
        check(r.rows[0][1] == "renamed", f"read-your-writes with token {token}: {r.rows[0][1]!r}")
        check(r.meta.lsn >= cachesvc.parse_lsn(token), f"answer LSN {r.meta.lsn} older than token {token}")
        token2 = shell("write 10 again")
        r = c.get("py_item", [10], lsn=cachesvc.parse_lsn(token2))
        check(r.rows[0][1] == "again", "read-your-writes with an int token")
        ok(f"LSN tokens as text ({token}) and int: answers at least that new")


def test_every_opcode():
    with conn() as c:
        c.get("py_item", [1])
        out = c.mget([cachesvc.Get("py_item", [1]), ("py_nosuch", [1]), ("py_item", ["abc"]), ("py_item", [2])])
        check(len(out) == 4, f"mget {out}")
        check(isinstance(out[0], cachesvc.Result) and out[0].rows == [expected_row(1)], f"item 0 {out[0]}")
        check(isinstance(out[1], cachesvc.UnknownQueryError) and out[1].code == 1, f"item 1 {out[1]!r}")
        check(isinstance(out[2], cachesvc.BadParamsError) and out[2].code == 2, f"item 2 {out[2]!r}")
        check(isinstance(out[3], cachesvc.Result) and out[3].rows == [expected_row(2)], f"item 3 {out[3]}")
        ok("MGET answers item by item, errors in place")
        r = c.refresh("py_item", [3], tier=2)
        check(r.meta.source != Source.CACHE, "REFRESH served from cache")
        # PROTOCOL.md 4: a REFRESH answer waits for its fill, so it may say "stored" (the
        # daemon does not send the key yet); if it does, this fill was stored
        check(r.meta.stored in (None, True), f"REFRESH answer: {r.meta}")
        check(c.get("py_item", [3]).meta.source == Source.CACHE, "REFRESH did not fill")
        ok(f"REFRESH re-reads and refills (meta stored: {r.meta.stored})")
        check(c.invalidate("py_item", [3]) == 1, "INVALIDATE of a cached key")
        check(c.invalidate("py_item", [3]) == 0, "INVALIDATE of a gone key")
        check(c.get("py_item", [3]).meta.source != Source.CACHE, "hit after INVALIDATE")
        ok("INVALIDATE of one key: 1, then 0, then a miss")
        c.get("py_names", [3])
        check(c.get("py_names", [3]).meta.source == Source.CACHE, "py_names hit")
        g1 = c.invalidate_query("py_names")
        g2 = c.invalidate_query("py_names")
        check(g2 == g1 + 1, f"generations {g1} -> {g2}")
        check(c.get("py_names", [3]).meta.source != Source.CACHE, "hit after a generation bump")
        ok(f"INVALIDATE of a whole query bumps its generation ({g1} -> {g2})")
        s = c.stats()
        check(isinstance(s, dict) and isinstance(s.get("hits"), int) and s["hits"] > 0, f"stats {s}")
        ok(f"STATS: {len(s)} counters, hits={s['hits']}")
        c.ping()
        ok("PING")


def test_pipelining_out_of_order():
    with conn(timeout=20) as c:
        # cached first: a miss is answered before its fill is stored, so until a read is a hit
        deadline = time.monotonic() + 20
        while c.get("py_item", [4]).meta.source != Source.CACHE:
            check(time.monotonic() < deadline, "py_item 4 never cached")
            time.sleep(0.05)
        slow = c.send(cachesvc.Get("py_slow", [2.0, 1]))  # a miss that takes 2 s
        hit = c.send(cachesvc.Get("py_item", [4]))
        first = next(c.as_completed([slow, hit]))
        check(first is hit, "the slow miss was answered before the hit")
        check(not slow.done(), "the slow miss completed with the hit")
        check(hit.result().meta.source == Source.CACHE, "not a hit")
        check(slow.result().rows[0][1] == 1, f"slow {slow.result().rows}")
        ok("a hit sent after a slow miss on the same connection overtakes it")
        reqs = [cachesvc.Get("py_item", [i % 20 + 1]) for i in range(200)]
        res = c.pipeline(reqs)
        check([r.rows[0][0] for r in res] == [i % 20 + 1 for i in range(200)], "pipeline order")
        ok("200 pipelined GETs in one write, answers matched by id")


def test_errors():
    with conn() as c:
        e = raises(cachesvc.UnknownQueryError, c.get, "py_nosuch", [1])
        check((e.code, e.name) == (1, "unknown_query"), repr(e))
        e = raises(cachesvc.BadParamsError, c.get, "py_item", ["abc"])
        check(e.code == 2, repr(e))
        raises(cachesvc.BadParamsError, c.get, "py_item", [1, 2])
        e = raises(cachesvc.InternalError, c.get, "py_boom", [5])  # division by zero
        check(e.code == 8, repr(e))
        check(not c.closed, "a request error closed the connection")
        c.ping()
        check(c.get("py_item", [1]).rows[0][0] == 1, "connection unusable after request errors")
        ok("request errors (unknown_query, bad_params, internal) keep the connection")

    c = conn()
    p = c.send(cachesvc.Ping())
    # a frame with nonzero flags: the server answers `protocol` and closes
    c._sock.sendall(codec.encode_frame(0x02, 4242, b"\xc0", flags=1))
    e = raises(cachesvc.ProtocolError, p.result)
    check(e.code == 7, repr(e))
    check(c.closed, "a protocol error left the connection open")
    raises(cachesvc.ConnectionClosedError, c.ping)
    ok(f"a protocol error (from the server) closes the connection: {e}")

    c = conn()
    c._sock.sendall(codec.encode_frame(0x03, 77, codec.msgpack.packb({"q": "py_item", "zzz": 1})))
    e = raises(cachesvc.ServerProtocolError, c.ping)
    check(c.closed and e.code == 7, "unknown key: not a protocol error")
    ok("an unknown request key is a protocol error that closes")

    c = conn(max_reply_body=200)
    check(c.get("py_names", [1]).rows == [(1, "item 1")], "a small reply under the limit")
    e = raises(cachesvc.ProtocolError, c.get, "py_names", [50])  # ~1 kB
    check(c.closed and "limit" in str(e), repr(e))
    ok(f"a reply over max_reply_body is refused from its header and closes: {e}")
    with conn() as c2:
        c2.ping()
    ok("the daemon serves on after the errors")


def test_pool_threads():
    with cachesvc.Client(TCP, token=TOKEN, pool_size=3) as cs:
        errors = []

        def work(k):
            try:
                for i in range(30):
                    r = cs.get("py_item", [(k * 7 + i) % 50 + 1])
                    assert r.rows[0][0] == (k * 7 + i) % 50 + 1
            except Exception as e:  # noqa: BLE001
                errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        check(not errors, f"pool errors {errors}")
        check(cs._total <= 3, f"{cs._total} connections for a pool of 3")
    ok("6 threads share a pool of 3 connections")


def test_reconnect():
    cs = cachesvc.Client(TCP, token=TOKEN, pool_size=1, retries=4, backoff_base=0.05)
    cs.ping()
    shell("restart")
    r = cs.get("py_item", [6])
    check(r.rows == [expected_row(6)], "after restart")
    check(cs.reconnects >= 1, "no reconnect counted")
    ok(f"after the daemon restarted, the pool reconnected ({cs.reconnects} retries)")
    shell("stop")
    e = raises(cachesvc.ClientConnectionError, cs.ping)
    ok(f"with the daemon down, a call fails after its retries: {type(e).__name__}")
    shell("start")
    cs.ping()
    ok("and works again once the daemon is back")
    cs.close()


async def async_checks():
    c = await aio.connect(TCP, token=TOKEN, timeout=20)
    await c.get("py_item", [11])
    r = await c.get("py_item", [11])
    check(r.meta.source == Source.CACHE and r.rows == [expected_row(11)], f"async hit {r.meta}")
    done_order = []

    async def tagged(name, coro):
        res = await coro
        done_order.append(name)
        return res

    slow, hit = await asyncio.gather(
        tagged("slow", c.get("py_slow", [2.0, 2])), tagged("hit", c.get("py_item", [11])))
    check(done_order == ["hit", "slow"], f"async completion order {done_order}")
    check(slow.rows[0][1] == 2, "async slow")
    ok("asyncio: concurrent requests on one connection, a hit overtakes a slow miss")
    results = await asyncio.gather(*(c.get("py_item", [i]) for i in range(1, 51)))
    check([x.rows[0][0] for x in results] == list(range(1, 51)), "async gather")
    out = await c.mget([("py_item", [1]), ("py_nosuch", [])])
    check(isinstance(out[1], cachesvc.UnknownQueryError), "async mget")
    check(await c.invalidate("py_item", [11]) == 1, "async invalidate")
    check(isinstance(await c.invalidate_query("py_names"), int), "async invalidate_query")
    check((await c.refresh("py_item", [11])).meta.source != Source.CACHE, "async refresh")
    check("hits" in await c.stats(), "async stats")
    await c.ping()
    try:
        await c.get("py_item", ["abc"])
        raise AssertionError("no BadParamsError")
    except cachesvc.BadParamsError:
        pass
    check(not c.closed, "async request error closed the connection")
    ok("asyncio: every opcode; a request error keeps the connection")
    c.close()
    u = await aio.connect(SOCK, token=TOKEN)
    await u.ping()
    u.close()
    try:
        await aio.connect(TCP, token="nope")
        raise AssertionError("no AuthError")
    except cachesvc.AuthError:
        pass
    ok("asyncio: unix socket; wrong token refused")

    async with aio.Client(TCP, token=TOKEN, pool_size=2, retries=5, backoff_base=0.05) as pool:
        await pool.ping()
        await asyncio.get_running_loop().run_in_executor(None, shell, "restart")
        r = await pool.get("py_item", [12])
        check(r.rows == [expected_row(12)], "async after restart")
        check(pool.reconnects >= 1, "async: no reconnect counted")
        rs = await pool.pipeline([cachesvc.Get("py_item", [i]) for i in range(1, 21)])
        check(len(rs) == 20, "async pool pipeline")
    ok("asyncio: the pool reconnects after a daemon restart")


def queries_by_name(c):
    rows = c.show("queries")
    by_name = {r["name"]: r for r in rows}
    check(len(by_name) == len(rows), f"show queries: a name twice: {rows}")
    return by_name


def test_admin():
    """SHOW and ADMIN (PROTOCOL.md 3.8, 3.9): show queries with real counters, an unknown
    view, pause/resume, reload applied and refused, and admin_token set by a reload."""
    with conn() as c:
        c.invalidate("user_profile", [40])
        before = queries_by_name(c)
        check({"py_item", "user_profile", "py_names", "py_slow", "py_boom"} <= set(before), f"show queries: {sorted(before)}")
        q = before["user_profile"]
        check((q["params"], q["ttl_ms"], q["kind"], q["paused"]) == ("id:int8", 300000, "row", False), f"user_profile row {q}")
        check(before["py_names"]["kind"] == "list", f"py_names row {before['py_names']}")
        check(c.get("user_profile", [40]).meta.source != Source.CACHE, "user_profile 40 was cached")
        for _ in range(3):
            check(c.get("user_profile", [40]).meta.source == Source.CACHE, "user_profile 40 not a hit")
        after = queries_by_name(c)["user_profile"]
        deltas = {k: after[k] - q[k] for k in ("hits", "misses", "fills")}
        check(deltas == {"hits": 3, "misses": 1, "fills": 1}, f"show queries counters moved by {deltas}")
        ok(f"show queries: every configured query; user_profile hits/misses/fills moved by {deltas}")
        e = raises(cachesvc.BadParamsError, c.show, "nosuch")
        check("queries" in e.message, f"the unknown view's message does not list the views: {e}")
        check(not c.closed, "an unknown view closed the connection")
        for view in ("servers", "clients", "invalidator", "config"):
            check(isinstance(c.show(view), list), f"show {view}")
        ok(f"show of an unknown view: bad_params ({e.message}); the other views answer")

        row = c.pause("user_profile")
        check(row == {"query": "user_profile", "paused": True, "changed": True}, f"pause reply {row}")
        for _ in range(2):
            r = c.get("user_profile", [40])
            check(r.meta.source == Source.REPLICA, f"a paused query answered from {r.meta.source}")
        check(queries_by_name(c)["user_profile"]["paused"] is True, "show queries: not paused")
        check(c.pause("user_profile")["changed"] is False, "a second pause changed state")
        row = c.resume("user_profile")
        check(row == {"query": "user_profile", "paused": False, "changed": True}, f"resume reply {row}")
        # claim of a query no other definition owns: nothing to take over
        row = c.claim("user_profile")
        check(row == {"query": "user_profile", "claimed": False}, f"claim reply {row}")
        # resume starts a new generation: the entry from before the pause is not served;
        # once the bump is confirmed a miss fills and the cache answers again
        r = c.get("user_profile", [40])
        check(r.meta.source != Source.CACHE, "resume served an entry from before the pause")
        deadline = time.monotonic() + 10
        while c.get("user_profile", [40]).meta.source != Source.CACHE:
            check(time.monotonic() < deadline, "resumed: never answered from the cache")
            time.sleep(0.1)
        raises(cachesvc.UnknownQueryError, c.pause, "nosuch")
        ok("pause: answers from the replica, not the cache; resume: from the cache again")

    with open(CONF, encoding="utf-8") as f:
        original = f.read()
    check("\nauth_token = sesame\n" in original, "no auth_token line in the config")
    with open(CONF, "w", encoding="utf-8") as f:
        f.write(original.replace("\nauth_token = sesame\n", f"\nauth_token = sesame\nadmin_token = {ADMIN_TOKEN}\n", 1))
    with conn() as c:
        row = c.reload()  # no admin token yet: the data token may reload
        check(row == {"reload": "applied", "queries": len(before)}, f"reload reply {row}")
        ok(f"reload: {row}")
    with conn() as c:  # a connection of its own: its HELLO is checked against admin_token
        for call, args in ((c.show, ("queries",)), (c.pause, ("user_profile",)), (c.reload, ())):
            e = raises(cachesvc.AuthError, call, *args)
            check(e.code == 6 and not c.closed, f"{call.__name__} with the data token: {e!r}")
        check(c.get("user_profile", [40]).rows[0][0] == 40, "the data token cannot read any more")
        ok(f"with admin_token set, the data token reads but show/pause/reload get auth: {e.message}")
    with conn(token=ADMIN_TOKEN) as a:
        check("user_profile" in queries_by_name(a), "show with the admin token")
        check(a.pause("py_names")["changed"] is True and a.resume("py_names")["changed"] is True,
              "pause/resume with the admin token")
        with open(CONF, "w", encoding="utf-8") as f:
            f.write(original + "\n[query py_bad]\nsql = SELECT nope FROM items WHERE id = $1\nparams = id:int8\n")
        row = a.reload(timeout=30)
        check(row.get("reload") == "refused" and "nope" in row.get("error", ""), f"a reload with bad SQL: {row}")
        check(a.get("user_profile", [40]).rows[0][0] == 40, "reads after a refused reload")
        with open(CONF, "w", encoding="utf-8") as f:
            f.write(original)
        row = a.reload()
        check(row == {"reload": "applied", "queries": len(before)}, f"reload back: {row}")
    with conn() as c:
        check("user_profile" in queries_by_name(c), "show with the data token after admin_token was removed")
    ok("the admin token shows, pauses, reloads (refused: the reason; applied); admin_token removed by reload")


async def async_admin_checks():
    c = await aio.connect(TCP, token=TOKEN)
    try:
        rows = await c.show("queries")
        check(any(r["name"] == "user_profile" for r in rows), f"async show {rows}")
        e = None
        try:
            await c.show("nosuch")
        except cachesvc.BadParamsError as x:
            e = x
        check(e is not None and not c.closed, "async show of an unknown view")
        check((await c.pause("user_profile"))["paused"] is True, "async pause")
        r = await c.get("user_profile", [40])
        check(r.meta.source == Source.REPLICA, f"async: paused query answered from {r.meta.source}")
        check((await c.resume("user_profile"))["paused"] is False, "async resume")
        check((await c.get("user_profile", [40])).meta.source != Source.CACHE,
              "async: resume served an entry from before the pause")
        deadline = time.monotonic() + 10
        while (await c.get("user_profile", [40])).meta.source != Source.CACHE:
            check(time.monotonic() < deadline, "async: resumed query never from the cache")
            await asyncio.sleep(0.1)
        row = await c.reload()
        check(row.get("reload") == "applied", f"async reload {row}")
    finally:
        await c.aclose()
    async with aio.Client(TCP, token=TOKEN) as pool:
        check(len(await pool.show("servers")) >= 2, "async pool show servers")
        check((await pool.reload())["reload"] == "applied", "async pool reload")
    ok("asyncio: show, pause, resume, reload")


def test_readme_example():
    readme = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "README.md")
    with open(readme, encoding="utf-8") as f:
        text = f.read()
    start = text.index("```python\n") + len("```python\n")
    block = text[start : text.index("```", start)]
    os.environ["CACHESVC_ADDR"] = TCP
    os.environ["CACHESVC_TOKEN"] = TOKEN
    exec(compile(block, "README.md example", "exec"), {"__name__": "readme"})  # noqa: S102
    ok("the README's example runs as written")


def main():
    test_readme_example()
    test_connect_and_auth()
    test_hit_miss_and_types()
    test_bypass_tiers_and_lsn()
    test_every_opcode()
    test_pipelining_out_of_order()
    test_errors()
    test_admin()
    asyncio.run(asyncio.wait_for(async_admin_checks(), 60))
    test_pool_threads()
    asyncio.run(asyncio.wait_for(async_checks(), 120))
    test_reconnect()
    print("all python client checks passed", flush=True)


if __name__ == "__main__":
    main()
