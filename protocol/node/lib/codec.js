'use strict';
// The wire codec (PROTOCOL.md): frames, request bodies, and reply bodies turned into typed
// values. Pure: no sockets. Every hard limit of section 7 is checked on the raw bytes
// (checkBody) before @msgpack/msgpack decodes anything, so a hostile frame cannot make the
// decoder allocate more than the frame's own size; the decoder's own limits are set too.
const { Encoder, Decoder, ExtensionCodec, ExtData } = require('@msgpack/msgpack');
const { CacheError, Codes, serverError, badReply, badArgument } = require('./errors');
const { Decimal, Timestamp, toToken } = require('./types');

const VERSION = 1;
const HEADER = 12;
const OP = Object.freeze({
  HELLO: 0x01,
  PING: 0x02,
  GET: 0x03,
  MGET: 0x04,
  REFRESH: 0x05,
  INVALIDATE: 0x06,
  STATS: 0x07,
  SHOW: 0x08,
  ADMIN: 0x09,
  ERROR: 0xff,
});
const OP_NAMES = { 1: 'HELLO', 2: 'PING', 3: 'GET', 4: 'MGET', 5: 'REFRESH', 6: 'INVALIDATE', 7: 'STATS', 8: 'SHOW', 9: 'ADMIN' };

const LIMITS = Object.freeze({
  requestBody: 1048576, // default; the server announces its own in HELLO max_frame
  replyBody: 64 * 1048576, // default; configurable per client (maxReply)
  depth: 8, // the body is depth 1
  params: 16,
  queryName: 64,
  clientName: 64,
  token: 256,
  mgetItems: 256,
  errorMessage: 1024,
  columns: 1664,
  columnName: 64,
  adminName: 64, // a SHOW view name, an ADMIN op name
  rowKey: 128, // a SHOW/ADMIN row's column name
  u32: 0xffffffff,
});

const TYPE_NAMES = Object.freeze({
  1: 'bool',
  2: 'int',
  3: 'float',
  4: 'text',
  5: 'bytea',
  6: 'timestamp',
  7: 'timestamptz',
  8: 'numeric',
  9: 'json',
  10: 'other',
});
const SOURCES = ['cache', 'replica', 'primary'];
const TIERS = Object.freeze({ critical: 0, default: 1, batch: 2 });

// ---- msgpack structure check (section 7), on the raw bytes --------------------------------

/**
 * Checks that buf[start, end) holds exactly one msgpack object within the hard limits:
 * nesting depth <= 8 (the body is depth 1), every array/map count <= bytes remaining (a map
 * 2 x count), every str/bin/ext length <= bytes remaining, no reserved byte 0xc1, nothing
 * left over. Allocates nothing. Throws a CacheError (bad_reply) naming the first violation.
 */
function checkBody(buf, start, end, cellDepth = 0, maxCells = Infinity, protoDepth = Infinity) {
  if (end <= start) throw badReply('empty body');
  if (!Buffer.isBuffer(buf)) buf = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  cells.depth = cellDepth;
  cells.max = maxCells;
  cells.n = 0;
  cells.protoDepth = protoDepth;
  const p = skip(buf, start, end, 1);
  if (p !== end) throw badReply(`${end - p} bytes after the body's object`);
}

// The cell budget of the walk in progress: the elements of the containers whose elements
// sit at `depth` (a result's cells; an empty row counts 1) may number at most `max`.
// Maps at depth <= protoDepth are protocol maps (str keys, each once); deeper ones sit in
// values a receiver ignores (unknown meta or HELLO keys) and may have any keys.
const cells = { depth: 0, max: Infinity, n: 0, protoDepth: Infinity };
function countCells(depth, n) {
  if (depth + 1 !== cells.depth) return;
  cells.n += n || 1;
  if (cells.n > cells.max) throw badReply(`reply of more than ${cells.max} cells (maxCells)`);
}

// The depth of a result's cells in a reply body (the body is depth 1), by reply opcode:
// GET/REFRESH [meta, [cols, [row...]]] -> 5; MGET [[meta, [cols, [row...]]]...] -> 6;
// SHOW/ADMIN [{column: value...}...] -> 3 (a row's keys and values, 2 per column).
function cellDepth(opcode) {
  if (opcode === (0x80 | OP.GET) || opcode === (0x80 | OP.REFRESH)) return 5;
  if (opcode === (0x80 | OP.MGET)) return 6;
  if (opcode === (0x80 | OP.SHOW) || opcode === (0x80 | OP.ADMIN)) return 3;
  return 0;
}

// The depth of the deepest protocol map of a reply body, by opcode: the meta map of a
// GET/REFRESH reply (2), of an MGET item (3), a SHOW/ADMIN row (2); otherwise the body's
// own map (1).
function protoMapDepth(opcode) {
  if (opcode === (0x80 | OP.GET) || opcode === (0x80 | OP.REFRESH)) return 2;
  if (opcode === (0x80 | OP.MGET)) return 3;
  if (opcode === (0x80 | OP.SHOW) || opcode === (0x80 | OP.ADMIN)) return 2;
  return 1;
}

function be16(b, p) {
  return (b[p] << 8) | b[p + 1];
}
function be32(b, p) {
  return b[p] * 0x1000000 + ((b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]);
}

// Byte length of the fixed argument after a first byte 0xc0..0xdf (-1: none / special).
const ARGLEN = new Int8Array(0x20).fill(-1);
[
  [0x04, 1], [0x05, 2], [0x06, 4], // bin 8/16/32
  [0x07, 1], [0x08, 2], [0x09, 4], // ext 8/16/32
  [0x0a, 4], [0x0b, 8], // float 32/64
  [0x0c, 1], [0x0d, 2], [0x0e, 4], [0x0f, 8], // uint
  [0x10, 1], [0x11, 2], [0x12, 4], [0x13, 8], // int
  [0x19, 1], [0x1a, 2], [0x1b, 4], // str
  [0x1c, 2], [0x1d, 4], // array
  [0x1e, 2], [0x1f, 4], // map
].forEach(([i, n]) => (ARGLEN[i] = n));

function skip(b, p, end, depth) {
  if (depth > LIMITS.depth) throw badReply(`nesting deeper than ${LIMITS.depth}`);
  if (p >= end) throw badReply('truncated body');
  const c = b[p++];
  if (c <= 0x7f || c >= 0xe0) return p;
  if (c <= 0x8f) return entries(b, p, end, depth, c & 0x0f);
  if (c <= 0x9f) return children(b, p, end, depth, c & 0x0f);
  if (c <= 0xbf) return payload(p, end, c & 0x1f);
  if (c === 0xc0 || c === 0xc2 || c === 0xc3) return p;
  if (c === 0xc1) throw badReply('reserved byte 0xc1');
  if (c >= 0xd4 && c <= 0xd8) return payload(p, end, 1 + (1 << (c - 0xd4))); // fixext: type + data
  const n = ARGLEN[c - 0xc0];
  if (end - p < n) throw badReply('truncated body');
  const len = n === 1 ? b[p] : n === 2 ? be16(b, p) : n === 4 ? be32(b, p) : 0;
  p += n;
  switch (c) {
    case 0xc4: case 0xc5: case 0xc6: // bin
    case 0xd9: case 0xda: case 0xdb: // str
      return payload(p, end, len);
    case 0xc7: case 0xc8: case 0xc9: // ext: type byte, then data
      return payload(p, end, len + 1);
    case 0xdc: case 0xdd:
      return children(b, p, end, depth, len);
    case 0xde: case 0xdf:
      return entries(b, p, end, depth, len);
    default: // numbers: the argument was the value
      return p;
  }
}

function payload(p, end, len) {
  if (len > end - p) throw badReply(`length ${len} over the ${end - p} bytes left`);
  return p + len;
}

// A map of n entries: keys are str (every map of the protocol has str keys) and appear at
// most once (a JS object could not tell duplicates apart).
function entries(b, p, end, depth, n) {
  if (2 * n > end - p) throw badReply(`count ${2 * n} over the ${end - p} bytes left`);
  countCells(depth, 2 * n);
  if (depth > cells.protoDepth) {
    for (let i = 0; i < 2 * n; i++) p = skip(b, p, end, depth + 1);
    return p;
  }
  const seen = n > 1 ? new Set() : null;
  for (let i = 0; i < n; i++) {
    const k = p;
    if (k >= end) throw badReply('truncated body');
    const c = b[k];
    let start;
    if (c >= 0xa0 && c <= 0xbf) start = k + 1;
    else if (c === 0xd9) start = k + 2;
    else if (c === 0xda) start = k + 3;
    else if (c === 0xdb) start = k + 5;
    else throw badReply('a map key that is not a str');
    p = skip(b, p, end, depth + 1);
    if (seen) {
      const key = b.toString('latin1', start, p);
      if (seen.has(key)) throw badReply(`duplicate map key ${JSON.stringify(b.toString('utf8', start, p).slice(0, 64))}`);
      seen.add(key);
    }
    p = skip(b, p, end, depth + 1);
  }
  return p;
}

function children(b, p, end, depth, n) {
  if (n > end - p) throw badReply(`count ${n} over the ${end - p} bytes left`);
  countCells(depth, n);
  for (let i = 0; i < n; i++) p = skip(b, p, end, depth + 1);
  return p;
}

// ---- msgpack decoding ------------------------------------------------------------------

/** A msgpack timestamp (ext -1) as decoded: seconds (BigInt) and nanoseconds. */
class RawTimestamp {
  constructor(sec, nsec) {
    this.sec = sec;
    this.nsec = nsec;
  }
}

const INT64_MAX = (1n << 63n) - 1n;
const INT64_MIN = -(1n << 63n);

function decodeTimestampExt(data) {
  const v = new DataView(data.buffer, data.byteOffset, data.byteLength);
  switch (data.byteLength) {
    case 4:
      return new RawTimestamp(BigInt(v.getUint32(0)), 0);
    case 8: {
      const hi = v.getUint32(0);
      const lo = v.getUint32(4);
      const nsec = hi >>> 2;
      if (nsec > 999999999) throw badReply(`timestamp nanoseconds ${nsec} > 999999999`);
      return new RawTimestamp(BigInt(hi & 3) * 0x100000000n + BigInt(lo), nsec);
    }
    case 12: {
      const nsec = v.getUint32(0);
      if (nsec > 999999999) throw badReply(`timestamp nanoseconds ${nsec} > 999999999`);
      return new RawTimestamp(v.getBigInt64(4), nsec);
    }
    default:
      throw badReply(`timestamp of ${data.byteLength} bytes (want 4, 8 or 12)`);
  }
}

/** The msgpack timestamp ext (-1) bytes of an instant, in the shortest form. */
function encodeTimestampExt(sec, nsec) {
  if (sec >= 0n && sec < 1n << 34n) {
    if (nsec === 0 && sec <= 0xffffffffn) {
      const b = new Uint8Array(4);
      new DataView(b.buffer).setUint32(0, Number(sec));
      return new ExtData(-1, b);
    }
    const b = new Uint8Array(8);
    const v = new DataView(b.buffer);
    v.setUint32(0, nsec * 4 + Number(sec >> 32n));
    v.setUint32(4, Number(sec & 0xffffffffn));
    return new ExtData(-1, b);
  }
  if (sec < INT64_MIN || sec > INT64_MAX) throw badArgument('timestamp out of range');
  const b = new Uint8Array(12);
  const v = new DataView(b.buffer);
  v.setUint32(0, nsec);
  v.setBigInt64(4, sec);
  return new ExtData(-1, b);
}

const extensionCodec = new ExtensionCodec();
extensionCodec.register({
  type: -1,
  encode: () => null, // parameters are converted to ExtData before encoding
  decode: (data) => decodeTimestampExt(data),
});

/**
 * Decodes a body already passed by checkBody. Errors of the decoder become bad_reply.
 * Maps become null-prototype-free plain objects (the decoder refuses "__proto__" keys).
 */
function makeDecoder(maxBody) {
  return new Decoder({
    extensionCodec,
    useBigInt64: true,
    maxStrLength: maxBody,
    maxBinLength: maxBody,
    maxArrayLength: maxBody,
    maxMapLength: maxBody,
    maxExtLength: maxBody,
    // keys of maps inside ignored values (protocol maps are checked to have str keys)
    mapKeyConverter: (k) => (typeof k === 'string' || typeof k === 'number' ? k : String(k)),
  });
}

function decodeBody(decoder, buf, start, end, cellDepth = 0, maxCells = Infinity, protoDepth = Infinity) {
  checkBody(buf, start, end, cellDepth, maxCells, protoDepth);
  try {
    return decoder.decode(buf.subarray(start, end));
  } catch (e) {
    if (e instanceof CacheError) throw e;
    throw badReply(`undecodable body: ${e && e.message}`);
  }
}

// ---- frames ------------------------------------------------------------------------------

const encoder = new Encoder({ extensionCodec, useBigInt64: true, ignoreUndefined: true, initialBufferSize: 4096 });

/**
 * Encodes a whole request frame (header + body). `maxBody` is the server's limit (HELLO
 * max_frame). Throws a CacheError (too_large) over it.
 */
function encodeFrame(opcode, id, body, maxBody = LIMITS.requestBody) {
  const b = encoder.encodeSharedRef(body);
  if (b.length > maxBody)
    throw new CacheError(Codes.TOO_LARGE, `request body of ${b.length} bytes is over the server's limit of ${maxBody}`);
  const f = Buffer.allocUnsafe(HEADER + b.length);
  f.writeUInt32BE(b.length, 0);
  f[4] = VERSION;
  f[5] = opcode;
  f.writeUInt16BE(0, 6);
  f.writeUInt32BE(id >>> 0, 8);
  f.set(b, HEADER);
  return f;
}

/**
 * Splits a byte stream into frames. push(chunk) returns the frames now complete, as
 * {opcode, id, body: Buffer}. A bad header (version, flags, body length 0 or over maxBody)
 * throws a CacheError (bad_reply) before the body is read; the stream is then unusable.
 */
class FrameReader {
  constructor(maxBody = LIMITS.replyBody) {
    this.maxBody = maxBody;
    this.chunks = [];
    this.avail = 0;
    this.head = 0; // offset into chunks[0]
    this.hdr = null;
  }

  push(chunk) {
    const out = [];
    if (chunk.length) {
      this.chunks.push(chunk);
      this.avail += chunk.length;
    }
    for (;;) {
      if (this.hdr === null) {
        if (this.avail < HEADER) break;
        const h = this.take(HEADER);
        const len = h.readUInt32BE(0);
        if (h[4] !== VERSION) throw badReply(`frame version ${h[4]} (want ${VERSION})`);
        if (h.readUInt16BE(6) !== 0) throw badReply(`frame flags 0x${h.readUInt16BE(6).toString(16)} (must be 0)`);
        if (len === 0) throw badReply('empty frame body');
        if (len > this.maxBody) throw badReply(`frame body of ${len} bytes over the limit of ${this.maxBody}`);
        this.hdr = { opcode: h[5], id: h.readUInt32BE(8), len };
      }
      if (this.avail < this.hdr.len) break;
      const body = this.take(this.hdr.len);
      out.push({ opcode: this.hdr.opcode, id: this.hdr.id, body });
      this.hdr = null;
    }
    return out;
  }

  /** Bytes buffered of a frame not yet complete. */
  get pending() {
    return this.avail;
  }

  take(n) {
    const first = this.chunks[0];
    let out;
    if (first.length - this.head >= n) {
      out = first.subarray(this.head, this.head + n);
      this.head += n;
    } else {
      out = Buffer.allocUnsafe(n);
      let got = 0;
      while (got < n) {
        const c = this.chunks[0];
        const k = Math.min(n - got, c.length - this.head);
        c.copy(out, got, this.head, this.head + k);
        got += k;
        this.head += k;
        if (this.head === c.length) {
          this.chunks.shift();
          this.head = 0;
        }
      }
    }
    if (this.chunks.length && this.head === this.chunks[0].length) {
      this.chunks.shift();
      this.head = 0;
    }
    this.avail -= n;
    return out;
  }
}

// ---- request bodies ------------------------------------------------------------------

function utf8Len(s) {
  return Buffer.byteLength(s, 'utf8');
}

function checkName(what, s, min, max) {
  if (typeof s !== 'string') throw badArgument(`${what} must be a string`);
  const n = utf8Len(s);
  if (n < min || n > max) throw badArgument(`${what} must be ${min}..${max} bytes (is ${n})`);
}

function checkQuery(q) {
  checkName('query name', q, 1, LIMITS.queryName);
}

/**
 * An integer in the form @msgpack/msgpack encodes shortest: a Number inside
 * [-2^31, 2^32), else a BigInt. (With useBigInt64 the encoder writes Numbers outside that
 * range as float64, and BigInts always as 64-bit formats.)
 */
function wireInt(v) {
  if (typeof v === 'bigint') return v >= -2147483648n && v < 4294967296n ? Number(v) : v;
  return v >= -2147483648 && v < 4294967296 ? v : BigInt(v);
}

/** A JS parameter value as a msgpack-encodable wire value (PROTOCOL.md section 4). */
function paramValue(v, i) {
  if (v === null || v === undefined) return null;
  switch (typeof v) {
    case 'boolean':
    case 'string':
      return v;
    case 'number':
      return Number.isSafeInteger(v) ? wireInt(v) : v; // other numbers go out as float64
    case 'bigint':
      if (v < INT64_MIN || v > INT64_MAX) throw badArgument(`parameter ${i + 1}: ${v} does not fit int64`);
      return wireInt(v);
    case 'object':
      if (v instanceof Decimal) return v.value;
      if (v instanceof Date) {
        const t = Timestamp.fromDate(v);
        return encodeTimestampExt(t.seconds, t.nanoseconds);
      }
      if (v instanceof Uint8Array) return v;
      if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      break;
    default:
      break;
  }
  throw badArgument(`parameter ${i + 1}: unsupported value type ${v === null ? 'null' : typeof v}${v && v.constructor ? ' (' + v.constructor.name + ')' : ''}`);
}

function params(p) {
  if (p === undefined || p === null) return [];
  if (!Array.isArray(p)) throw badArgument('params must be an array');
  if (p.length > LIMITS.params) throw badArgument(`${p.length} parameters (at most ${LIMITS.params})`);
  return p.map(paramValue);
}

function tierValue(t) {
  if (typeof t === 'string' && Object.prototype.hasOwnProperty.call(TIERS, t)) return TIERS[t];
  if (t === 0 || t === 1 || t === 2) return t;
  throw badArgument(`tier must be 0..2 or "critical"/"default"/"batch": ${String(t)}`);
}

/**
 * The GET/REFRESH/MGET-item body: {q, p, tier?, lsn?, shard?, bypass?}. Defaults are left out.
 * opts: {tier, lsn (bigint | number | "X/Y" | "SHARD:X/Y" | {shard, lsn}), bypass}
 */
function getBody(query, p, opts = {}) {
  checkQuery(query);
  const body = { q: query, p: params(p) };
  if (opts.tier !== undefined && opts.tier !== null) {
    const t = tierValue(opts.tier);
    if (t !== 1) body.tier = t;
  }
  if (opts.lsn !== undefined && opts.lsn !== null) {
    const t = toToken(opts.lsn); // a token naming its shard sends "shard" after "lsn"
    if (t.lsn !== 0n) body.lsn = wireInt(t.lsn);
    if (t.shard !== null) body.shard = t.shard;
  }
  if (opts.bypass !== undefined && opts.bypass !== null) {
    if (typeof opts.bypass !== 'boolean') throw badArgument('bypass must be a boolean');
    if (opts.bypass) body.bypass = true;
  }
  return body;
}

function mgetBody(items) {
  if (!Array.isArray(items)) throw badArgument('mget takes an array of requests');
  if (items.length > LIMITS.mgetItems) throw badArgument(`${items.length} MGET items (at most ${LIMITS.mgetItems})`);
  return items.map((it, i) => {
    if (it === null || typeof it !== 'object') throw badArgument(`item ${i}: not an object`);
    try {
      return getBody(it.query, it.params, it);
    } catch (e) {
      e.message = `item ${i}: ${e.message}`;
      throw e;
    }
  });
}

function helloBody(clientName, token) {
  checkName('client name', clientName, 0, LIMITS.clientName);
  const body = { v: VERSION, client: clientName };
  if (token !== undefined && token !== null) {
    checkName('token', token, 0, LIMITS.token);
    body.token = token;
  }
  return body;
}

function invalidateBody(query, p) {
  checkQuery(query);
  return p === undefined ? { q: query } : { q: query, p: params(p) };
}

/** SHOW body: {what: view}. */
function showBody(view) {
  checkName('view name', view, 1, LIMITS.adminName);
  return { what: view };
}

/** ADMIN body: {op, q}; q left out when query is undefined or null ("reload"). */
function adminBody(op, query) {
  checkName('ADMIN op', op, 1, LIMITS.adminName);
  if (query === undefined || query === null) return { op };
  checkQuery(query);
  return { op, q: query };
}

// ---- reply bodies --------------------------------------------------------------------

function isMap(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof RawTimestamp) && !(v instanceof ExtData);
}
function has(o, k) {
  return Object.prototype.hasOwnProperty.call(o, k);
}
function isUint(v) {
  return (typeof v === 'number' && Number.isInteger(v) && v >= 0) || (typeof v === 'bigint' && v >= 0n);
}
/** An integer as a Number when safe, else a BigInt. */
function autoInt(v) {
  if (typeof v === 'bigint' && v >= -9007199254740991n && v <= 9007199254740991n) return Number(v);
  return v;
}

/** Error frame body {code, msg} (exactly these keys) -> CacheError. */
function errorFromBody(body) {
  if (!isMap(body) || !has(body, 'code') || !isUint(body.code)) throw badReply('error frame without a code');
  for (const k of Object.keys(body)) if (k !== 'code' && k !== 'msg') throw badReply(`error map with the key ${JSON.stringify(k)}`);
  const code = Number(body.code);
  if (code < 1 || code > 255) throw badReply(`error code ${code} outside 1..255`);
  if (!has(body, 'msg') || typeof body.msg !== 'string') throw badReply('error frame without a msg string');
  const msg = body.msg;
  if (utf8Len(msg) > LIMITS.errorMessage) throw badReply(`error message over ${LIMITS.errorMessage} bytes`);
  return serverError(code, msg);
}

/** MGET item error: {"code": code, "msg": str}, or the older {"err": code, "msg": str}. */
function itemError(v) {
  if (has(v, 'err')) {
    if (has(v, 'code')) throw badReply('an MGET item error with both "code" and "err"');
    const { err, ...rest } = v;
    return errorFromBody({ code: err, ...rest });
  }
  return errorFromBody(v);
}

function decodeHello(b) {
  if (!isMap(b) || !isUint(b.v)) throw badReply('HELLO reply is not {v, server, max_frame}');
  const v = Number(b.v);
  if (v !== VERSION) throw badReply(`server speaks protocol version ${v}, not ${VERSION}`);
  if (!has(b, 'server') || typeof b.server !== 'string' || utf8Len(b.server) > 64)
    throw badReply('HELLO reply server is not a str of at most 64 bytes');
  if (!has(b, 'max_frame') || !isUint(b.max_frame) || b.max_frame > LIMITS.u32)
    throw badReply('HELLO reply max_frame is not a u32');
  return { version: v, server: b.server, maxFrame: Number(b.max_frame) };
}

function decodeMeta(m) {
  if (!isMap(m)) throw badReply('meta is not a map');
  if (!isUint(m.src) || !isUint(m.lsn) || !isUint(m.age) || typeof m.stale !== 'boolean')
    throw badReply('meta lacks src/lsn/age/stale');
  const src = Number(m.src);
  if (src > 2) throw badReply(`meta src ${src} (want 0, 1 or 2)`);
  const meta = {
    source: SOURCES[src],
    src,
    lsn: BigInt(m.lsn),
    age: autoInt(m.age),
    stale: m.stale,
  };
  if (has(m, 'stored')) {
    if (typeof m.stored !== 'boolean') throw badReply('meta stored is not a bool');
    meta.stored = m.stored;
  }
  return meta;
}

/**
 * Typed cell conversion. options: {json: 'parse'|'raw', int64: 'auto'|'bigint'}.
 * Returns the value or throws a CacheError (bad_reply) for a cell that is not a scalar.
 */
function convertCell(v, type, opt) {
  if (v === null) return null;
  switch (type) {
    case 2:
      if (typeof v === 'bigint' || typeof v === 'number') {
        if (typeof v === 'bigint' && v > INT64_MAX) throw badReply('an integer cell above INT64_MAX');
        if (opt.int64 === 'bigint') return Number.isInteger(v) ? BigInt(v) : v;
        return autoInt(v);
      }
      break;
    case 3:
      if (typeof v === 'bigint') return Number(v);
      break;
    case 8:
      if (typeof v === 'string') {
        try {
          return new Decimal(v);
        } catch (e) {
          throw badReply(`numeric cell ${JSON.stringify(v.slice(0, 40))} is not a decimal`);
        }
      }
      break;
    case 9:
      if (typeof v === 'string' && opt.json !== 'raw') {
        try {
          return JSON.parse(v);
        } catch (e) {
          throw badReply(`json cell does not parse: ${e.message}`);
        }
      }
      break;
    case 6:
    case 7:
      if (v instanceof RawTimestamp) return timestampValue(v);
      break;
    default:
      break;
  }
  return genericValue(v, opt);
}

function timestampValue(t) {
  if (t.nsec === 0 && t.sec === INT64_MAX) return Infinity; // PostgreSQL 'infinity'
  if (t.nsec === 0 && t.sec === INT64_MIN) return -Infinity;
  return new Timestamp(t.sec, t.nsec);
}

/** Any scalar by its msgpack type (a cell whose type differs from its column's). */
function genericValue(v, opt) {
  switch (typeof v) {
    case 'boolean':
    case 'string':
    case 'number':
      return v;
    case 'bigint':
      if (v > INT64_MAX) throw badReply('an integer cell above INT64_MAX');
      return opt.int64 === 'bigint' ? v : autoInt(v);
    default:
      if (v instanceof Uint8Array) return Buffer.from(v); // a copy: never a view of the frame
      if (v instanceof RawTimestamp) return timestampValue(v);
      if (v instanceof ExtData) throw badReply(`a result cell is an ext of type ${v.type}`);
      throw badReply('a result cell is not a scalar');
  }
}

class Result {
  constructor(meta, columns, rows) {
    /** {source, src, lsn (bigint), age (ms), stale, stored?} */
    this.meta = meta;
    /** [{name, type (code), typeName}] */
    this.columns = columns;
    /** Row arrays, one typed value per column. */
    this.rows = rows;
  }
  get source() {
    return this.meta.source;
  }
  /** Rows as objects keyed by column name (a later duplicate name wins; any name, even
   * "__proto__", is an own property). */
  records() {
    const names = this.columns.map((c) => c.name);
    return this.rows.map((r) => Object.fromEntries(names.map((n, i) => [n, r[i]])));
  }
}

function decodeResult(reply, opt) {
  if (!Array.isArray(reply) || reply.length !== 2) throw badReply('reply is not [meta, result]');
  const meta = decodeMeta(reply[0]);
  const res = reply[1];
  if (!Array.isArray(res) || res.length !== 2 || !Array.isArray(res[0]) || !Array.isArray(res[1]))
    throw badReply('result is not [cols, rows]');
  const [cols, rows] = res;
  if (cols.length > LIMITS.columns) throw badReply(`${cols.length} columns (at most ${LIMITS.columns})`);
  const columns = new Array(cols.length);
  const types = new Array(cols.length);
  for (let i = 0; i < cols.length; i++) {
    const c = cols[i];
    if (!Array.isArray(c) || c.length !== 2 || typeof c[0] !== 'string' || !isUint(c[1]))
      throw badReply(`column ${i} is not [name, type]`);
    if (utf8Len(c[0]) > LIMITS.columnName) throw badReply(`column ${i} name over ${LIMITS.columnName} bytes`);
    const t = Number(c[1]);
    if (t < 1 || t > 255) throw badReply(`column ${i} has type ${t} (want 1..255)`);
    types[i] = t;
    columns[i] = { name: c[0], type: t, typeName: TYPE_NAMES[t] || 'other' };
  }
  const out = new Array(rows.length);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r];
    if (!Array.isArray(row) || row.length !== cols.length)
      throw badReply(`row ${r} does not have ${cols.length} values`);
    const o = new Array(row.length);
    for (let i = 0; i < row.length; i++) o[i] = convertCell(row[i], types[i], opt);
    out[r] = o;
  }
  return new Result(meta, columns, out);
}

function decodeMget(b, n, opt) {
  if (!Array.isArray(b)) throw badReply('MGET reply is not an array');
  if (b.length > LIMITS.mgetItems) throw badReply(`MGET reply of ${b.length} items (at most ${LIMITS.mgetItems})`);
  if (n !== undefined && b.length !== n) throw badReply(`MGET reply has ${b.length} items for ${n} requests`);
  return b.map((it) => (isMap(it) ? itemError(it) : decodeResult(it, opt)));
}

/** INVALIDATE reply: {deleted} (byKey) or {generation}, exactly that one key. */
function decodeInvalidate(b, byKey) {
  const k = byKey ? 'deleted' : 'generation';
  if (!isMap(b) || !has(b, k) || !isUint(b[k]) || Object.keys(b).length !== 1)
    throw badReply(`INVALIDATE reply is not {${k}: uint}`);
  return autoInt(b[k]);
}

function decodeStats(b) {
  if (!isMap(b)) throw badReply('STATS reply is not a map');
  const out = {};
  for (const k of Object.keys(b)) {
    const v = b[k];
    if (typeof v !== 'number' && typeof v !== 'bigint') throw badReply(`STATS ${k} is not a number`);
    out[k] = autoInt(v);
  }
  return out;
}

/**
 * SHOW or ADMIN reply (PROTOCOL.md 3.8): an array of rows, each a map column name (str of
 * at most 128 bytes, once per row: checked on the raw bytes) -> scalar: null, boolean,
 * number, bigint (int64; a Number when safe), string. Returns an array of plain objects;
 * unknown columns are kept and a row may leave columns out (rowColumns gives the union).
 */
function decodeRows(b, what = 'SHOW') {
  if (!Array.isArray(b)) throw badReply(`${what} reply is not an array of rows`);
  return b.map((row, i) => {
    if (!isMap(row)) throw badReply(`${what} row ${i} is not a map`);
    const out = {};
    for (const k of Object.keys(row)) {
      if (utf8Len(k) > LIMITS.rowKey) throw badReply(`${what} row ${i}: a column name over ${LIMITS.rowKey} bytes`);
      const v = row[k];
      switch (typeof v) {
        case 'boolean':
        case 'string':
        case 'number':
          out[k] = v;
          break;
        case 'bigint':
          if (v > INT64_MAX) throw badReply(`${what} row ${i} ${k}: an integer above INT64_MAX`);
          out[k] = autoInt(v);
          break;
        default:
          if (v !== null) throw badReply(`${what} row ${i} ${k}: not a scalar (null, bool, int, float, str)`);
          out[k] = null;
      }
    }
    return out;
  });
}

/** ADMIN reply: exactly one row, returned as its object. */
function decodeAdmin(b) {
  const rows = decodeRows(b, 'ADMIN');
  if (rows.length !== 1) throw badReply(`ADMIN reply of ${rows.length} rows, want 1`);
  return rows[0];
}

/** The columns of SHOW rows: the union of their keys, in first-seen order. */
function rowColumns(rows) {
  const seen = new Set();
  for (const r of rows) for (const k of Object.keys(r)) seen.add(k);
  return [...seen];
}

/**
 * Decodes a reply body by its frame opcode alone, without the request (tools and the
 * conformance test; the client decodes by the request it sent). Returns the typed value:
 * HELLO {version, server, maxFrame}; PING undefined; GET/REFRESH a Result; MGET an array of
 * Result | CacheError; INVALIDATE {deleted} or {generation}; STATS an object; SHOW and ADMIN
 * an array of row objects (any count); an error frame
 * a CacheError (returned, not thrown). Throws a CacheError (bad_reply) for anything else.
 */
function decodeReply(opcode, b, opt = {}) {
  switch (opcode) {
    case 0x80 | OP.HELLO:
      return decodeHello(b);
    case 0x80 | OP.PING:
      if (b !== null) throw badReply('PING reply is not nil'); // ({} only in a PING request)
      return undefined;
    case 0x80 | OP.GET:
    case 0x80 | OP.REFRESH:
      return decodeResult(b, opt);
    case 0x80 | OP.MGET:
      return decodeMget(b, undefined, opt);
    case 0x80 | OP.INVALIDATE: {
      const byKey = isMap(b) && has(b, 'deleted');
      return { [byKey ? 'deleted' : 'generation']: decodeInvalidate(b, byKey) };
    }
    case 0x80 | OP.STATS:
      return decodeStats(b);
    case 0x80 | OP.SHOW:
    case 0x80 | OP.ADMIN:
      return decodeRows(b, opcode === (0x80 | OP.SHOW) ? 'SHOW' : 'ADMIN');
    case OP.ERROR:
      return errorFromBody(b);
    default:
      throw badReply(`opcode 0x${opcode.toString(16)} is not a reply opcode`);
  }
}

module.exports = {
  VERSION,
  decodeReply,
  HEADER,
  OP,
  OP_NAMES,
  LIMITS,
  TYPE_NAMES,
  TIERS,
  checkBody,
  cellDepth,
  protoMapDepth,
  makeDecoder,
  decodeBody,
  encodeFrame,
  encodeTimestampExt,
  FrameReader,
  getBody,
  mgetBody,
  helloBody,
  invalidateBody,
  showBody,
  adminBody,
  errorFromBody,
  decodeHello,
  decodeResult,
  decodeMget,
  decodeInvalidate,
  decodeStats,
  decodeRows,
  decodeAdmin,
  rowColumns,
  Result,
  RawTimestamp,
};
