'use strict';
// Integration tests against a real cachesvc daemon on the sandbox. Run by
// tests/integration/client_node.sh, which creates the database, writes the configuration,
// starts the daemon and passes its coordinates in CS_NODE_* variables. Skipped without them.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { spawn } = require('node:child_process');
const { Client, Pool, CacheError, Codes, Decimal, Timestamp, parseLsn, formatLsn } = require('../lib');

const env = process.env;
const SKIP = env.CS_NODE_PORT ? false : 'no daemon (run tests/integration/client_node.sh)';
const PORT = Number(env.CS_NODE_PORT);
const TOKEN = env.CS_NODE_TOKEN;
const base = { port: PORT, token: TOKEN, timeout: 10000, reconnect: { initialDelay: 50, maxDelay: 500 } };
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

let c; // the shared client (one connection)
test.before(() => {
  if (!SKIP) c = new Client(base);
});
test.after(async () => {
  if (c) await c.close();
});

async function rejectsWith(p, code) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof CacheError, `not a CacheError: ${e && e.stack}`);
    assert.equal(e.code, code, `${e.codeName}: ${e.message}`);
    return true;
  });
}

test('typed values of every column type, NULLs, column names and types', { skip: SKIP }, async () => {
  const r1 = await c.get('nc_kinds', [1]);
  assert.deepEqual(r1.columns.map((x) => x.name), ['id', 'small', 'big', 'score', 'seen', 'wall', 'blob', 'tags', 'doc', 'ok', 'f', 'born', 'u', 'name']);
  assert.deepEqual(r1.columns.map((x) => x.typeName), ['int', 'int', 'int', 'numeric', 'timestamptz', 'timestamp', 'bytea', 'other', 'json', 'bool', 'float', 'other', 'other', 'text']);
  const [v] = r1.rows;
  assert.equal(v[0], 1);
  assert.equal(v[1], 42);
  assert.equal(v[2], 9007199254740993n); // int8 beyond 2^53: a BigInt, exact
  assert.ok(v[3] instanceof Decimal);
  assert.equal(v[3].toString(), '12345678901234567890.123456789');
  assert.ok(v[4] instanceof Timestamp && v[4] instanceof Date);
  assert.equal(v[4].toISOString(), '2024-01-02T03:04:05.123Z');
  assert.equal(v[4].nanoseconds, 123456000);
  assert.equal(v[4].toISOStringNano(), '2024-01-02T03:04:05.123456Z');
  assert.equal(v[5].toISOString(), '2024-01-02T03:04:05.500Z');
  assert.ok(Buffer.isBuffer(v[6]));
  assert.equal(v[6].toString('hex'), '00ff10');
  assert.equal(v[7], '{a,"b c"}');
  assert.deepEqual(v[8], { k: [1, 2], s: 'x' });
  assert.equal(v[9], true);
  assert.equal(v[10], 1.5);
  assert.equal(v[11], '2000-01-31');
  assert.equal(v[12], 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
  assert.equal(v[13], 'héllo');
  assert.deepEqual(r1.records()[0].name, 'héllo');

  const [w] = (await c.get('nc_kinds', [2])).rows;
  assert.deepEqual(w.slice(0, 4).map(String), ['2', '-7', '-9223372036854775808', '-0.5']);
  assert.equal(typeof w[2], 'bigint');
  assert.equal(w[4], Infinity);
  assert.equal(w[5], -Infinity);
  assert.equal(w[6].length, 0);
  assert.equal(w[7], '{}');
  assert.deepEqual(w[8], []);
  assert.equal(w[9], false);
  assert.equal(w[10], -2.25);
  assert.equal(w[13], '');

  const [n] = (await c.get('nc_kinds', ['3'])).rows;
  assert.equal(n[0], 3);
  assert.ok(n.slice(1).every((x) => x === null), `NULLs: ${n}`);

  // options: json raw, every int as BigInt
  const raw = new Client({ ...base, json: 'raw', int64: 'bigint' });
  try {
    const [x] = (await raw.get('nc_kinds', [1])).rows;
    assert.equal(x[0], 1n);
    assert.equal(x[1], 42n);
    assert.equal(typeof x[8], 'string');
    assert.deepEqual(JSON.parse(x[8]), { k: [1, 2], s: 'x' });
  } finally {
    await raw.close();
  }
});

test('a miss reads a replica and fills; the hit comes from the cache with the same data', { skip: SKIP }, async () => {
  const miss = await c.get('nc_name', [1]);
  assert.equal(miss.meta.source, 'replica');
  assert.equal(miss.meta.src, 1);
  if (miss.meta.stored !== undefined) assert.equal(miss.meta.stored, true);
  // a miss is answered before its fill is stored: read until a hit (bounded)
  let hit = await c.get('nc_name', [1]);
  for (const end = Date.now() + 20000; hit.source !== 'cache' && Date.now() < end;) {
    await new Promise((r) => setTimeout(r, 50));
    hit = await c.get('nc_name', [1]);
  }
  assert.equal(hit.source, 'cache');
  assert.equal(hit.meta.stored, undefined); // cache hits do not carry it
  // a batch-tier miss waits for the fill and says it was stored
  const batch = await c.get('nc_name', [11], { tier: 'batch' });
  assert.equal(batch.source, 'replica');
  if (batch.meta.stored !== undefined) assert.equal(batch.meta.stored, true); // (see REFRESH below)
  assert.deepEqual(hit.rows, [[1, 'name 1']]);
  assert.deepEqual(hit.rows, miss.rows);
  assert.equal(hit.meta.lsn, miss.meta.lsn);
  assert.equal(typeof hit.meta.lsn, 'bigint');
  assert.ok(hit.meta.lsn > 0n);
  assert.equal(parseLsn(formatLsn(hit.meta.lsn)), hit.meta.lsn);
  assert.equal(hit.meta.stale, false);
  assert.ok(Number.isInteger(hit.meta.age) && hit.meta.age >= 0);
  // "1" and 1 are the same int8 key
  assert.equal((await c.get('nc_name', ['1'])).source, 'cache');
  // bypass reads the database and does not fill
  const by = await c.get('nc_name', [6], { bypass: true });
  assert.notEqual(by.source, 'cache');
  if (by.meta.stored !== undefined) assert.equal(by.meta.stored, false);
  assert.notEqual((await c.get('nc_name', [6])).source, 'cache');
});

test('tiers, and a read-your-writes LSN token (text and bigint)', { skip: SKIP }, async () => {
  for (const tier of ['critical', 'default', 'batch', 0, 1, 2]) assert.deepEqual((await c.get('nc_name', [2], { tier })).rows, [[2, 'name 2']]);
  const token = env.CS_NODE_WRITE_LSN;
  const r = await c.get('nc_name', [50], { lsn: token });
  assert.deepEqual(r.rows, [[50, 'renamed']]);
  assert.ok(r.meta.lsn >= parseLsn(token), `answered at ${formatLsn(r.meta.lsn)}, token ${token}`);
  const r2 = await c.get('nc_name', [50], { lsn: parseLsn(token) });
  assert.ok(r2.meta.lsn >= parseLsn(token));
  assert.deepEqual(r2.rows, [[50, 'renamed']]);
});

test('MGET answers item by item', { skip: SKIP }, async () => {
  const out = await c.mget([
    { query: 'nc_name', params: [3] },
    { query: 'nc_nosuch', params: [1] },
    { query: 'nc_upto', params: [3], tier: 'batch' },
    { query: 'nc_name', params: ['abc'] },
  ]);
  assert.equal(out.length, 4);
  assert.deepEqual(out[0].rows, [[3, 'name 3']]);
  assert.ok(out[1] instanceof CacheError && out[1].code === Codes.UNKNOWN_QUERY && out[1].fromServer, String(out[1]));
  assert.deepEqual(out[2].rows, [[1, 'name 1'], [2, 'name 2'], [3, 'name 3']]);
  assert.ok(out[3] instanceof CacheError && out[3].code === Codes.BAD_PARAMS, String(out[3]));
  assert.deepEqual(await c.mget([]), []);
});

test('REFRESH re-reads the database; INVALIDATE a key and a whole query', { skip: SKIP }, async () => {
  await c.get('nc_name', [7]);
  assert.equal((await c.get('nc_name', [7])).source, 'cache');
  const rf = await c.refresh('nc_name', [7], { tier: 'batch' });
  assert.equal(rf.source, 'replica');
  // REFRESH waits for the fill's outcome and carries it (PROTOCOL.md 4); the daemon does
  // not encode "stored" yet (cs_meta.stored, "encoding follows"): when present it is true.
  if (rf.meta.stored !== undefined) assert.equal(rf.meta.stored, true);
  assert.equal((await c.get('nc_name', [7])).source, 'cache');

  assert.equal(await c.invalidate('nc_name', [7]), 1);
  assert.equal(await c.invalidate('nc_name', [7]), 0);
  assert.equal((await c.get('nc_name', [7])).source, 'replica');

  await c.get('nc_upto', [4]);
  assert.equal((await c.get('nc_upto', [4])).source, 'cache');
  const g1 = await c.invalidateQuery('nc_upto');
  const g2 = await c.invalidateQuery('nc_upto');
  assert.equal(typeof g1, 'number');
  assert.equal(g2, g1 + 1);
  assert.equal((await c.get('nc_upto', [4])).source, 'replica');

  // a zero-parameter query's one key: p = []
  await c.get('nc_count', []);
  assert.equal((await c.get('nc_count')).source, 'cache');
  assert.equal(await c.invalidate('nc_count', []), 1);
});

test('STATS and PING', { skip: SKIP }, async () => {
  const s = await c.stats();
  const keys = Object.keys(s);
  assert.ok(keys.length > 5, `STATS: ${keys}`);
  assert.ok(keys.some((k) => /hits/.test(k)), `no hits counter: ${keys}`);
  for (const k of keys) assert.ok(typeof s[k] === 'number' || typeof s[k] === 'bigint', k);
  assert.equal(await c.ping(), undefined);
});

test('pipelining: a slow miss is overtaken by a hit on the same connection', { skip: SKIP }, async () => {
  await c.get('nc_name', [4]); // warm
  const conn = c._conn;
  const order = [];
  const slow = c.get('nc_slow', [1.5, 1]).then((r) => {
    order.push('slow');
    return r;
  });
  const hit = c.get('nc_name', [4]).then((r) => {
    order.push('hit');
    return r;
  });
  const [s, h] = await Promise.all([slow, hit]);
  assert.deepEqual(order, ['hit', 'slow']);
  assert.equal(h.source, 'cache');
  assert.deepEqual(s.rows, [[false, 1]]); // pg_sleep() returns void, which IS NOT NULL
  assert.equal(c._conn, conn, 'one connection');
  // many requests in flight at once, each matched to its own reply
  const ids = Array.from({ length: 200 }, (_, i) => 1 + (i % 50));
  const rs = await Promise.all(ids.map((id) => c.get('nc_name', [id])));
  rs.forEach((r, i) => assert.equal(r.rows[0][0], ids[i]));
  assert.equal(c._conn, conn);
});

test('request errors keep the connection', { skip: SKIP }, async () => {
  await c.ping();
  const conn = c._conn;
  await rejectsWith(c.get('nc_nosuch', [1]), Codes.UNKNOWN_QUERY);
  await rejectsWith(c.get('nc_name', ['abc']), Codes.BAD_PARAMS);
  await rejectsWith(c.get('nc_name', [1, 2]), Codes.BAD_PARAMS);
  await rejectsWith(c.get('nc_slow', [5, 2]), Codes.TIMEOUT); // the server's request_timeout (3 s)
  // the client's own timeout while the server answers other requests: the connection is
  // kept, the late reply dropped
  const slow = c.get('nc_slow', [1.5, 3], { timeout: 1000 });
  assert.deepEqual((await c.get('nc_name', [4])).rows, [[4, 'name 4']]);
  await rejectsWith(slow, Codes.CLIENT_TIMEOUT);
  await sleep(700);
  assert.deepEqual((await c.get('nc_name', [5])).rows, [[5, 'name 5']]);
  // arguments refused before sending
  await rejectsWith(c.get('', []), Codes.BAD_ARGUMENT);
  await rejectsWith(c.get('nc_name', [1], { tier: 7 }), Codes.BAD_ARGUMENT);
  assert.equal(c._conn, conn, 'still the first connection');
  assert.equal(conn.dead, null);
});

test('a lone request timing out with no frame since it was sent drops the connection; the next call reconnects', { skip: SKIP }, async () => {
  await c.ping();
  const conn = c._conn;
  await rejectsWith(c.get('nc_slow', [0.6, 4], { timeout: 100 }), Codes.CLIENT_TIMEOUT);
  assert.ok(conn.dead, 'the silent connection was dropped');
  assert.deepEqual((await c.get('nc_name', [6])).rows, [[6, 'name 6']]);
  assert.notEqual(c._conn, conn, 'a new connection');
});

test('a protocol error closes the connection; the client reconnects for the next call', { skip: SKIP }, async () => {
  await c.ping();
  const conn = c._conn;
  // opcode 0x0a is no request: the server answers protocol and closes
  await rejectsWith(conn.request(0x0a, null, (b) => b, 5000), Codes.PROTOCOL);
  assert.ok(conn.dead, 'connection closed after the protocol error');
  await rejectsWith(conn.request(0x02, null, (b) => b, 5000), Codes.CLOSED);
  assert.deepEqual((await c.get('nc_name', [8])).rows, [[8, 'name 8']]);
  assert.notEqual(c._conn, conn, 'a new connection');
});

test('the auth token: missing or wrong is auth, right works', { skip: SKIP }, async () => {
  for (const token of [undefined, 'wrong']) {
    const x = new Client({ port: PORT, token, timeout: 5000 });
    try {
      await rejectsWith(x.get('nc_name', [1]), Codes.AUTH);
    } finally {
      await x.close();
    }
  }
  const y = new Client({ port: PORT, token: TOKEN });
  try {
    const info = await y.connect();
    assert.equal(info.version, 1);
    assert.ok(info.server.length > 0);
    assert.ok(info.maxFrame >= 1024);
  } finally {
    await y.close();
  }
});

test('unix socket', { skip: SKIP }, async () => {
  const u = new Client({ path: env.CS_NODE_SOCK, token: TOKEN });
  try {
    await u.ping();
    assert.deepEqual((await u.get('nc_name', [9])).rows, [[9, 'name 9']]);
  } finally {
    await u.close();
  }
});

test('pool: requests spread over its connections', { skip: SKIP }, async () => {
  const pool = new Pool({ ...base, size: 3 });
  try {
    const ids = Array.from({ length: 90 }, (_, i) => 1 + (i % 30));
    const rs = await Promise.all(ids.map((id) => pool.get('nc_name', [id])));
    rs.forEach((r, i) => assert.deepEqual(r.rows[0], [ids[i], ids[i] === 50 ? 'renamed' : `name ${ids[i]}`]));
    assert.equal(pool.clients.filter((x) => x.connected).length, 3);
    assert.equal((await pool.mget([{ query: 'nc_name', params: [1] }]))[0].rows[0][1], 'name 1');
    await pool.ping();
  } finally {
    await pool.close();
  }
});

function alive(pid) {
  try {
    const st = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) Z/.test(st); // a zombie has exited
  } catch (e) {
    return false;
  }
}

test('admin: show queries counts, unknown view, pause/resume, reload, admin_token', { skip: SKIP }, async () => {
  const ADMIN = 'opensesame';
  const queries = async (cl) => {
    const rows = await cl.show('queries');
    return Object.fromEntries(rows.map((r) => [r.name, r]));
  };
  const source = async (cl) => {
    const r = await cl.get('nc_name', [45]);
    assert.equal(r.rows[0][1], 'name 45');
    return r.source;
  };
  const a = new Client(base);
  const clients = [a];
  const conf = env.CS_NODE_CONF;
  const orig = fs.readFileSync(conf, 'utf8');
  try {
    await a.invalidate('nc_name', [45]);
    const before = await queries(a);
    for (const n of ['nc_kinds', 'nc_name', 'nc_upto', 'nc_slow', 'nc_count']) assert.ok(before[n], `show queries has no ${n}`);
    const q = before.nc_name;
    assert.deepEqual([q.params, q.ttl_ms, q.kind, q.paused], ['id:int8', 60000, 'row', false]);
    assert.equal(before.nc_upto.kind, 'list');
    assert.notEqual(await source(a), 'cache');
    for (let i = 0; i < 3; i++) assert.equal(await source(a), 'cache');
    const after = (await queries(a)).nc_name;
    assert.deepEqual({ hits: after.hits - q.hits, misses: after.misses - q.misses, fills: after.fills - q.fills },
      { hits: 3, misses: 1, fills: 1 });
    await assert.rejects(a.show('nosuch'), (e) => e.code === Codes.BAD_PARAMS && /queries/.test(e.message));
    assert.equal(a.connected, true);
    for (const v of ['servers', 'clients', 'invalidator', 'config']) assert.ok((await a.show(v)).length > 0, `show ${v}`);

    assert.deepEqual(await a.pause('nc_name'), { query: 'nc_name', paused: true, changed: true });
    for (let i = 0; i < 2; i++) assert.equal(await source(a), 'replica');
    assert.equal((await queries(a)).nc_name.paused, true);
    assert.equal((await a.pause('nc_name')).changed, false);
    assert.deepEqual(await a.resume('nc_name'), { query: 'nc_name', paused: false, changed: true });
    // resume starts a new generation: the entry from before the pause is not served; once
    // the bump is confirmed a miss fills and the cache answers again
    assert.notEqual(await source(a), 'cache');
    for (const deadline = Date.now() + 10000; (await source(a)) !== 'cache';) {
      assert.ok(Date.now() < deadline, 'resumed: never answered from the cache');
      await new Promise((r) => setTimeout(r, 100));
    }
    await rejectsWith(a.pause('nosuch'), Codes.UNKNOWN_QUERY);
    // claim of a query no other definition owns: nothing to take over
    assert.deepEqual(await a.claim('nc_name'), { query: 'nc_name', claimed: false });
    await rejectsWith(a.claim('nosuch'), Codes.UNKNOWN_QUERY);

    // admin_token set by a reload of the rewritten config
    const withAdmin = orig.replace('\nauth_token = sesame\n', `\nauth_token = sesame\nadmin_token = ${ADMIN}\n`);
    assert.notEqual(withAdmin, orig, 'no auth_token line in the config');
    fs.writeFileSync(conf, withAdmin);
    const nq = Object.keys(before).length;
    assert.deepEqual(await a.reload(), { reload: 'applied', queries: nq });
    const d = new Client(base); // HELLO after admin_token was set
    clients.push(d);
    await rejectsWith(d.show('queries'), Codes.AUTH);
    await rejectsWith(d.pause('nc_name'), Codes.AUTH);
    await rejectsWith(d.reload(), Codes.AUTH);
    assert.equal(d.connected, true);
    assert.equal(await source(d), 'cache');
    const adm = new Pool({ ...base, token: ADMIN, size: 2 });
    clients.push(adm);
    assert.ok((await queries(adm)).nc_name, 'show with the admin token');
    assert.equal((await adm.pause('nc_count')).changed, true);
    assert.equal((await adm.resume('nc_count')).changed, true);
    fs.writeFileSync(conf, `${orig}\n[query nc_bad]\nsql = SELECT nope FROM names WHERE id = $1\nparams = id:int8\n`);
    const refused = await adm.reload();
    assert.equal(refused.reload, 'refused');
    assert.match(refused.error, /nope/);
    fs.writeFileSync(conf, orig);
    assert.deepEqual(await adm.reload(), { reload: 'applied', queries: nq });
    const e = new Client(base);
    clients.push(e);
    assert.ok((await queries(e)).nc_name, 'show with the data token once admin_token is gone');
  } finally {
    fs.writeFileSync(conf, orig);
    await Promise.all(clients.map((x) => x.close()));
  }
});

test('reconnect after the daemon restarts', { skip: SKIP }, async (t) => {
  const pid = Number(env.CS_NODE_DAEMON_PID);
  await c.get('nc_name', [10]);
  const conn = c._conn;
  process.kill(pid, 'SIGTERM');
  for (let i = 0; i < 300 && alive(pid); i++) await sleep(50);
  assert.ok(!alive(pid), 'the daemon did not exit');
  for (let i = 0; i < 200 && c.connected; i++) await sleep(50);
  assert.equal(c.connected, false, 'the client did not see the connection close');
  // the daemon is down: a request waits (reconnecting with backoff) within its timeout
  const pending = c.get('nc_name', [10], { timeout: 30000 });
  await sleep(400); // at least one connect attempt fails while the daemon is down
  const log = fs.openSync(path.join(env.CS_NODE_WORK, 'cachesvc-restarted.log'), 'a');
  const child = spawn(env.CS_NODE_CACHESVC, ['-c', env.CS_NODE_CONF], { stdio: ['ignore', log, log] });
  const pidFile = path.join(env.CS_NODE_WORK, 'node-daemon.pid'); // for client_node.sh's cleanup
  fs.writeFileSync(pidFile, String(child.pid));
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.after(async () => {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(timer);
    fs.rmSync(pidFile, { force: true }); // exited and reaped: its pid is no longer ours
  });
  const r = await pending;
  assert.deepEqual(r.rows, [[10, 'name 10']]);
  assert.equal(r.source, 'cache'); // Redis kept the entry across the restart
  assert.ok(c.connected);
  assert.notEqual(c._conn, conn);
});
