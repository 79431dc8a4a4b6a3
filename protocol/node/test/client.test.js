'use strict';
// Client and Pool against a scripted fake server (unix socket): pipelining with replies
// out of order, errors that keep or close the connection, timeouts, reconnect, pool.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { Client, Pool, CacheError, Codes } = require('../lib');
const { fakeServer, frame, meta, mp, prng } = require('./helpers');

const DIR = fs.mkdtempSync(path.join(os.tmpdir(), 'cs-node-'));
test.after(() => fs.rmSync(DIR, { recursive: true, force: true }));

const result = (v) => [meta(0), [[['v', 4]], [[v]]]];
const opts = (srv, extra = {}) => ({ path: srv.path, timeout: 2000, connectTimeout: 1000, reconnect: { initialDelay: 5, maxDelay: 20 }, ...extra });
async function rejectsCode(p, code) {
  await assert.rejects(p, (e) => {
    assert.ok(e instanceof CacheError, `not a CacheError: ${e && e.stack}`);
    assert.equal(e.codeName, require('../lib').codeName(code), e.message);
    return true;
  });
}

test('HELLO carries version, client name and token; serverInfo', async () => {
  let hello = null;
  const srv = await fakeServer(DIR, (f) => {
    if (f.opcode === 1) hello = f.body;
  });
  const c = new Client(opts(srv, { token: 's3cret', clientName: 'app-1' }));
  const info = await c.connect();
  assert.deepEqual(hello, { v: 1, client: 'app-1', token: 's3cret' });
  assert.deepEqual(info, { version: 1, server: 'fake/1', maxFrame: 1048576 });
  assert.equal(c.connected, true);
  await c.close();
  await srv.close();
});

test('pipelining: replies out of order are matched by request id', async () => {
  const held = [];
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode !== 3) return;
    held.push(f);
    if (held.length === 3) {
      // answer in the order 3, 1, 2
      for (const h of [held[2], held[0], held[1]]) conn.reply(0x83, h.id, result(h.body.p[0]));
    }
  });
  const c = new Client(opts(srv));
  const rs = await Promise.all(['a', 'b', 'c'].map((v) => c.get('q', [v])));
  assert.deepEqual(rs.map((r) => r.rows[0][0]), ['a', 'b', 'c']);
  assert.equal(new Set(held.map((h) => h.id)).size, 3);
  assert.equal(srv.accepted, 1);
  await c.close();
  await srv.close();
});

test('a request error keeps the connection; every opcode', async () => {
  const seen = [];
  const srv = await fakeServer(DIR, (f, conn) => {
    seen.push([f.opcode, f.body]);
    switch (f.opcode) {
      case 2: return conn.reply(0x82, f.id, null);
      case 3: return f.body.q === 'nope' ? conn.reply(0xff, f.id, { code: 1, msg: 'no query "nope"' }) : conn.reply(0x83, f.id, result('x'));
      case 4: return conn.reply(0x84, f.id, [result('m'), { code: 2, msg: 'bad' }]);
      case 5: return conn.reply(0x85, f.id, [meta(1, { stored: true }), [[['v', 4]], [['r']]]]);
      case 6: return conn.reply(0x86, f.id, f.body.p ? { deleted: 1 } : { generation: 4 });
      case 7: return conn.reply(0x87, f.id, { hits: 5, ratio: 0.5 });
      default: return undefined;
    }
  });
  const c = new Client(opts(srv));
  await rejectsCode(c.get('nope', []), Codes.UNKNOWN_QUERY);
  assert.equal((await c.get('q', [1], { tier: 'critical', lsn: '0/10', bypass: true })).rows[0][0], 'x');
  const m = await c.mget([{ query: 'a', params: [1] }, { query: 'b', params: ['x'], tier: 2 }]);
  assert.equal(m[0].rows[0][0], 'm');
  assert.ok(m[1] instanceof CacheError && m[1].code === Codes.BAD_PARAMS);
  const rf = await c.refresh('q', [2]);
  assert.equal(rf.meta.source, 'replica');
  assert.equal(rf.meta.stored, true);
  assert.equal(await c.invalidate('q', [1]), 1);
  assert.equal(await c.invalidateQuery('q'), 4);
  assert.deepEqual(await c.stats(), { hits: 5, ratio: 0.5 });
  assert.equal(await c.ping(), undefined);
  assert.equal(srv.accepted, 1); // one connection throughout
  const bodies = Object.fromEntries(seen.filter(([op]) => op !== 1).map(([op, b]) => [op, b]));
  assert.deepEqual(bodies[3], { q: 'q', p: [1], tier: 0, lsn: 16, bypass: true });
  assert.deepEqual(bodies[4], [{ q: 'a', p: [1] }, { q: 'b', p: ['x'], tier: 2 }]);
  assert.deepEqual(bodies[6], { q: 'q' });
  assert.equal(bodies[7], null);
  await c.close();
  await srv.close();
});

test('a protocol error closes the connection; the next call reconnects', async () => {
  let gets = 0;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode !== 3) return;
    gets++;
    if (f.body.q === 'bad') {
      conn.reply(0xff, f.id, { code: 7, msg: 'unknown key' });
      conn.end();
    } else if (f.body.q === 'slow') {
      // never answered: fails when the connection closes
    } else conn.reply(0x83, f.id, result('ok'));
  });
  const c = new Client(opts(srv));
  await c.connect();
  const slow = c.get('slow', []);
  const bad = c.get('bad', []);
  await rejectsCode(bad, Codes.PROTOCOL);
  await rejectsCode(slow, Codes.CLOSED);
  assert.equal((await c.get('q', [])).rows[0][0], 'ok');
  assert.equal(srv.accepted, 2);
  assert.equal(gets, 3);
  await c.close();
  await srv.close();
});

test('a malformed reply closes the connection with bad_reply', async () => {
  const bad = [
    (id) => frame(0x83, id + 100, result('x')), // an id not in flight
    (id) => frame(0x85, id, result('x')), // wrong opcode
    (id) => frame(0x83, id, result('x'), { version: 9 }),
    (id) => frame(0x83, id, Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])),
    (id) => frame(0x83, id, [meta(0), [[['a', 2]], [[1, 2]]]]),
    (id) => frame(0x83, id, Buffer.alloc(0), { len: 2000 }), // over maxReply
  ];
  let which = 0;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 3) conn.raw(bad[which](f.id));
  });
  const c = new Client(opts(srv, { maxReply: 1000 }));
  for (which = 0; which < bad.length; which++) await rejectsCode(c.get('q', []), Codes.BAD_REPLY);
  assert.equal(srv.accepted, bad.length);
  await c.close();
  await srv.close();
});

test('a client timeout fails one request, not the connection; the late reply is dropped', async () => {
  let slowId = null;
  let conn0 = null;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode !== 3) return;
    if (f.body.q === 'slow') {
      slowId = f.id;
      conn0 = conn;
    } else conn.reply(0x83, f.id, result('fast'));
  });
  const c = new Client(opts(srv));
  const slow = c.get('slow', [], { timeout: 1500 });
  // the server answers another request meanwhile: it is alive, the connection stays
  assert.equal((await c.get('q', [])).rows[0][0], 'fast');
  await rejectsCode(slow, Codes.CLIENT_TIMEOUT);
  assert.equal(c.inFlight, 1); // the unanswered request still counts
  conn0.reply(0x83, slowId, result('late'));
  assert.equal((await c.get('q', [])).rows[0][0], 'fast');
  assert.equal((await c.get('q', [])).rows[0][0], 'fast');
  assert.equal(c.inFlight, 0);
  assert.equal(srv.accepted, 1);
  await c.close();
  await srv.close();
});

test('a timeout with no frame since the request was sent drops the connection; the next call reconnects', async () => {
  let n = 0;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 1) {
      n++;
      return;
    }
    if (n >= 2) conn.reply(0x83, f.id, result('alive')); // the first connection: HELLO, then silence
  });
  const c = new Client(opts(srv));
  await c.connect();
  const other = c.get('other', [], { timeout: 5000 });
  await rejectsCode(c.get('q', [], { timeout: 100 }), Codes.CLIENT_TIMEOUT);
  await rejectsCode(other, Codes.CLOSED);
  assert.equal((await c.get('q', [])).rows[0][0], 'alive');
  assert.equal(srv.accepted, 2);
  await c.close();
  await srv.close();
});

test('pool: a connection whose server went silent is replaced', async () => {
  let n = 0;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 1) {
      conn.sock.nth = n++;
      return;
    }
    if (conn.sock.nth !== 0) conn.reply(0x83, f.id, result('ok'));
  });
  const pool = new Pool({ ...opts(srv), size: 2 });
  await pool.connect();
  // requests spread over both connections: those on the silent one time out
  const rs = await Promise.allSettled(Array.from({ length: 4 }, () => pool.get('q', [], { timeout: 200 })));
  assert.ok(rs.some((r) => r.status === 'rejected' && r.reason.code === Codes.CLIENT_TIMEOUT));
  assert.ok(rs.some((r) => r.status === 'fulfilled'));
  for (let i = 0; i < 6; i++) assert.equal((await pool.get('q', [])).rows[0][0], 'ok');
  assert.equal(srv.accepted, 3); // the silent one was dropped and replaced
  await pool.close();
  await srv.close();
});

test('auth failure at HELLO is reported as auth, not retried until the timeout', async () => {
  let hellos = 0;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 1) {
      hellos++;
      conn.reply(0xff, f.id, { code: 6, msg: 'bad token' });
      return true;
    }
    return false;
  });
  const c = new Client(opts(srv, { token: 'wrong', timeout: 60000 }));
  await rejectsCode(c.get('q', []), Codes.AUTH);
  assert.equal(hellos, 1); // one attempt, no retries within the request's timeout
  await c.close();
  await srv.close();
});

test('request over the server max_frame: too_large, nothing sent, connection kept', async () => {
  let gets = 0;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 1) {
      conn.reply(0x81, f.id, { v: 1, server: 'small', max_frame: 64 });
      return true;
    }
    if (f.opcode === 3) {
      gets++;
      conn.reply(0x83, f.id, result('ok'));
    }
    return false;
  });
  const c = new Client(opts(srv));
  await c.connect();
  await rejectsCode(c.get('q', ['x'.repeat(100)]), Codes.TOO_LARGE);
  await rejectsCode(c.get('q', new Array(17).fill(1)), Codes.BAD_ARGUMENT);
  assert.equal((await c.get('q', ['small'])).rows[0][0], 'ok');
  assert.equal(gets, 1);
  assert.equal(srv.accepted, 1);
  await c.close();
  await srv.close();
});

test('reconnect: after the server drops, and while it is down (backoff), then back', async () => {
  const handler = (f, conn) => {
    if (f.opcode === 3) conn.reply(0x83, f.id, result('up'));
  };
  let srv = await fakeServer(DIR, handler);
  const p = srv.path;
  const c = new Client({ path: p, timeout: 2000, reconnect: { initialDelay: 10, maxDelay: 50 } });
  assert.equal((await c.get('q', [])).rows[0][0], 'up');
  srv.dropAll();
  while (c.connected) await new Promise((r) => setTimeout(r, 10));
  assert.equal((await c.get('q', [])).rows[0][0], 'up');
  assert.equal(srv.accepted, 2);
  await srv.close();
  while (c.connected) await new Promise((r) => setTimeout(r, 10));
  // down: the request waits its timeout, attempting with backoff, and says why it failed
  await assert.rejects(c.get('q', [], { timeout: 300 }), (e) => e.code === Codes.CONNECT && /connect to unix:/.test(e.message));
  // back on the same path: a waiting request gets through
  const pending = c.get('q', [], { timeout: 5000 });
  await new Promise((r) => setTimeout(r, 100));
  fs.rmSync(p, { force: true });
  srv = await (async () => {
    const s = await fakeServer(DIR, handler);
    fs.renameSync(s.path, p);
    return s;
  })();
  assert.equal((await pending).rows[0][0], 'up');
  await c.close();
  await srv.close();
});

test('reconnect: false: a lost connection stays lost', async () => {
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 2) conn.reply(0x82, f.id, null);
  });
  const c = new Client(opts(srv, { reconnect: false }));
  await c.ping();
  srv.dropAll();
  while (c.connected) await new Promise((r) => setTimeout(r, 10));
  await rejectsCode(c.ping(), Codes.CLOSED);
  assert.equal(srv.accepted, 1);
  await c.close();
  await srv.close();
});

test('close(): requests in flight and later calls fail with closed', async () => {
  const srv = await fakeServer(DIR, () => {});
  const c = new Client(opts(srv));
  await c.connect();
  const p = rejectsCode(c.get('q', []), Codes.CLOSED);
  await c.close();
  await p;
  await rejectsCode(c.ping(), Codes.CLOSED);
  await srv.close();
});

test('pool: calls spread over its connections by load', async () => {
  const held = [];
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode !== 3) return;
    held.push([f, conn]);
    if (held.length === 12) for (const [h, k] of held) k.reply(0x83, h.id, result(h.body.p[0]));
  });
  const pool = new Pool({ ...opts(srv), size: 3 });
  await pool.connect();
  const rs = await Promise.all(Array.from({ length: 12 }, (_, i) => pool.get('q', [String(i)])));
  assert.deepEqual(rs.map((r) => r.rows[0][0]), Array.from({ length: 12 }, (_, i) => String(i)));
  assert.equal(srv.accepted, 3);
  // each connection carried 4 of the 12 (least busy first)
  const per = new Map();
  for (const [, k] of held) per.set(k.sock, (per.get(k.sock) || 0) + 1);
  assert.deepEqual([...per.values()], [4, 4, 4]);
  await pool.close();
  await srv.close();
});

test('fuzz through a socket: mutated replies only ever reject with CacheError', async () => {
  const r = prng(99);
  const good = mp(result('x'));
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode !== 3) return;
    const b = Buffer.from(good);
    for (let i = 0, n = 1 + Math.floor(r() * 3); i < n; i++) b[Math.floor(r() * b.length)] = Math.floor(r() * 256);
    const fr = frame(0x83, f.id, b);
    if (r() < 0.2) fr[Math.floor(r() * 12)] ^= 0xff;
    conn.raw(fr.subarray(0, r() < 0.1 ? Math.floor(r() * fr.length) : fr.length));
    if (r() < 0.1) conn.end();
  });
  const c = new Client(opts(srv, { timeout: 100, maxReply: 4096 }));
  let ok = 0;
  let failed = 0;
  for (let i = 0; i < 120; i++) {
    try {
      await c.get('q', []);
      ok++;
    } catch (e) {
      assert.ok(e instanceof CacheError, `round ${i}: ${e && e.stack}`);
      failed++;
    }
  }
  assert.ok(ok > 0 && failed > 0, `ok ${ok} failed ${failed}`);
  await c.close();
  await srv.close();
});

test('options are checked when the client is made', () => {
  const bad = [{ port: 0 }, { port: 70000 }, { host: '' }, { timeout: 0 }, { timeout: 2 ** 31 }, { connectTimeout: -1 },
    { maxReply: 0 }, { maxCells: 0 }, { json: 'x' }, { int64: 'number' }, { reconnect: { initialDelay: 100, maxDelay: 10 } },
    { clientName: 'x'.repeat(65) }, { token: 't'.repeat(257) }, { path: 5 }];
  for (const o of bad) assert.throws(() => new Client(o), (e) => e instanceof CacheError && e.code === Codes.BAD_ARGUMENT, JSON.stringify(o));
  assert.throws(() => new Pool({ size: 0 }), CacheError);
  new Client({ path: '/tmp/x.sock', reconnect: false, json: 'raw', int64: 'bigint' }); // valid: no I/O until used
});

test('shutting_down: the connection takes no new requests, closes when idle; calls go to a new one', async () => {
  let slow = null;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode !== 3) return;
    if (f.body.q === 'slow') slow = [conn, f.id];
    else if (f.body.q === 'drain') conn.reply(0xff, f.id, { code: 10, msg: 'draining' });
    else conn.reply(0x83, f.id, result('new'));
  });
  const c = new Client(opts(srv));
  await c.connect();
  const first = c._conn;
  const pending = c.get('slow', []);
  while (!slow) await new Promise((r) => setTimeout(r, 5));
  await rejectsCode(c.get('drain', []), Codes.SHUTTING_DOWN);
  assert.equal(c.connected, false);
  assert.equal(first.dead, null); // still open: a request is in flight on it
  assert.equal((await c.get('q', [])).rows[0][0], 'new');
  assert.notEqual(c._conn, first);
  assert.equal(srv.accepted, 2);
  slow[0].reply(0x83, slow[1], result('old'));
  assert.equal((await pending).rows[0][0], 'old'); // answered on the draining connection
  assert.ok(first.dead && first.dead.code === Codes.CLOSED); // then closed by the client
  await c.close();
  await srv.close();
});


test('maxCells: a reply over it closes the connection with bad_reply', async () => {
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 3) conn.reply(0x83, f.id, [meta(0), [[['v', 4]], [[null], [null], [null]]]]);
  });
  const c = new Client(opts(srv, { maxCells: 4 }));
  await rejectsCode(c.get('q', []), Codes.BAD_REPLY);
  await c.close();
  const d = new Client(opts(srv)); // the default (a million) takes it
  assert.equal((await d.get('q', [])).rows.length, 3);
  await d.close();
  await srv.close();
});

test('HELLO max_frame 0: the request limit falls back to 1 MiB', async () => {
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 1) {
      conn.reply(0x81, f.id, { v: 1, server: 'fake/0', max_frame: 0 });
      return true;
    }
    if (f.opcode === 3) conn.reply(0x83, f.id, result('ok'));
  });
  const c = new Client(opts(srv));
  assert.equal((await c.get('q', ['x'.repeat(1000)])).rows[0][0], 'ok');
  await rejectsCode(c.get('q', ['x'.repeat(1048576)]), Codes.TOO_LARGE);
  await c.close();
  await srv.close();
});

test('util.inspect of a client or its connection does not show the token', async () => {
  const util = require('node:util');
  const secret = 's3cret-token-value';
  let sent = null;
  const srv = await fakeServer(DIR, (f) => {
    if (f.opcode === 1) sent = f.body.token;
  });
  const c = new Client(opts(srv, { token: secret }));
  await c.connect();
  assert.equal(sent, secret); // still sent in HELLO
  for (const x of [c, c._conn, c.o]) {
    assert.ok(!util.inspect(x, { depth: 10, showHidden: false }).includes(secret));
    assert.ok(!JSON.stringify(x.o || x, (k, v) => (typeof v === 'bigint' ? String(v) : v)).includes(secret));
  }
  const p = new Pool({ ...opts(srv, { token: secret }), size: 2 });
  assert.ok(!util.inspect(p, { depth: 10 }).includes(secret));
  await p.close();
  await c.close();
  await srv.close();
});

test('write backpressure: requests past maxQueued unread bytes fail at once with overloaded', async () => {
  let stalled = null;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 1) {
      conn.reply(0x81, f.id, { v: 1, server: 'fake/1', max_frame: 1048576 });
      conn.sock.pause(); // then reads nothing more
      stalled = conn;
      return true;
    }
  });
  const c = new Client(opts(srv, { maxQueued: 2 * 1048576, timeout: 30000 }));
  await c.connect();
  const big = 'x'.repeat(500000);
  const sent = [];
  let refused = null;
  for (let i = 0; i < 10 && !refused; i++) {
    const p = c.get('q', [big]);
    sent.push(p.catch((e) => e));
    await Promise.race([p.then(() => null, (e) => e), new Promise((r) => setImmediate(() => r(null)))]).then((e) => {
      if (e && e.code === Codes.OVERLOADED) refused = e;
    });
  }
  assert.ok(refused, 'no request was refused');
  assert.equal(refused.fromServer, false);
  assert.match(refused.message, /not reading/);
  assert.ok(sent.length <= 6, `${sent.length} requests queued past a 2 MiB bound`);
  assert.ok(stalled);
  await c.close();
  for (const e of await Promise.all(sent)) assert.ok(e instanceof CacheError);
  await srv.close();
});

test('show, pause, resume, reload: frames and replies; auth keeps the connection; reload outlasts timeout', async () => {
  const seen = [];
  let n = 0;
  const srv = await fakeServer(DIR, (f, conn) => {
    if (f.opcode === 1) return undefined;
    seen.push([f.opcode, f.body]);
    switch (n++) {
      case 0: return conn.reply(0x88, f.id, [{ name: 'q1', hits: 2 }, { name: 'q2', x: null }]);
      case 1: return conn.reply(0xff, f.id, { code: 6, msg: 'ADMIN is an admin request' });
      case 2: return conn.reply(0x89, f.id, [{ query: 'q1', paused: false, changed: true }]);
      case 3: return setTimeout(() => conn.reply(0x89, f.id, [{ reload: 'applied', queries: 2 }]), 400); // past timeout
      case 4: return conn.reply(0xff, f.id, { code: 2, msg: 'unknown view "nosuch"' });
      default: return conn.reply(0x88, f.id, [{ a: [1] }]); // not a scalar
    }
  });
  const c = new Client(opts(srv, { timeout: 200 }));
  try {
    assert.deepEqual(await c.show('queries'), [{ name: 'q1', hits: 2 }, { name: 'q2', x: null }]);
    await rejectsCode(c.pause('q1'), Codes.AUTH);
    assert.equal(c.connected, true);
    assert.deepEqual(await c.resume('q1'), { query: 'q1', paused: false, changed: true });
    assert.deepEqual(await c.reload(), { reload: 'applied', queries: 2 });
    await rejectsCode(c.show('nosuch'), Codes.BAD_PARAMS);
    await rejectsCode(c.pause(), Codes.BAD_ARGUMENT);
    await rejectsCode(c.show('queries'), Codes.BAD_REPLY);
    assert.deepEqual(seen, [
      [8, { what: 'queries' }],
      [9, { op: 'pause', q: 'q1' }],
      [9, { op: 'resume', q: 'q1' }],
      [9, { op: 'reload' }],
      [8, { what: 'nosuch' }],
      [8, { what: 'queries' }],
    ]);
    assert.equal(srv.accepted, 1);
  } finally {
    await c.close();
    await srv.close();
  }
});
