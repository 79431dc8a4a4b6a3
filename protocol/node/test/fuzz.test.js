'use strict';
// Fuzz-style test: seeded random truncations and mutations of valid reply frames, fed
// through the whole decode path (frame reader, structure check, msgpack, typed decode).
// The only error allowed out is the client's own CacheError. Bounded: a fixed count.
const test = require('node:test');
const assert = require('node:assert/strict');
const codec = require('../lib/codec');
const { CacheError } = require('../lib');
const { mp, frame, ts96, meta, prng } = require('./helpers');

const SEED = Number(process.env.CS_FUZZ_SEED || 20261130);
const ROUNDS = Number(process.env.CS_FUZZ_ROUNDS || 6000);

const res = [meta(2, { stored: false }), [[['id', 2], ['name', 4], ['at', 7], ['raw', 5], ['n', 8], ['j', 9]],
  [[1, 'a', ts96(1, 2), Buffer.from([1, 2]), '1.5', '{"a":1}'], [2n ** 62n, null, null, null, null, '[1,2]']]]];
const CORPUS = [
  frame(0x83, 1, res),
  frame(0x85, 2, res),
  frame(0x84, 3, [res, { err: 1, msg: 'no such query' }, { code: 4, msg: 'down' }]),
  frame(0x81, 4, { v: 1, server: 'cachesvc 0.9', max_frame: 1048576 }),
  frame(0x82, 5, null),
  frame(0x86, 6, { deleted: 1 }),
  frame(0x86, 7, { generation: 12 }),
  frame(0x87, 8, { hits: 10, misses: 2, hit_ratio: 0.83 }),
  frame(0xff, 9, { code: 7, msg: 'bad frame' }),
  frame(0x88, 10, [{ name: 'q', hits: 3, generation: null, ratio: 0.5, paused: false }, {}]),
  frame(0x89, 11, [{ reload: 'refused', error: 'bad sql' }]),
];
const HOSTILE = [
  [0xdd, 0xff, 0xff, 0xff, 0xff], // array32 of 4G
  [0xdf, 0xff, 0xff, 0xff, 0xff], // map32
  [0xdb, 0xff, 0xff, 0xff, 0xff], // str32
  [0xc6, 0xff, 0xff, 0xff, 0xff], // bin32
  [0xc9, 0xff, 0xff, 0xff, 0xff, 0xff], // ext32
  [0xc1],
  new Array(12).fill(0x91), // nesting
  [0xd7, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0], // timestamp64 with nsec > 999999999
  [0xa9, 0x5f, 0x5f, 0x70, 0x72, 0x6f, 0x74, 0x6f, 0x5f, 0x5f], // "__proto__"
];

function decodeByOpcode(f, decoder) {
  const b = codec.decodeBody(decoder, f.body, 0, f.body.length);
  switch (f.opcode) {
    case 0x81: return codec.decodeHello(b);
    case 0x83: case 0x85: return codec.decodeResult(b, { json: 'parse', int64: 'auto' });
    case 0x84: return codec.decodeMget(b, 3, {});
    case 0x86: return codec.decodeInvalidate(b, f.id === 6);
    case 0x87: return codec.decodeStats(b);
    case 0x88: return codec.decodeRows(b);
    case 0x89: return codec.decodeAdmin(b);
    case 0xff: return codec.errorFromBody(b);
    default: return b;
  }
}

function mutate(r, src) {
  const b = Buffer.from(src);
  const pick = (n) => Math.floor(r() * n);
  const kind = pick(6);
  let out;
  switch (kind) {
    case 0: // truncate the body, header length fixed up: a short body
      out = b.subarray(0, 12 + pick(b.length - 12));
      break;
    case 1: // flip bits
      out = b;
      for (let i = 0, n = 1 + pick(4); i < n; i++) out[12 + pick(b.length - 12)] ^= 1 << pick(8);
      break;
    case 2: // random bytes
      out = b;
      for (let i = 0, n = 1 + pick(4); i < n; i++) out[12 + pick(b.length - 12)] = pick(256);
      break;
    case 3: { // insert a hostile sequence
      const h = HOSTILE[pick(HOSTILE.length)];
      const at = 12 + pick(b.length - 12);
      out = Buffer.concat([b.subarray(0, at), Buffer.from(h), b.subarray(at)]);
      break;
    }
    case 4: { // overwrite with a hostile sequence
      const h = HOSTILE[pick(HOSTILE.length)];
      out = b;
      Buffer.from(h).copy(out, 12 + pick(b.length - 12));
      break;
    }
    default: // mutate the header itself (version, flags, opcode, length)
      out = b;
      out[pick(12)] = pick(256);
      return { bytes: out, fixLen: false };
  }
  return { bytes: out, fixLen: true };
}

test(`fuzz: ${ROUNDS} mutated frames (seed ${SEED}) raise only CacheError`, () => {
  const r = prng(SEED);
  const decoder = codec.makeDecoder(1 << 20);
  let decoded = 0;
  let refused = 0;
  let incomplete = 0;
  for (let i = 0; i < ROUNDS; i++) {
    const src = CORPUS[Math.floor(r() * CORPUS.length)];
    const { bytes, fixLen } = mutate(r, src);
    if (fixLen) bytes.writeUInt32BE(bytes.length - 12, 0);
    // deliver in random chunks
    const reader = new codec.FrameReader(1 << 20);
    try {
      let pos = 0;
      let frames = [];
      while (pos < bytes.length) {
        const n = 1 + Math.floor(r() * 40);
        frames = frames.concat(reader.push(bytes.subarray(pos, pos + n)));
        pos += n;
      }
      if (frames.length === 0) {
        incomplete++;
        continue;
      }
      for (const f of frames) decodeByOpcode(f, decoder);
      decoded++;
    } catch (e) {
      if (!(e instanceof CacheError))
        assert.fail(`round ${i} (seed ${SEED}): ${e && e.stack}\nframe: ${bytes.toString('hex')}`);
      refused++;
    }
  }
  // the test must exercise both outcomes (and frames cut short)
  assert.ok(decoded > ROUNDS / 20, `only ${decoded} frames decoded`);
  assert.ok(refused > ROUNDS / 4, `only ${refused} frames refused`);
  assert.ok(incomplete > 0);
});

test('fuzz: every truncation of every corpus frame is incomplete or refused', () => {
  const decoder = codec.makeDecoder(1 << 20);
  for (const src of CORPUS) {
    for (let n = 0; n < src.length; n++) {
      // a stream cut short: no frame yet
      assert.equal(new codec.FrameReader().push(src.subarray(0, n)).length, 0);
      if (n <= 12) continue;
      // a body cut short with its length fixed up: refused
      const b = Buffer.from(src.subarray(0, n));
      b.writeUInt32BE(n - 12, 0);
      const [f] = new codec.FrameReader().push(b);
      assert.throws(() => decodeByOpcode(f, decoder), CacheError, `${src.toString('hex')} cut at ${n}`);
    }
    assert.doesNotThrow(() => decodeByOpcode(new codec.FrameReader().push(src)[0], decoder));
  }
});
