'use strict';
// Value types of results and parameters: Decimal (numeric), Timestamp (timestamp and
// timestamptz, nanoseconds kept), and LSN tokens (bigint, "X/Y" text as PostgreSQL prints it).
const { badArgument } = require('./errors');

const DECIMAL_RE = /^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$/;
const SPECIAL = new Set(['NaN', 'Infinity', '-Infinity']);

/**
 * An exact decimal number (PostgreSQL numeric), kept as its text: no precision is lost.
 * It does no arithmetic; convert with toString(), toNumber() (may round) or toBigInt()
 * (integral values only), or hand the string to a decimal library.
 */
class Decimal {
  constructor(text) {
    const s = String(text).trim();
    if (!DECIMAL_RE.test(s) && !SPECIAL.has(s)) throw badArgument(`not a decimal number: ${JSON.stringify(s)}`);
    Object.defineProperty(this, 'value', { value: s, enumerable: true });
    Object.freeze(this);
  }
  toString() {
    return this.value;
  }
  toJSON() {
    return this.value;
  }
  /** The nearest double (may lose precision). */
  toNumber() {
    return Number(this.value);
  }
  /** The value as a BigInt; throws a RangeError when it has a nonzero fraction. */
  toBigInt() {
    const m = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/.exec(this.value);
    if (!m) throw new RangeError(`${this.value} is not an integer`);
    let digits = (m[2] || '') + (m[3] || '');
    let exp = (m[4] ? Number(m[4]) : 0) - (m[3] || '').length;
    if (exp >= 0) {
      if (exp > 100000) throw new RangeError(`${this.value} is too large`);
      digits += '0'.repeat(exp);
    } else {
      const frac = digits.slice(digits.length + exp);
      if (/[^0]/.test(frac)) throw new RangeError(`${this.value} is not an integer`);
      digits = digits.slice(0, digits.length + exp);
    }
    const v = BigInt(digits || '0');
    return m[1] === '-' ? -v : v;
  }
  isNaN() {
    return this.value === 'NaN';
  }
  [Symbol.for('nodejs.util.inspect.custom')]() {
    return `Decimal(${this.value})`;
  }
}

const MS_MIN = -8.64e15;
const MS_MAX = 8.64e15;

/**
 * A point in time from a timestamp or timestamptz column: a Date (UTC, millisecond
 * resolution) that also keeps the full nanoseconds. `nanoseconds` is 0..999999999 within the
 * second; `epochNanoseconds` is the exact instant as a BigInt (also for instants outside
 * Date's range, where getTime() is NaN).
 */
class Timestamp extends Date {
  /**
   * @param {bigint|number} seconds since the Unix epoch (UTC)
   * @param {number} nanoseconds 0..999999999
   */
  constructor(seconds, nanoseconds = 0) {
    const sec = BigInt(seconds);
    const ms = Number(sec) * 1000 + Math.floor(nanoseconds / 1e6);
    super(ms >= MS_MIN && ms <= MS_MAX ? ms : NaN);
    Object.defineProperty(this, 'seconds', { value: sec, enumerable: true });
    Object.defineProperty(this, 'nanoseconds', { value: nanoseconds, enumerable: true });
  }
  get epochNanoseconds() {
    return this.seconds * 1000000000n + BigInt(this.nanoseconds);
  }
  /** Like toISOString() but with all nine fraction digits (trailing zeros dropped). */
  toISOStringNano() {
    const iso = this.toISOString(); // YYYY-MM-DDTHH:MM:SS.mmmZ
    let frac = String(this.nanoseconds).padStart(9, '0').replace(/0+$/, '');
    return iso.slice(0, iso.indexOf('.')) + (frac ? '.' + frac : '') + 'Z';
  }
  /** A Timestamp from a Date (nanoseconds from its milliseconds). */
  static fromDate(d) {
    if (d instanceof Timestamp) return d;
    const ms = d.getTime();
    if (Number.isNaN(ms)) throw badArgument('invalid Date');
    const sec = Math.floor(ms / 1000);
    return new Timestamp(sec, (ms - sec * 1000) * 1e6);
  }
}

const U64_MAX = (1n << 64n) - 1n;

/**
 * Parses a WAL position "X/Y" (1-8 hex digits each, as PostgreSQL prints pg_lsn) into a
 * BigInt. Throws a CacheError (bad_argument) for anything else.
 */
function parseLsn(text) {
  const m = typeof text === 'string' ? /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/.exec(text) : null;
  if (!m) throw badArgument(`not an LSN ("X/Y" hex): ${JSON.stringify(text)}`);
  return (BigInt('0x' + m[1]) << 32n) | BigInt('0x' + m[2]);
}

/** Formats an LSN (BigInt or safe integer) as PostgreSQL does: "16/B374D848". */
function formatLsn(lsn) {
  const v = toLsn(lsn);
  return `${(v >> 32n).toString(16).toUpperCase()}/${(v & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** An LSN argument (BigInt, non-negative safe integer, or "X/Y" text) as a BigInt. */
function toLsn(v) {
  if (typeof v === 'string') return parseLsn(v);
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw badArgument(`LSN must be a non-negative integer: ${v}`);
    return BigInt(v);
  }
  if (typeof v === 'bigint') {
    if (v < 0n || v > U64_MAX) throw badArgument(`LSN out of range: ${v}`);
    return v;
  }
  throw badArgument(`LSN must be a bigint, a number or "X/Y" text, not ${typeof v}`);
}

/** Longest shard name a token may carry (PROTOCOL.md 3.3; the configuration's limit). */
const MAX_SHARD = 64;
const SHARD_RE = /^[A-Za-z0-9_.-]{1,64}$/;

function checkShard(shard) {
  if (typeof shard !== 'string' || !SHARD_RE.test(shard))
    throw badArgument(`a token's shard is 1..${MAX_SHARD} characters of A-Z a-z 0-9 _ . -: ${JSON.stringify(shard)}`);
  return shard;
}

/**
 * Parses a read-your-writes token: "X/Y" ({shard: null, lsn}) or "SHARD:X/Y" naming the
 * shard whose WAL the LSN is in ("s1:0/16B3748"; SHARD 1..64 of A-Z a-z 0-9 _ . -, the LSN
 * not 0/0). Throws a CacheError (bad_argument) for anything else.
 */
function parseToken(text) {
  if (typeof text !== 'string') throw badArgument(`a token is "X/Y" or "SHARD:X/Y" text, not ${typeof text}`);
  const i = text.indexOf(':');
  if (i < 0) return { shard: null, lsn: parseLsn(text) };
  return toToken({ shard: text.slice(0, i), lsn: parseLsn(text.slice(i + 1)) });
}

/** Formats a token ({shard, lsn}, or an LSN) as "X/Y" or "SHARD:X/Y". */
function formatToken(t) {
  const v = toToken(t);
  return v.shard === null ? formatLsn(v.lsn) : `${v.shard}:${formatLsn(v.lsn)}`;
}

/**
 * A request's lsn argument as {shard (string | null), lsn (BigInt)}: a BigInt, a safe
 * integer, "X/Y" or "SHARD:X/Y" text, or a {shard, lsn} object (shard null/undefined for
 * none). A shard needs a nonzero LSN.
 */
function toToken(v) {
  if (typeof v === 'string') return parseToken(v);
  if (v !== null && typeof v === 'object') {
    const lsn = toLsn(v.lsn);
    if (v.shard === null || v.shard === undefined) return { shard: null, lsn };
    checkShard(v.shard);
    if (lsn === 0n) throw badArgument(`a token naming shard ${JSON.stringify(v.shard)} needs a nonzero LSN`);
    return { shard: v.shard, lsn };
  }
  return { shard: null, lsn: toLsn(v) };
}

module.exports = { Decimal, Timestamp, parseLsn, formatLsn, toLsn, parseToken, formatToken, toToken };
