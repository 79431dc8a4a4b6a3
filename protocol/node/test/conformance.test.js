'use strict';
// Runs every case of protocol/conformance/frames.json (see its README.md).
//  reply cases: the client's frame reader and reply decoding (valid frames decode to the
//    case's meaning; refused frames fail with the client's protocol error, bad_reply);
//  request cases: the client's encoder (valid frames are rebuilt with the client's API and
//    must encode to the same bytes, or the same structure where the case spells out a
//    default); bad_params and protocol cases must be refused by the API or encode
//    differently (the client never sends them); truncated ones need more bytes.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const { Decoder, ExtensionCodec, ExtData } = require('@msgpack/msgpack');
const codec = require('../lib/codec');
const { CacheError, Codes, Decimal, Timestamp } = require('../lib');

const FILE = process.env.CS_CONFORMANCE || path.join(__dirname, '..', '..', 'conformance', 'frames.json');
const doc = JSON.parse(fs.readFileSync(FILE, 'utf8'));
assert.equal(doc.format, 1, `unsupported conformance format ${doc.format}`);

// Expected error codes of the file -> the client's codes. A reply the client must refuse is
// its own protocol error, bad_reply (the server's protocol code 7 is what the server sends).
const REPLY_CODE = { 7: Codes.BAD_REPLY };
// Cases this client does not follow, with why. Each must still disagree (so the list shrinks).
const KNOWN_DISAGREEMENTS = new Map([
  ['HELLO v above 1 (a newer client)', 'this client speaks version 1 only: it cannot build a HELLO with v 7'],
]);

// ---- JSON form (README "Values in JSON") -> JS values for the client's API ----------------
function fromJson(v) {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(fromJson);
  const keys = Object.keys(v);
  if (keys.length === 1) {
    if (keys[0] === 'int') return BigInt(v.int);
    if (keys[0] === 'float') return v.float;
    if (keys[0] === 'bin') return Buffer.from(v.bin, 'hex');
    if (keys[0] === 'ts') return new Timestamp(BigInt(typeof v.ts.sec === 'object' ? v.ts.sec.int : v.ts.sec), v.ts.nsec);
  }
  if (keys.length === 2 && 'ext' in v && 'hex' in v) return new ExtData(v.ext, Buffer.from(v.hex, 'hex'));
  throw new Error(`unexpected JSON value ${JSON.stringify(v)}`);
}

// A msgpack decoder that keeps every ext as ExtData (to read request bodies back).
const rawExt = new ExtensionCodec();
rawExt.register({ type: -1, encode: () => null, decode: (data) => new ExtData(-1, data) });
const rawDecoder = new Decoder({ extensionCodec: rawExt, useBigInt64: true });

// ---- guided comparison of a decoded value with the expected JSON form ----------------------
function same(actual, exp, where) {
  const fail = (why) => assert.fail(`${where}: ${why}: got ${show(actual)}, want ${JSON.stringify(exp)}`);
  if (exp === null) return actual === null || fail('not null');
  if (typeof exp === 'boolean' || typeof exp === 'string') {
    if (actual instanceof Decimal) return actual.value === exp || fail('decimal differs');
    return actual === exp || fail('differs');
  }
  if (typeof exp === 'number') {
    if (typeof actual === 'bigint') return actual === BigInt(exp) || fail('differs');
    return actual === exp || fail('differs');
  }
  if (Array.isArray(exp)) {
    if (!Array.isArray(actual) || actual.length !== exp.length) fail('array length');
    exp.forEach((e, i) => same(actual[i], e, `${where}[${i}]`));
    return true;
  }
  const keys = Object.keys(exp);
  if (keys.length === 1 && keys[0] === 'int') return (typeof actual === 'bigint' && actual === BigInt(exp.int)) || fail('int differs');
  if (keys.length === 1 && keys[0] === 'float') return (typeof actual === 'number' && Object.is(actual, exp.float)) || fail('float differs');
  if (keys.length === 1 && keys[0] === 'bin') return (actual instanceof Uint8Array && Buffer.from(actual).toString('hex') === exp.bin) || fail('bin differs');
  if (keys.length === 1 && keys[0] === 'ts') {
    const sec = BigInt(typeof exp.ts.sec === 'object' ? exp.ts.sec.int : exp.ts.sec);
    if (exp.ts.nsec === 0 && sec === (1n << 63n) - 1n) return actual === Infinity || fail('not +infinity');
    if (exp.ts.nsec === 0 && sec === -(1n << 63n)) return actual === -Infinity || fail('not -infinity');
    return (actual instanceof Timestamp && actual.seconds === sec && actual.nanoseconds === exp.ts.nsec) || fail('timestamp differs');
  }
  if (actual === null || typeof actual !== 'object') fail('not a map');
  for (const k of keys) same(actual[k], exp[k], `${where}.${k}`);
  if (Object.keys(actual).length !== keys.length) fail('extra keys');
  return true;
}
function show(v) {
  return require('node:util').inspect(v, { depth: 6, breakLength: Infinity }).slice(0, 400);
}

// A Result against the expected [meta, [cols, rows]]: meta's known keys (others are ignored,
// as the protocol says), columns, and every cell typed by its column.
function sameResult(r, exp, where) {
  assert.ok(r instanceof codec.Result, `${where}: not a Result: ${show(r)}`);
  const [m, [cols, rows]] = exp;
  same(r.meta.src, m.src, `${where}.meta.src`);
  assert.equal(r.meta.source, ['cache', 'replica', 'primary'][m.src]);
  same(r.meta.lsn, typeof m.lsn === 'object' ? m.lsn : { int: String(m.lsn) }, `${where}.meta.lsn`);
  same(r.meta.age, m.age, `${where}.meta.age`);
  same(r.meta.stale, m.stale, `${where}.meta.stale`);
  assert.equal(r.meta.stored, m.stored, `${where}.meta.stored`);
  assert.deepEqual(r.columns.map((c) => [c.name, c.type]), cols, `${where}: columns`);
  r.columns.forEach((c) => assert.equal(c.typeName, codec.TYPE_NAMES[c.type] || 'other'));
  assert.equal(r.rows.length, rows.length, `${where}: row count`);
  rows.forEach((row, i) =>
    row.forEach((cell, j) => {
      const t = cols[j][1];
      let want = cell;
      // the typed value of a json column is the parsed text (checked separately in raw mode)
      if (t === 9 && typeof cell === 'string') return assert.deepEqual(r.rows[i][j], JSON.parse(cell));
      if (t === 2 && typeof cell === 'number') want = cell; // a Number (auto mode keeps safe ints)
      same(r.rows[i][j], want, `${where}.rows[${i}][${j}]`);
    })
  );
}

function sameError(e, exp, where) {
  assert.ok(e instanceof CacheError && e.fromServer, `${where}: not a server error: ${show(e)}`);
  const known = exp.code >= 1 && exp.code <= 10;
  assert.equal(e.code, known ? exp.code : Codes.INTERNAL, `${where}: code`);
  assert.equal(e.wireCode, exp.code);
  assert.equal(e.serverMessage, exp.msg);
}

function checkReply(opcode, value, body, where) {
  switch (opcode) {
    case 0x81:
      return assert.deepEqual(value, { version: body.v, server: body.server, maxFrame: body.max_frame });
    case 0x82:
      return assert.equal(value, undefined);
    case 0x83:
    case 0x85:
      return sameResult(value, body, where);
    case 0x84:
      assert.equal(value.length, body.length);
      return body.forEach((it, i) =>
        Array.isArray(it) ? sameResult(value[i], it, `${where}[${i}]`) : sameError(value[i], { code: it.code ?? it.err, msg: it.msg }, `${where}[${i}]`)
      );
    case 0x86:
    case 0x87:
      return same(value, body, where);
    case 0xff:
      return sameError(value, body, where);
    default:
      return assert.fail(`${where}: unexpected opcode ${opcode}`);
  }
}

const decoder = codec.makeDecoder(codec.LIMITS.replyBody);
function decodeFrameBody(f, opt) {
  return codec.decodeReply(f.opcode, codec.decodeBody(decoder, f.body, 0, f.body.length, codec.cellDepth(f.opcode), 1000000, codec.protoMapDepth(f.opcode)), opt);
}
function refusedWith(fn, code, where) {
  assert.throws(fn, (e) => {
    assert.ok(e instanceof CacheError, `${where}: not a CacheError: ${e && e.stack}`);
    assert.equal(e.code, code, `${where}: ${e.message}`);
    return true;
  }, `${where}: accepted`);
}

// ---- requests: rebuild with the client's API ---------------------------------------------
function getOpts(b) {
  const lsn = b.lsn === undefined ? 0n : BigInt(fromJson(b.lsn));
  if (b.shard !== undefined) {
    // a token naming its shard: the API takes {shard, lsn}, checked when encoding
    if (typeof b.shard !== 'string') throw new Error('shard not a string');
    return { tier: b.tier, lsn: { shard: b.shard, lsn }, bypass: b.bypass };
  }
  return { tier: b.tier, lsn: b.lsn === undefined ? undefined : fromJson(b.lsn), bypass: b.bypass };
}
function buildRequest(opcode, b) {
  switch (opcode) {
    case 1:
      if (b.v !== 1) throw new Error('not version 1');
      return codec.helloBody(b.client, b.token);
    case 2:
    case 7:
      return null;
    case 3:
    case 5:
      if (b === null || typeof b !== 'object' || Array.isArray(b)) throw new Error('not a map');
      return codec.getBody(b.q, fromJson(b.p), getOpts(b));
    case 4:
      if (!Array.isArray(b)) throw new Error('not an array');
      return codec.mgetBody(b.map((it) => ({ query: it.q, params: fromJson(it.p), ...getOpts(it) })));
    case 6:
      return codec.invalidateBody(b.q, b.p === undefined ? undefined : fromJson(b.p));
    default:
      throw new Error(`opcode ${opcode}`);
  }
}
// fills the defaults of GET-like maps (README: "a decoder that fills defaults compares ...")
function withDefaults(opcode, b) {
  const fill = (m) => ({
    q: m.q, p: m.p ?? [], tier: m.tier ?? 1, lsn: m.lsn ?? 0, bypass: m.bypass ?? false,
    ...(m.shard === undefined ? {} : { shard: m.shard }), // no default: compared when present
  });
  if (opcode === 3 || opcode === 5) return fill(b);
  if (opcode === 4) return b.map(fill);
  if (opcode === 2 || opcode === 7) return null; // nil and {} both mean "no arguments"
  return b;
}
// the JSON form of a decoded request body, for comparing structures
function toJson(v) {
  if (v === null || typeof v === 'boolean' || typeof v === 'string') return v;
  if (typeof v === 'number') return Number.isInteger(v) ? v : { float: v };
  if (typeof v === 'bigint') return v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : { int: String(v) };
  if (v instanceof ExtData) {
    const d = Buffer.from(v.data);
    if (v.type === -1) {
      const t = codec.decodeReply(0x83, [{ src: 0, lsn: 0, age: 0, stale: false }, [[['t', 7]], [[tsOf(d)]]]]).rows[0][0];
      return { ts: { sec: Number(t.seconds), nsec: t.nanoseconds } };
    }
    return { ext: v.type, hex: d.toString('hex') };
  }
  if (v instanceof Uint8Array) return { bin: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(toJson);
  return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
}
function tsOf(d) {
  return codec.decodeBody(decoder, Buffer.concat([Buffer.from([0xc7, d.length, 0xff]), d]), 0, d.length + 3);
}
function sameKeysDeep(a, b) {
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameKeysDeep(x, b[i]));
  if (a && typeof a === 'object' && !(a instanceof Uint8Array) && !(a instanceof ExtData)) {
    if (!b || typeof b !== 'object') return false;
    const ka = Object.keys(a);
    return ka.join() === Object.keys(b).join() && ka.every((k) => sameKeysDeep(a[k], b[k]));
  }
  return true;
}

const replyCases = doc.cases.filter((c) => c.dir === 'reply');
const requestCases = doc.cases.filter((c) => c.dir === 'request');

test('the conformance file has cases of both directions', () => {
  assert.ok(replyCases.length >= 30 && requestCases.length >= 30, `${replyCases.length} reply, ${requestCases.length} request cases`);
});

for (const c of replyCases) {
  test(`reply: ${c.name}`, () => {
    const bytes = Buffer.from(c.hex, 'hex');
    if (c.truncated) {
      assert.deepEqual(new codec.FrameReader().push(bytes), [], 'a cut-off frame needs more bytes');
      if (bytes.length >= 12)
        refusedWith(() => decodeFrameBody({ opcode: bytes[5], body: bytes.subarray(12) }, {}), REPLY_CODE[c.error.code], c.name);
      return;
    }
    if (c.frame) {
      const r = new codec.FrameReader();
      const frames = r.push(bytes);
      assert.equal(frames.length, 1);
      assert.equal(r.pending, 0);
      const [f] = frames;
      assert.equal(f.opcode, c.frame.opcode);
      assert.equal(f.id, c.frame.id);
      checkReply(f.opcode, decodeFrameBody(f, { json: 'parse' }), c.frame.body, c.name);
      // json "raw" mode hands the text over unchanged
      if (f.opcode === 0x83) {
        const raw = decodeFrameBody(f, { json: 'raw' });
        raw.columns.forEach((col, j) => {
          if (col.type === 9) raw.rows.forEach((row, i) => assert.equal(row[j], c.frame.body[1][1][i][j]));
        });
      }
      return;
    }
    const want = REPLY_CODE[c.error.code];
    assert.ok(want, `no client code for ${c.error.code}`);
    refusedWith(() => {
      const frames = new codec.FrameReader().push(bytes);
      assert.equal(frames.length, 1, 'want one frame (or a refused header)');
      decodeFrameBody(frames[0], {});
    }, want, c.name);
  });
}

for (const c of requestCases) {
  test(`request: ${c.name}`, () => {
    const bytes = Buffer.from(c.hex, 'hex');
    const known = KNOWN_DISAGREEMENTS.get(c.name);
    if (c.truncated) {
      assert.deepEqual(new codec.FrameReader(codec.LIMITS.requestBody).push(bytes), []);
      return;
    }
    if (c.frame) {
      const { opcode, id, body } = c.frame;
      let built;
      try {
        built = codec.encodeFrame(opcode, id, buildRequest(opcode, body));
      } catch (e) {
        if (known) return; // still disagrees
        throw e;
      }
      assert.ok(!known, `${c.name} is listed as a known disagreement but now agrees: remove it`);
      const mine = rawDecoder.decode(built.subarray(12));
      assert.equal(built.readUInt32BE(0), built.length - 12);
      assert.equal(built[5], opcode);
      assert.equal(built.readUInt32BE(8), id);
      assert.deepEqual(toJson(withDefaults(opcode, mine)), withDefaults(opcode, body), 'structure');
      if (sameKeysDeep(mine, body) && !(opcode === 2 || opcode === 7) ) assert.equal(built.toString('hex'), c.hex, 'canonical bytes');
      else if ((opcode === 2 || opcode === 7) && body === null) assert.equal(built.toString('hex'), c.hex, 'canonical bytes');
      return;
    }
    // A frame the server refuses: the client never sends it. Where the body is readable
    // msgpack of a known request opcode, the client's API must refuse to build it, or build
    // other bytes.
    if (bytes.length < 12 || bytes.readUInt32BE(0) !== bytes.length - 12 || bytes[4] !== 1 || bytes[6] || bytes[7]) return;
    let body;
    try {
      body = rawDecoder.decode(bytes.subarray(12));
    } catch (e) {
      return; // not msgpack (or hostile): an encoder cannot produce it
    }
    const opcode = bytes[5];
    let built;
    try {
      built = codec.encodeFrame(opcode, bytes.readUInt32BE(8), buildRequest(opcode, fromRaw(body)));
    } catch (e) {
      if (e instanceof CacheError) assert.equal(e.code, Codes.BAD_ARGUMENT, `${c.name}: ${e.message}`);
      return; // refused by the API
    }
    assert.notEqual(built.toString('hex'), c.hex, `${c.name}: the client encodes a frame the server refuses`);
  });
}

// A raw decoded request body -> the JSON-ish form buildRequest takes (ExtData kept as is).
function fromRaw(v) {
  if (v instanceof ExtData) return { ext: v.type, hex: Buffer.from(v.data).toString('hex') };
  if (typeof v === 'bigint') return { int: String(v) };
  if (v instanceof Uint8Array) return { bin: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(fromRaw);
  if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, fromRaw(x)]));
  if (typeof v === 'number' && !Number.isInteger(v)) return { float: v };
  return v;
}
