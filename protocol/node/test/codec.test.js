'use strict';
// Unit tests of the codec: frames, limits, typed values, LSNs, errors (no server).
const test = require('node:test');
const assert = require('node:assert/strict');
const { ExtData } = require('@msgpack/msgpack');
const codec = require('../lib/codec');
const { CacheError, Codes, Decimal, Timestamp, parseLsn, formatLsn, parseToken, formatToken, backoffDelay } = require('../lib');
const { mp, frame, ts96, meta, prng } = require('./helpers');

const decoder = codec.makeDecoder(codec.LIMITS.replyBody);
function body(buf) {
  return codec.decodeBody(decoder, buf, 0, buf.length);
}
function throwsCode(fn, code, re) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof CacheError, `not a CacheError: ${e}`);
    assert.equal(e.code, code, e.message);
    if (re) assert.match(e.message, re);
    return true;
  });
}
const hex = (s) => Buffer.from(s.replace(/\s+/g, ''), 'hex');

// PROTOCOL.md section 8
const EXAMPLE_REQ = hex('00000016 01 03 0000 00000001 82 a171 ac757365725f70726f66696c65 a170 91a23432');
const EXAMPLE_REPLY = hex(`00000037 01 83 0000 00000001 92
  84 a3737263 00 a36c736e cf00000016b374d848 a3616765 cd05dc a57374616c65 c2
  92 92 92a2696402 92a46e616d6504 91 922aa3616e6e`);
const EXAMPLE_ERR = hex('00000018 01 ff 0000 00000002 82 a4636f6465 01 a36d7367 ac6e6f2071756572792022782 2');

test('the worked example: GET request bytes', () => {
  const f = codec.encodeFrame(codec.OP.GET, 1, codec.getBody('user_profile', ['42']));
  assert.equal(f.toString('hex'), EXAMPLE_REQ.toString('hex'));
});

test('the worked example: GET reply decodes', () => {
  const [f] = new codec.FrameReader().push(EXAMPLE_REPLY);
  assert.equal(f.opcode, 0x83);
  assert.equal(f.id, 1);
  const r = codec.decodeResult(body(f.body), {});
  assert.equal(r.source, 'cache');
  assert.equal(r.meta.lsn, 0x16b374d848n);
  assert.equal(formatLsn(r.meta.lsn), '16/B374D848');
  assert.equal(r.meta.age, 1500);
  assert.equal(r.meta.stale, false);
  assert.equal(r.meta.stored, undefined);
  assert.deepEqual(r.columns, [
    { name: 'id', type: 2, typeName: 'int' },
    { name: 'name', type: 4, typeName: 'text' },
  ]);
  assert.deepEqual(r.rows, [[42, 'ann']]);
  assert.deepEqual(r.records(), [{ id: 42, name: 'ann' }]);
});

test('the worked example: error frame', () => {
  const [f] = new codec.FrameReader().push(EXAMPLE_ERR);
  assert.equal(f.opcode, 0xff);
  const e = codec.errorFromBody(body(f.body));
  assert.ok(e instanceof CacheError && e instanceof Error);
  assert.equal(e.code, Codes.UNKNOWN_QUERY);
  assert.equal(e.codeName, 'unknown_query');
  assert.equal(e.fromServer, true);
  assert.equal(e.serverMessage, 'no query "x"');
  assert.equal(e.closesConnection, false);
});

test('error codes: every known code keeps its name; unknown ones are internal', () => {
  const names = ['unknown_query', 'bad_params', 'overloaded', 'unavailable', 'too_large', 'auth', 'protocol', 'internal', 'timeout', 'shutting_down'];
  names.forEach((n, i) => {
    const e = codec.errorFromBody({ code: i + 1, msg: 'm' });
    assert.equal(e.code, i + 1);
    assert.equal(e.codeName, n);
    assert.equal(e.closesConnection, n === 'protocol');
  });
  const u = codec.errorFromBody({ code: 42, msg: 'new' });
  assert.equal(u.code, Codes.INTERNAL);
  assert.equal(u.codeName, 'internal');
  assert.equal(u.wireCode, 42);
  throwsCode(() => codec.errorFromBody({ code: 0, msg: '' }), Codes.BAD_REPLY);
  throwsCode(() => codec.errorFromBody({ code: 256, msg: '' }), Codes.BAD_REPLY);
  throwsCode(() => codec.errorFromBody({ msg: 'no code' }), Codes.BAD_REPLY);
  throwsCode(() => codec.errorFromBody({ code: 1 }), Codes.BAD_REPLY, /msg/);
  throwsCode(() => codec.errorFromBody({ code: 1, msg: 'm', extra: 1 }), Codes.BAD_REPLY, /extra/);
  throwsCode(() => codec.errorFromBody({ code: 1, msg: 'x'.repeat(1025) }), Codes.BAD_REPLY, /1024/);
  assert.equal(codec.errorFromBody({ code: 1, msg: 'é'.repeat(512) }).code, 1); // 1024 bytes exactly
});

test('FrameReader: byte-by-byte delivery, several frames per chunk', () => {
  const all = Buffer.concat([EXAMPLE_REPLY, EXAMPLE_ERR, EXAMPLE_REPLY]);
  const r = new codec.FrameReader();
  const got = [];
  for (const b of all) got.push(...r.push(Buffer.from([b])));
  assert.deepEqual(got.map((f) => [f.opcode, f.id, f.body.length]), [[0x83, 1, 55], [0xff, 2, 24], [0x83, 1, 55]]);
  const r2 = new codec.FrameReader();
  assert.equal(r2.push(all).length, 3);
  assert.equal(r2.pending, 0);
});

test('FrameReader: header checks before the body is read', () => {
  throwsCode(() => new codec.FrameReader().push(frame(0x82, 1, null, { version: 2 })), Codes.BAD_REPLY, /version 2/);
  throwsCode(() => new codec.FrameReader().push(frame(0x82, 1, null, { flags: 1 })), Codes.BAD_REPLY, /flags/);
  throwsCode(() => new codec.FrameReader().push(frame(0x82, 1, Buffer.alloc(0))), Codes.BAD_REPLY, /empty/);
  // oversized: refused after the 12 header bytes, none of the body sent
  const hdr = frame(0x83, 1, Buffer.alloc(0), { len: 64 * 1048576 + 1 });
  throwsCode(() => new codec.FrameReader().push(hdr), Codes.BAD_REPLY, /over the limit/);
  const small = new codec.FrameReader(100);
  throwsCode(() => small.push(frame(0x83, 1, Buffer.alloc(0), { len: 101 })), Codes.BAD_REPLY, /limit of 100/);
  assert.equal(new codec.FrameReader(100).push(frame(0x83, 1, Buffer.alloc(100, 0xc0), { len: 100 })).length, 1);
});

test('checkBody: counts and lengths bounded by the bytes left (section 7)', () => {
  throwsCode(() => codec.checkBody(hex('dd ff 00 00 00'), 0, 5), Codes.BAD_REPLY, /count/);
  throwsCode(() => codec.checkBody(hex('df 00 00 00 02 01 02 03'), 0, 8), Codes.BAD_REPLY, /count 4/);
  codec.checkBody(hex('df 00 00 00 02 a161 01 a162 02'), 0, 11);
  throwsCode(() => codec.checkBody(hex('db ff ff ff ff 41'), 0, 6), Codes.BAD_REPLY, /length/);
  throwsCode(() => codec.checkBody(hex('c6 00 00 00 02 41'), 0, 6), Codes.BAD_REPLY, /length/);
  throwsCode(() => codec.checkBody(hex('c9 00 00 00 04 ff 00 00 00'), 0, 9), Codes.BAD_REPLY, /length/);
  throwsCode(() => codec.checkBody(hex('d6 ff 00 00 00'), 0, 5), Codes.BAD_REPLY);
  throwsCode(() => codec.checkBody(hex('c1'), 0, 1), Codes.BAD_REPLY, /0xc1/);
  throwsCode(() => codec.checkBody(hex('c0 c0'), 0, 2), Codes.BAD_REPLY, /after/);
  throwsCode(() => codec.checkBody(hex('cd 01'), 0, 2), Codes.BAD_REPLY, /truncated/);
  throwsCode(() => codec.checkBody(hex(''), 0, 0), Codes.BAD_REPLY, /empty/);
});

test('checkBody: nesting depth 8 accepted, 9 refused (the body is depth 1)', () => {
  // 7 arrays around a scalar: the scalar is at depth 8
  codec.checkBody(Buffer.from([...Array(7).fill(0x91), 0x01]), 0, 8);
  throwsCode(() => codec.checkBody(Buffer.from([...Array(8).fill(0x91), 0x01]), 0, 9), Codes.BAD_REPLY, /nesting/);
  // an empty container at depth 8 is fine, one at depth 9 is not
  codec.checkBody(Buffer.from([...Array(7).fill(0x91), 0x90]), 0, 8);
  throwsCode(() => codec.checkBody(Buffer.from([...Array(8).fill(0x91), 0x80]), 0, 9), Codes.BAD_REPLY, /nesting/);
  // a deep frame of 1 MB of 0x91 is refused without recursion trouble
  throwsCode(() => codec.checkBody(Buffer.alloc(1 << 20, 0x91), 0, 1 << 20), Codes.BAD_REPLY, /nesting/);
});

test('decodeBody refuses __proto__ keys, keys that are not str, duplicate keys', () => {
  throwsCode(() => body(hex('81 a9 5f5f70726f746f5f5f 01')), Codes.BAD_REPLY);
  throwsCode(() => body(hex('81 c0 01')), Codes.BAD_REPLY, /not a str/);
  throwsCode(() => body(hex('81 01 01')), Codes.BAD_REPLY, /not a str/);
  throwsCode(() => body(hex('82 a161 01 a161 02')), Codes.BAD_REPLY, /duplicate/);
  // the same key in two encodings (fixstr, str8) is still a duplicate
  throwsCode(() => body(hex('82 a161 01 d90161 02')), Codes.BAD_REPLY, /duplicate/);
  assert.deepEqual(body(hex('82 a161 01 a162 02')), { a: 1, b: 2 });
  assert.deepEqual(body(new Uint8Array(hex('82 a161 01 a162 02'))), { a: 1, b: 2 });
});

function typedReply(extraMeta = {}) {
  const cols = [
    ['b', 1], ['i', 2], ['big', 2], ['neg', 2], ['f', 3], ['t', 4], ['by', 5], ['ts', 6], ['tz', 7],
    ['n', 8], ['j', 9], ['arr', 10], ['future', 42], ['inf', 7], ['ninf', 7], ['old', 7],
  ];
  const row = [
    true, 7, 2n ** 60n, -(2n ** 62n), 1.5, 'héllo', Buffer.from([0, 255, 1]), ts96(1704164645, 123456000),
    ts96(1704164645, 123456789), '12345678901234567890.000000001', '{"k": [1, 2], "big": 12345678901234567890}',
    '{a,b}', 'x', ts96(2n ** 63n - 1n, 0), ts96(-(2n ** 63n), 0), ts96(-62135596800, 0),
  ];
  return mp([meta(1, extraMeta), [cols, [row, new Array(cols.length).fill(null)]]]);
}

test('typed results: every column type, NULLs, meta', () => {
  const r = codec.decodeResult(body(typedReply({ stored: true, future_key: [1] })), { json: 'parse', int64: 'auto' });
  assert.equal(r.meta.source, 'replica');
  assert.equal(r.meta.stored, true);
  assert.equal(r.columns[12].typeName, 'other'); // unknown type code 42
  assert.equal(r.columns[12].type, 42);
  const [v, nulls] = r.rows;
  assert.equal(v[0], true);
  assert.equal(v[1], 7);
  assert.equal(v[2], 2n ** 60n); // outside the safe range: a BigInt, exact
  assert.equal(v[3], -(2n ** 62n));
  assert.equal(v[4], 1.5);
  assert.equal(v[5], 'héllo');
  assert.ok(Buffer.isBuffer(v[6]));
  assert.deepEqual([...v[6]], [0, 255, 1]);
  assert.ok(v[7] instanceof Timestamp && v[7] instanceof Date);
  assert.equal(v[7].toISOString(), '2024-01-02T03:04:05.123Z');
  assert.equal(v[8].nanoseconds, 123456789);
  assert.equal(v[8].toISOStringNano(), '2024-01-02T03:04:05.123456789Z');
  assert.equal(v[8].epochNanoseconds, 1704164645123456789n);
  assert.ok(v[9] instanceof Decimal);
  assert.equal(v[9].toString(), '12345678901234567890.000000001');
  assert.deepEqual(v[10].k, [1, 2]);
  assert.equal(v[11], '{a,b}');
  assert.equal(v[12], 'x');
  assert.equal(v[13], Infinity);
  assert.equal(v[14], -Infinity);
  assert.equal(v[15].toISOString(), '0001-01-01T00:00:00.000Z');
  assert.ok(nulls.every((x) => x === null));
});

test('records(): any column name is an own property', () => {
  const r = codec.decodeResult(body(mp([meta(), [[['__proto__', 2], ['a', 4], ['a', 4]], [[1, 'x', 'y']]]])), {});
  const [o] = r.records();
  assert.ok(Object.prototype.hasOwnProperty.call(o, '__proto__'));
  assert.equal(Object.getOwnPropertyDescriptor(o, '__proto__').value, 1);
  assert.equal(Object.getPrototypeOf(o), Object.prototype);
  assert.equal(o.a, 'y');
});

test('typed results: int64 "bigint" mode, json "raw" mode', () => {
  const r = codec.decodeResult(body(typedReply()), { json: 'raw', int64: 'bigint' });
  assert.equal(r.rows[0][1], 7n);
  assert.equal(r.rows[0][2], 2n ** 60n);
  assert.equal(r.rows[0][10], '{"k": [1, 2], "big": 12345678901234567890}');
});

test('typed results: bytea is a copy, not a view of the frame', () => {
  const b = typedReply();
  const r = codec.decodeResult(body(b), {});
  b.fill(0);
  assert.deepEqual([...r.rows[0][6]], [0, 255, 1]);
});

test('result shape errors are bad_reply', () => {
  const ok = [['a', 2]];
  const cases = [
    [meta(), [ok]],
    [{ src: 0, lsn: 1, age: 1 }, [ok, []]], // stale missing
    [meta(), [ok, [[1, 2]]]], // row arity
    [meta(), [[['a', 0]], []]], // type 0
    [meta(), [[['a', 256]], []]],
    [meta(), [[['x'.repeat(65), 2]], []]], // column name > 64 bytes
    [meta(), [[[1, 2]], []]],
    [meta(), [ok, [[[1]]]]], // a cell that is not a scalar
    [meta(), [[['n', 8]], [['abc']]]], // numeric that is not a decimal
    'str',
  ];
  for (const c of cases) throwsCode(() => codec.decodeResult(body(mp(c)), {}), Codes.BAD_REPLY);
  const many = Array.from({ length: 1665 }, () => ['c', 2]);
  throwsCode(() => codec.decodeResult(body(mp([meta(), [many, []]])), {}), Codes.BAD_REPLY, /1665 columns/);
});

test('timestamp ext: 4, 8 and 12 byte forms; bad lengths and nanoseconds refused', () => {
  const d = (h) => codec.decodeResult(body(Buffer.concat([mp([meta(), [[['t', 7]], []]]).subarray(0, -1), hex('91 91'), hex(h)])), {}).rows[0][0];
  assert.equal(d('d6ff 65937825').toISOString(), '2024-01-02T02:42:45.000Z'); // 0x65937825 = 1704163365
  // 8 bytes: nsec 5 in the top 30 bits, sec 1 in the low 34
  const t8 = d('d7ff 00000014 00000001');
  assert.equal(t8.seconds, 1n);
  assert.equal(t8.nanoseconds, 5);
  throwsCode(() => d('d7ff ee6b2800 00000001'), Codes.BAD_REPLY, /nanoseconds/); // nsec 1e9 (<<2)
  throwsCode(() => d('c7 0c ff 3b9aca00 0000000000000001'), Codes.BAD_REPLY, /nanoseconds/);
  throwsCode(() => d('c7 05 ff 0000000001'), Codes.BAD_REPLY, /5 bytes/);
  // encoding: the shortest form, round-trips
  for (const [sec, nsec, len] of [[0n, 0, 4], [1n, 1, 8], [2n ** 34n - 1n, 999999999, 8], [2n ** 34n, 0, 12], [-1n, 5, 12]]) {
    const e = codec.encodeTimestampExt(sec, nsec);
    assert.equal(e.type, -1);
    assert.equal(e.data.length, len);
    const back = d(mp(e).toString('hex'));
    assert.equal(back.seconds, sec);
    assert.equal(back.nanoseconds, nsec);
  }
});

test('MGET: results and item errors in both spellings', () => {
  const res = [meta(0), [[['a', 2]], [[1]]]];
  const b = mp([res, { err: 1, msg: 'no query' }, { code: 2, msg: 'bad' }, res]);
  const out = codec.decodeMget(body(b), 4, {});
  assert.equal(out[0].rows[0][0], 1);
  assert.ok(out[1] instanceof CacheError && out[1].code === 1 && out[1].fromServer);
  assert.equal(out[2].code, 2);
  assert.equal(out[3].source, 'cache');
  throwsCode(() => codec.decodeMget(body(b), 3, {}), Codes.BAD_REPLY, /4 items for 3/);
  throwsCode(() => codec.decodeMget([{ err: 1, code: 1, msg: 'm' }], 1, {}), Codes.BAD_REPLY, /both/);
  throwsCode(() => codec.decodeMget([{ err: 1, msg: 'm', x: 1 }], 1, {}), Codes.BAD_REPLY);
});

test('HELLO, INVALIDATE and STATS replies', () => {
  assert.deepEqual(codec.decodeHello({ v: 1, server: 'cachesvc 1', max_frame: 2048 }), { version: 1, server: 'cachesvc 1', maxFrame: 2048 });
  throwsCode(() => codec.decodeHello({ v: 2, server: 's', max_frame: 1 }), Codes.BAD_REPLY, /version 2/);
  assert.equal(codec.decodeInvalidate({ deleted: 1 }, true), 1);
  assert.equal(codec.decodeInvalidate({ generation: 2n ** 60n }, false), 2n ** 60n);
  throwsCode(() => codec.decodeInvalidate({ generation: 3 }, true), Codes.BAD_REPLY);
  assert.deepEqual(codec.decodeStats(body(mp({ hits: 3, ratio: 0.5 }))), { hits: 3, ratio: 0.5 });
  throwsCode(() => codec.decodeStats({ hits: 'x' }), Codes.BAD_REPLY);
});

test('request bodies: defaults left out, tiers, LSN, bypass, parameter types', () => {
  assert.deepEqual(codec.getBody('q', undefined), { q: 'q', p: [] });
  assert.deepEqual(codec.getBody('q', [1], { tier: 'batch', lsn: '16/B374D848', bypass: true }), { q: 'q', p: [1], tier: 2, lsn: 0x16b374d848n, bypass: true });
  // integers outside [-2^31, 2^32) go out as 64-bit ints, never as floats
  const wide = codec.encodeFrame(codec.OP.GET, 1, codec.getBody('q', [2 ** 40, -(2 ** 40), 2 ** 32 - 1, -(2 ** 31)])).subarray(12);
  assert.equal(wide.toString('hex'), '82a171a171a17094cf0000010000000000d3ffffff0000000000ceffffffffd280000000');
  assert.deepEqual(codec.getBody('q', [], { tier: 1, lsn: 0n, bypass: false }), { q: 'q', p: [] });
  assert.equal(codec.getBody('q', [], { lsn: 2n ** 63n }).lsn, 2n ** 63n);
  const d = new Date(Date.UTC(2024, 0, 2, 3, 4, 5, 123));
  const p = codec.getBody('q', [null, undefined, true, 'x', 5, 1.25, 2n ** 62n, 5n, new Decimal('1.10'), Buffer.from('ab'), d]).p;
  assert.deepEqual(p.slice(0, 6), [null, null, true, 'x', 5, 1.25]);
  assert.equal(p[6], 2n ** 62n);
  assert.equal(p[7], 5); // small bigints go out in the shortest int form
  assert.equal(p[8], '1.10');
  assert.deepEqual([...p[9]], [0x61, 0x62]);
  assert.ok(p[10] instanceof ExtData && p[10].type === -1);
  // the frame encodes, and a timestamp parameter keeps its nanoseconds
  const f = codec.encodeFrame(codec.OP.GET, 9, codec.getBody('q', [new Timestamp(1n, 7)]));
  assert.equal(f.subarray(12).toString('hex'), '82a171a171a17091d7ff0000001c00000001');
});

test('request argument errors: nothing is sent, code bad_argument or too_large', () => {
  throwsCode(() => codec.getBody('', []), Codes.BAD_ARGUMENT, /query name/);
  throwsCode(() => codec.getBody('x'.repeat(65), []), Codes.BAD_ARGUMENT);
  codec.getBody('x'.repeat(64), []);
  throwsCode(() => codec.getBody(5, []), Codes.BAD_ARGUMENT);
  throwsCode(() => codec.getBody('q', new Array(17).fill(1)), Codes.BAD_ARGUMENT, /17 parameters/);
  throwsCode(() => codec.getBody('q', 'notarray'), Codes.BAD_ARGUMENT);
  throwsCode(() => codec.getBody('q', [2n ** 63n]), Codes.BAD_ARGUMENT, /int64/);
  throwsCode(() => codec.getBody('q', [{}]), Codes.BAD_ARGUMENT, /parameter 1/);
  throwsCode(() => codec.getBody('q', [[1]]), Codes.BAD_ARGUMENT);
  throwsCode(() => codec.getBody('q', [new Date(NaN)]), Codes.BAD_ARGUMENT);
  throwsCode(() => codec.getBody('q', [], { tier: 3 }), Codes.BAD_ARGUMENT, /tier/);
  throwsCode(() => codec.getBody('q', [], { lsn: -1 }), Codes.BAD_ARGUMENT);
  throwsCode(() => codec.getBody('q', [], { lsn: '1/G' }), Codes.BAD_ARGUMENT);
  throwsCode(() => codec.getBody('q', [], { bypass: 1 }), Codes.BAD_ARGUMENT);
  throwsCode(() => codec.mgetBody(new Array(257).fill({ query: 'q' })), Codes.BAD_ARGUMENT, /257/);
  throwsCode(() => codec.mgetBody([{ query: 'q' }, { query: '' }]), Codes.BAD_ARGUMENT, /item 1/);
  throwsCode(() => codec.helloBody('x'.repeat(65)), Codes.BAD_ARGUMENT);
  throwsCode(() => codec.helloBody('c', 't'.repeat(257)), Codes.BAD_ARGUMENT);
  throwsCode(() => codec.encodeFrame(codec.OP.GET, 1, codec.getBody('q', ['x'.repeat(2000)]), 1024), Codes.TOO_LARGE);
  assert.deepEqual(codec.invalidateBody('q'), { q: 'q' });
  assert.deepEqual(codec.invalidateBody('q', []), { q: 'q', p: [] });
});

test('LSN tokens: parse and format as PostgreSQL prints them', () => {
  assert.equal(parseLsn('16/B374D848'), 0x16b374d848n);
  assert.equal(parseLsn('0/0'), 0n);
  assert.equal(parseLsn('FFFFFFFF/FFFFFFFF'), 2n ** 64n - 1n);
  assert.equal(parseLsn('ab/cd'), 0xab000000cdn);
  assert.equal(formatLsn(0x16b374d848n), '16/B374D848');
  assert.equal(formatLsn(0), '0/0');
  assert.equal(formatLsn(2n ** 64n - 1n), 'FFFFFFFF/FFFFFFFF');
  for (const bad of ['', '/', '1/', '/1', '123456789/0', '1/x', ' 1/1', '1/1 ', '-1/1', 5]) throwsCode(() => parseLsn(bad), Codes.BAD_ARGUMENT);
  throwsCode(() => formatLsn(2n ** 64n), Codes.BAD_ARGUMENT);
  throwsCode(() => formatLsn(-1), Codes.BAD_ARGUMENT);
  const r = prng(7);
  for (let i = 0; i < 200; i++) {
    const v = (BigInt(Math.floor(r() * 2 ** 32)) << 32n) | BigInt(Math.floor(r() * 2 ** 32));
    assert.equal(parseLsn(formatLsn(v)), v);
  }
});

test('tokens naming their shard: parse, format, sent as "shard" after "lsn"', () => {
  const long = 'S'.repeat(64);
  for (const [text, shard, lsn] of [['16/B374D848', null, 0x16b374d848n], ['0/0', null, 0n],
    ['s1:0/16B3748', 's1', 0x16b3748n], ['eu-West_2.a:FFFFFFFF/FFFFFFFF', 'eu-West_2.a', 2n ** 64n - 1n],
    [long + ':1/2', long, (1n << 32n) | 2n]]) {
    assert.deepEqual(parseToken(text), { shard, lsn }, text);
    assert.equal(formatToken(parseToken(text)), text);
  }
  assert.equal(formatToken({ shard: 's1', lsn: 0x16b3748 }), 's1:0/16B3748');
  assert.equal(formatToken(5n), '0/5');
  for (const bad of ['', ':', ':0/1', 's1:', 's1:x/1', 's1:1/', 's1:1//2', 's1:0/0', 'a:b:0/1', 's1:0/1:2',
    's1::0/1', 's 1:0/1', 's/1:0/1', '\u00e9:0/1', ' s1:0/1', 's1:0/1 ', 's1:123456789/0', '1/2:s1',
    'n'.repeat(65) + ':1/2', 5, null]) throwsCode(() => parseToken(bad), Codes.BAD_ARGUMENT);
  for (const bad of [{ shard: '', lsn: 1 }, { shard: 's:1', lsn: 1 }, { shard: 's1', lsn: 0 }, { shard: 5, lsn: 1 },
    { shard: 'n'.repeat(65), lsn: 1 }]) throwsCode(() => formatToken(bad), Codes.BAD_ARGUMENT);
  const want = { q: 'q', p: [], lsn: 0x16b3748, shard: 's1' };
  assert.deepEqual(codec.getBody('q', [], { lsn: 's1:0/16B3748' }), want);
  assert.deepEqual(codec.getBody('q', [], { lsn: { shard: 's1', lsn: 0x16b3748n } }), want);
  assert.deepEqual(Object.keys(codec.getBody('q', [], { tier: 0, lsn: 's1:0/1', bypass: true })),
    ['q', 'p', 'tier', 'lsn', 'shard', 'bypass']);
  assert.deepEqual(codec.getBody('q', [], { lsn: '0/16B3748' }), { q: 'q', p: [], lsn: 0x16b3748 });
  assert.deepEqual(codec.getBody('q', [], { lsn: { shard: null, lsn: 5 } }), { q: 'q', p: [], lsn: 5 });
  assert.deepEqual(codec.encodeFrame(codec.OP.GET, 5, codec.getBody('user_profile', ['42'], { lsn: 's1:0/16B3748' })),
    Buffer.from('00000028010300000000000584a171ac757365725f70726f66696c65a17091a23432a36c736ece016b3748a57368617264a27331', 'hex'));
  for (const bad of ['s1:0/0', 'a:b:0/1', { shard: 's1', lsn: 0 }, { shard: 's 1', lsn: 1 }])
    throwsCode(() => codec.getBody('q', [], { lsn: bad }), Codes.BAD_ARGUMENT);
  assert.equal(Codes.NO_SHARD, 12);
});

test('Decimal: exact text, conversions', () => {
  const d = new Decimal('-12345678901234567890.50');
  assert.equal(String(d), '-12345678901234567890.50');
  assert.equal(JSON.stringify({ d }), '{"d":"-12345678901234567890.50"}');
  assert.equal(new Decimal('1.500e3').toBigInt(), 1500n);
  assert.equal(new Decimal('-42.000').toBigInt(), -42n);
  assert.throws(() => d.toBigInt(), RangeError);
  assert.equal(new Decimal('0.25').toNumber(), 0.25);
  assert.ok(new Decimal('NaN').isNaN());
  throwsCode(() => new Decimal('1.2.3'), Codes.BAD_ARGUMENT);
});

test('backoff: capped exponential with jitter in [d/2, d]', () => {
  const r = { initialDelay: 50, maxDelay: 2000 };
  assert.equal(backoffDelay(1, r, () => 0), 25);
  assert.equal(backoffDelay(1, r, () => 0.999999), 49.999975);
  assert.equal(backoffDelay(3, r, () => 0), 100);
  assert.equal(backoffDelay(10, r, () => 0), 1000); // capped at 2000
  assert.equal(backoffDelay(1000, r, () => 0.5), 1500);
  const rnd = prng(1);
  for (let n = 1; n < 40; n++) {
    const v = backoffDelay(n, r, rnd);
    const d = Math.min(2000, 50 * 2 ** (n - 1));
    assert.ok(v >= d / 2 && v <= d, `attempt ${n}: ${v}`);
  }
});

test('maxCells: a reply with more cells is refused from the array headers', () => {
  const get = (cols, rows) => mp([meta(0), [cols, rows]]);
  const d = codec.cellDepth(0x83);
  const nulls = (n, w) => Array.from({ length: n }, () => new Array(w).fill(null));
  const dec = codec.makeDecoder(1 << 26);
  const b = (x) => [dec, x, 0, x.length];
  // 8 cells + 2 for the column's [name, type] (counted at the same depth): 10
  codec.decodeBody(...b(get([['a', 2]], nulls(8, 1))), d, 10);
  throwsCode(() => codec.decodeBody(...b(get([['a', 2]], nulls(9, 1))), d, 10), Codes.BAD_REPLY, /cells/);
  throwsCode(() => codec.decodeBody(...b(get([], nulls(11, 0))), d, 10), Codes.BAD_REPLY, /cells/); // empty rows count 1
  const item = [meta(0), [[['a', 2]], nulls(4, 1)]];
  const mget = mp([item, item]);
  assert.equal(codec.cellDepth(0x84), 6);
  codec.decodeBody(...b(mget), 6, 12);
  throwsCode(() => codec.decodeBody(...b(mget), 6, 11), Codes.BAD_REPLY, /cells/); // summed over items
  // other replies are not counted; no budget means none
  codec.decodeBody(...b(mp({ a: nulls(20, 1) })), codec.cellDepth(0x87), 1);
  codec.decodeBody(...b(get([['a', 2]], nulls(50, 1))));
});

test('unknown meta values may be maps with any keys; protocol maps must have str keys', () => {
  const dec = codec.makeDecoder(1 << 20);
  const m = (hexMeta) => hex(`92 ${hexMeta} 92 91 92 a1 6e 02 90`);
  // meta {src:0, lsn:1, age:0, stale:false, x: {1: 2, 1: 3, [1]: nil}}
  const meta5 = '85 a3 73 72 63 00 a3 6c 73 6e 01 a3 61 67 65 00 a5 73 74 61 6c 65 c2';
  const odd = `a1 78 83 01 02 01 03 91 01 c0`;
  const get = m(`${meta5} ${odd}`);
  const body = (b, op) => codec.decodeBody(dec, b, 0, b.length, codec.cellDepth(op), 1e6, codec.protoMapDepth(op));
  const r = codec.decodeReply(0x83, body(get, 0x83));
  assert.equal(r.meta.src, 0);
  // the same inside an MGET item
  const mget = Buffer.concat([hex('91'), get]);
  assert.equal(codec.decodeReply(0x84, body(mget, 0x84))[0].meta.lsn, 1n);
  // a non-str key or a duplicate key in the meta map itself is refused
  throwsCode(() => body(m('85 a3 73 72 63 00 a3 6c 73 6e 01 a3 61 67 65 00 a5 73 74 61 6c 65 c2 01 02'), 0x83), Codes.BAD_REPLY, /key/);
  throwsCode(() => body(m('85 a3 73 72 63 00 a3 6c 73 6e 01 a3 61 67 65 00 a5 73 74 61 6c 65 c2 a3 73 72 63 00'), 0x83), Codes.BAD_REPLY, /duplicate/);
});

test('the PING reply body is nil; {} is refused', () => {
  assert.equal(codec.decodeReply(0x82, null), undefined);
  throwsCode(() => codec.decodeReply(0x82, {}), Codes.BAD_REPLY, /PING/);
});

// ---- SHOW and ADMIN (PROTOCOL.md 3.8, 3.9) ------------------------------------------------

/** A SHOW/ADMIN reply body through the checks the connection runs, then its decoder. */
function rowsReply(op, buf, decode, maxCells = Infinity) {
  const v = codec.decodeBody(decoder, buf, 0, buf.length, codec.cellDepth(op), maxCells, codec.protoMapDepth(op));
  return decode(v);
}

test('SHOW and ADMIN requests', () => {
  assert.equal(codec.encodeFrame(codec.OP.SHOW, 1, codec.showBody('queries')).toString('hex'),
    '0000000e010800000000000181a477686174a771756572696573');
  assert.deepEqual(codec.adminBody('pause', 'q1'), { op: 'pause', q: 'q1' });
  assert.deepEqual(codec.adminBody('reload'), { op: 'reload' });
  assert.equal(codec.encodeFrame(codec.OP.ADMIN, 2, codec.adminBody('reload'))[5], 0x09);
  for (const f of [() => codec.showBody(''), () => codec.showBody('v'.repeat(65)), () => codec.showBody(7),
    () => codec.adminBody(''), () => codec.adminBody('pause', ''), () => codec.adminBody('pause', 'q'.repeat(65))])
    throwsCode(f, Codes.BAD_ARGUMENT);
  codec.showBody('v'.repeat(64));
});

test('SHOW rows: scalars, unknown columns kept, union of columns in first-seen order', () => {
  const rows = [
    { name: 'q1', params: 'id:int8', generation: null, hits: 3, pending_bump: false, ratio: 0.5, new_column: 'kept' },
    { name: 'q2', later: 2n ** 62n, small: -(2n ** 63n) },
    {},
  ];
  const got = rowsReply(0x88, mp(rows), (v) => codec.decodeRows(v));
  assert.deepEqual(got, [rows[0], { name: 'q2', later: 2n ** 62n, small: -(2n ** 63n) }, {}]);
  assert.deepEqual(codec.rowColumns(got), ['name', 'params', 'generation', 'hits', 'pending_bump', 'ratio', 'new_column', 'later', 'small']);
  assert.deepEqual(rowsReply(0x88, mp([{ n: 2n ** 40n }]), (v) => codec.decodeRows(v)), [{ n: 2 ** 40 }]);
  assert.deepEqual(rowsReply(0x89, mp([{ reload: 'applied', queries: 2 }]), codec.decodeAdmin), { reload: 'applied', queries: 2 });
  assert.deepEqual(codec.decodeReply(0x88, [{ a: 1 }]), [{ a: 1 }]);
  assert.deepEqual(codec.decodeReply(0x89, [{ a: 1 }, { a: 2 }]), [{ a: 1 }, { a: 2 }]);
  assert.deepEqual(rowsReply(0x88, mp([{ ['k'.repeat(128)]: 1 }]), (v) => codec.decodeRows(v)), [{ ['k'.repeat(128)]: 1 }]);
});

test('SHOW/ADMIN: every malformed reply is bad_reply', () => {
  const rows = (v) => codec.decodeRows(v);
  const bad = [
    [0x88, mp({ name: 'q' }), rows], // not an array
    [0x88, mp(null), rows],
    [0x88, mp([['q', 1]]), rows], // a row that is not a map
    [0x88, mp([{ a: [1] }]), rows], // not a scalar
    [0x88, mp([{ a: { b: 1 } }]), rows],
    [0x88, mp([{ a: Buffer.from('x') }]), rows],
    [0x88, mp([{ a: ts96(1, 0) }]), rows],
    [0x88, mp([{ a: 2n ** 63n }]), rows], // beyond int64
    [0x88, mp([{ ['k'.repeat(129)]: 1 }]), rows], // a column name over 128 bytes
    [0x88, hex('91 81 01 02'), rows], // a non-str column name
    [0x88, hex('91 82 a161 01 a161 02'), rows], // a column twice
    [0x88, hex('91 81 a161 01 00'), rows], // trailing bytes
    [0x89, mp([]), codec.decodeAdmin], // ADMIN: exactly one row
    [0x89, mp([{ a: 1 }, { a: 2 }]), codec.decodeAdmin],
    [0x89, mp({ query: 'q' }), codec.decodeAdmin],
  ];
  for (const [op, buf, dec] of bad) throwsCode(() => rowsReply(op, buf, dec), Codes.BAD_REPLY);
  // rows count against maxCells: 2 per column (its key and value)
  const fifty = mp(Array.from({ length: 50 }, (_, i) => ({ a: i })));
  assert.equal(rowsReply(0x88, fifty, rows, 100).length, 50);
  throwsCode(() => rowsReply(0x88, fifty, rows, 99), Codes.BAD_REPLY, /maxCells/);
});
