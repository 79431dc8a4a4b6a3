'use strict';
// Client: one pipelined connection, (re)established on demand with capped exponential
// backoff and jitter. Pool: a few Clients, each call on the least busy one.
const codec = require('./codec');
const { Connection } = require('./connection');
const { CacheError, Codes, badArgument } = require('./errors');

const { OP } = codec;
const PKG_VERSION = require('../package.json').version;

const DEFAULTS = Object.freeze({
  host: '127.0.0.1',
  port: 6380,
  path: null,
  token: null,
  clientName: `cachesvc-node/${PKG_VERSION}`,
  connectTimeout: 2000,
  timeout: 5000,
  maxReply: codec.LIMITS.replyBody,
  maxCells: 1000000,
  maxQueued: 16 * 1048576,
  json: 'parse',
  int64: 'auto',
  reconnect: { initialDelay: 50, maxDelay: 2000 },
});

const MAX_MS = 2147483647; // setTimeout's limit
// The least time reload() waits by default (ms): the server answers when its checked
// reload has ended (it prepares every new query on a replica, bounded by its
// request_timeout), which may outlast an ordinary request.
const RELOAD_TIMEOUT = 30000;
function validMs(v) {
  return typeof v === 'number' && v > 0 && v <= MAX_MS;
}

function resolveOptions(opts = {}) {
  if (opts === null || typeof opts !== 'object') throw badArgument('options must be an object');
  const o = { ...DEFAULTS, ...opts };
  if (o.path !== null && o.path !== undefined && typeof o.path !== 'string') throw badArgument('path must be a string');
  if (!o.path) {
    if (typeof o.host !== 'string' || o.host === '') throw badArgument('host must be a non-empty string');
    if (!Number.isInteger(o.port) || o.port < 1 || o.port > 65535) throw badArgument(`port must be 1..65535: ${o.port}`);
  }
  for (const k of ['connectTimeout', 'timeout']) {
    if (!validMs(o[k])) throw badArgument(`${k} must be 1..${MAX_MS} milliseconds`);
  }
  if (!Number.isInteger(o.maxReply) || o.maxReply < 1 || o.maxReply > codec.LIMITS.u32)
    throw badArgument('maxReply must be 1..4294967295 bytes');
  if (!Number.isInteger(o.maxCells) || o.maxCells < 1) throw badArgument('maxCells must be a positive integer');
  if (!Number.isInteger(o.maxQueued) || o.maxQueued < 1) throw badArgument('maxQueued must be a positive integer (bytes)');
  if (o.json !== 'parse' && o.json !== 'raw') throw badArgument('json must be "parse" or "raw"');
  if (o.int64 !== 'auto' && o.int64 !== 'bigint') throw badArgument('int64 must be "auto" or "bigint"');
  if (o.reconnect !== false) {
    const r = { ...DEFAULTS.reconnect, ...(o.reconnect === true ? {} : o.reconnect) };
    if (!validMs(r.initialDelay) || !validMs(r.maxDelay) || !(r.maxDelay >= r.initialDelay))
      throw badArgument('reconnect needs 0 < initialDelay <= maxDelay (milliseconds)');
    o.reconnect = r;
  }
  // validates the name and the token now rather than at the first connect
  codec.helloBody(o.clientName, o.token);
  // The token is a secret: not enumerable, so util.inspect / console.log / JSON.stringify
  // of a client, a connection or these options do not show it.
  Object.defineProperty(o, 'token', { value: o.token, enumerable: false, writable: false });
  return o;
}

/**
 * Delay before reconnect attempt n (1 = after the first failure): capped exponential
 * backoff with "equal jitter", uniformly in [d/2, d] where d = min(maxDelay, initial * 2^(n-1)).
 */
function backoffDelay(n, r, random = Math.random) {
  const d = Math.min(r.maxDelay, r.initialDelay * 2 ** Math.min(n - 1, 30));
  return d / 2 + random() * (d / 2);
}

// Errors after which reconnecting at once is pointless: the request fails with them.
function isPermanent(e) {
  return e.code === Codes.AUTH || e.code === Codes.BAD_REPLY || e.code === Codes.PROTOCOL || e.code === Codes.BAD_ARGUMENT;
}

class Client {
  /**
   * @param {object} [opts] see README.md: host, port | path, token, clientName,
   *   connectTimeout, timeout, maxReply, json, int64, reconnect
   */
  constructor(opts) {
    this.o = resolveOptions(opts);
    this._conn = null;
    this._retired = new Set(); // connections to a draining server, finishing their requests
    this._connecting = null;
    this._failures = 0; // consecutive failed connect attempts
    this._nextAttemptAt = 0;
    this._lastError = null;
    this._everConnected = false;
    this._closed = false;
    this._sleep = null; // {timer, resolve} of a backoff wait, for close()
    const decOpt = { json: this.o.json, int64: this.o.int64 };
    this._decodeResult = (b) => codec.decodeResult(b, decOpt);
    this._decOpt = decOpt;
  }

  /** Server identity from the last HELLO: {version, server, maxFrame}, or null. */
  get serverInfo() {
    return this._usable() ? this._conn.server : null;
  }

  /** True while a connection is up (and its server is not shutting down). */
  get connected() {
    return this._usable();
  }

  _usable() {
    const c = this._conn;
    return !!(c && !c.dead && !c.draining);
  }

  /** Requests in flight on the current connection. */
  get inFlight() {
    return this._conn ? this._conn.inFlight : 0;
  }

  /** Connects now (otherwise the first request does). Resolves with serverInfo. */
  async connect() {
    const c = await this._acquire(Date.now() + Math.max(this.o.connectTimeout, this.o.timeout));
    return c.server;
  }

  /** GET: read through the cache. opts: {tier, lsn, bypass, timeout}. Resolves a Result. */
  get(query, params, opts = {}) {
    return this._call(OP.GET, () => codec.getBody(query, params, opts), this._decodeResult, opts.timeout);
  }

  /** REFRESH: re-run the query and refill the cache. Same arguments and result as get(). */
  refresh(query, params, opts = {}) {
    return this._call(OP.REFRESH, () => codec.getBody(query, params, opts), this._decodeResult, opts.timeout);
  }

  /**
   * MGET: several GETs in one frame. items: [{query, params, tier, lsn, bypass}]. Resolves
   * an array in request order, each a Result or a CacheError (an item error).
   */
  mget(items, opts = {}) {
    const n = Array.isArray(items) ? items.length : 0;
    return this._call(OP.MGET, () => codec.mgetBody(items), (b) => codec.decodeMget(b, n, this._decOpt), opts.timeout);
  }

  /** INVALIDATE one key: resolves the number of entries deleted (0 or 1). */
  invalidate(query, params, opts = {}) {
    if (!Array.isArray(params)) return Promise.reject(badArgument('invalidate takes a parameter array (use invalidateQuery for a whole query)'));
    return this._call(OP.INVALIDATE, () => codec.invalidateBody(query, params), (b) => codec.decodeInvalidate(b, true), opts.timeout);
  }

  /** INVALIDATE a whole query (O(1) generation bump): resolves the new generation. */
  invalidateQuery(query, opts = {}) {
    return this._call(OP.INVALIDATE, () => codec.invalidateBody(query), (b) => codec.decodeInvalidate(b, false), opts.timeout);
  }

  /** STATS: resolves {name: number | bigint}. */
  stats(opts = {}) {
    return this._call(OP.STATS, () => null, codec.decodeStats, opts.timeout);
  }

  /** PING: resolves undefined. */
  ping(opts = {}) {
    return this._call(OP.PING, () => null, (b) => codec.decodeReply(0x80 | OP.PING, b), opts.timeout);
  }

  /**
   * SHOW a view (admin; PROTOCOL.md 3.8): 'queries', 'servers', 'clients', 'invalidator'
   * or 'config'. Resolves an array of rows, each {column: null | boolean | number | bigint |
   * string}; rows may differ in their columns (unknown ones are kept). An unknown view
   * rejects with bad_params (its message lists the views); without the admin token, when
   * the server has one, with auth (the connection stays).
   */
  show(view, opts = {}) {
    return this._call(OP.SHOW, () => codec.showBody(view), (b) => codec.decodeRows(b), opts.timeout);
  }

  /** ADMIN pause: the server answers query from PostgreSQL, bypassing the cache, until
   * resume. Resolves {query, paused: true, changed}. */
  pause(query, opts = {}) {
    return this._call(OP.ADMIN, () => codec.adminBody('pause', requireQuery(query)), codec.decodeAdmin, opts.timeout);
  }

  /** ADMIN resume: the cache serves query again. Resolves {query, paused: false, changed}. */
  resume(query, opts = {}) {
    return this._call(OP.ADMIN, () => codec.adminBody('resume', requireQuery(query)), codec.decodeAdmin, opts.timeout);
  }

  /** ADMIN claim: where another server's definition of query owns its cache (a rolling
   * deploy whose other side is gone), this server's takes it over with a new generation.
   * Resolves {query, claimed} (claimed: another definition owned it). */
  claim(query, opts = {}) {
    return this._call(OP.ADMIN, () => codec.adminBody('claim', requireQuery(query)), codec.decodeAdmin, opts.timeout);
  }

  /**
   * ADMIN reload: the server reloads its config file (checked as on SIGHUP); resolves when
   * the reload has ended: {reload: 'applied', queries} or {reload: 'refused', error} (a
   * refusal resolves, it does not reject). opts.timeout defaults to the longer of the
   * client's timeout and 30 s. Rejects with overloaded while another reload is checked.
   */
  reload(opts = {}) {
    const ms = opts.timeout === undefined ? Math.max(this.o.timeout, RELOAD_TIMEOUT) : opts.timeout;
    return this._call(OP.ADMIN, () => codec.adminBody('reload'), codec.decodeAdmin, ms);
  }

  /** Closes the connection; requests in flight and later calls fail with `closed`. */
  async close() {
    this._closed = true;
    if (this._sleep) {
      clearTimeout(this._sleep.timer);
      this._sleep.resolve();
    }
    const err = new CacheError(Codes.CLOSED, 'client closed');
    await Promise.all([this._conn, ...this._retired].filter(Boolean).map((c) => c.close(err)));
  }

  async _call(opcode, makeBody, decode, timeout) {
    const ms = timeout === undefined ? this.o.timeout : timeout;
    if (!validMs(ms)) throw badArgument(`timeout must be 1..${MAX_MS} milliseconds`);
    const body = makeBody(); // argument errors: nothing is sent
    if (this._usable()) return this._conn.request(opcode, body, decode, ms);
    const deadline = Date.now() + ms;
    const conn = await this._acquire(deadline);
    return conn.request(opcode, body, decode, deadline - Date.now());
  }

  /** The live connection, connecting (with backoff between failed attempts) until deadline. */
  async _acquire(deadline) {
    for (;;) {
      if (this._closed) throw new CacheError(Codes.CLOSED, 'client closed');
      if (this._usable()) return this._conn;
      if (this._everConnected && this.o.reconnect === false)
        throw new CacheError(Codes.CLOSED, 'the connection was lost and reconnect is off');
      if (!this._connecting)
        this._connecting = this._attempt().finally(() => {
          this._connecting = null;
        });
        this._connecting.catch(() => {}); // waiters handle it; none may be left
      const left = deadline - Date.now();
      if (left <= 0) throw this._gaveUp();
      let timer;
      const expired = new Promise((resolve) => {
        timer = setTimeout(() => resolve(false), left);
      });
      try {
        const ok = await Promise.race([this._connecting.then(() => true), expired]);
        if (!ok) throw this._gaveUp();
      } catch (e) {
        if (!(e instanceof CacheError) || e.code === Codes.CLIENT_TIMEOUT || isPermanent(e) || this.o.reconnect === false)
          throw e;
        // a failed attempt: loop, the next one waits its backoff
      } finally {
        clearTimeout(timer);
      }
    }
  }

  // The request's time ran out while connecting: `connect` with the last attempt's error,
  // or client_timeout when no attempt has failed yet (one is still under way).
  _gaveUp() {
    const last = this._lastError;
    if (last) return new CacheError(Codes.CONNECT, `no connection within the request's timeout: ${last.message}`, { cause: last });
    return new CacheError(Codes.CLIENT_TIMEOUT, "no connection within the request's timeout");
  }

  async _attempt() {
    const wait = this._nextAttemptAt - Date.now();
    if (wait > 0) {
      await new Promise((resolve) => {
        this._sleep = { timer: setTimeout(resolve, wait), resolve };
      });
      this._sleep = null;
      if (this._closed) throw new CacheError(Codes.CLOSED, 'client closed');
    }
    const conn = new Connection(this.o, () => {
      if (this._conn === conn) this._conn = null;
      this._retired.delete(conn);
    });
    try {
      await conn.open(this.o.connectTimeout);
    } catch (e) {
      this._failures++;
      this._lastError = e;
      if (this.o.reconnect !== false) this._nextAttemptAt = Date.now() + backoffDelay(this._failures, this.o.reconnect);
      throw e;
    }
    if (this._closed) {
      await conn.close();
      throw new CacheError(Codes.CLOSED, 'client closed');
    }
    this._failures = 0;
    this._lastError = null;
    this._everConnected = true;
    if (this._conn && !this._conn.dead) this._retired.add(this._conn); // draining: it closes itself
    this._conn = conn;
    return conn;
  }
}

/**
 * A small pool of Clients (connections) to one server. Same methods as Client; each call
 * goes to the connection with the fewest requests in flight.
 */
class Pool {
  constructor(opts = {}) {
    const { size = 4, ...rest } = opts || {};
    if (!Number.isInteger(size) || size < 1 || size > 64) throw badArgument('pool size must be 1..64');
    this.clients = Array.from({ length: size }, () => new Client(rest));
    this._rr = 0;
  }

  get size() {
    return this.clients.length;
  }

  /** Connects every connection now. */
  async connect() {
    const infos = await Promise.all(this.clients.map((c) => c.connect()));
    return infos[0];
  }

  /** The least busy client (ties: round robin). */
  pick() {
    const n = this.clients.length;
    const start = this._rr;
    this._rr = (this._rr + 1) % n;
    let best = this.clients[start];
    for (let i = 1; i < n && best.inFlight > 0; i++) {
      const c = this.clients[(start + i) % n];
      if (c.inFlight < best.inFlight) best = c;
    }
    return best;
  }

  get(q, p, o) {
    return this.pick().get(q, p, o);
  }
  refresh(q, p, o) {
    return this.pick().refresh(q, p, o);
  }
  mget(items, o) {
    return this.pick().mget(items, o);
  }
  invalidate(q, p, o) {
    return this.pick().invalidate(q, p, o);
  }
  invalidateQuery(q, o) {
    return this.pick().invalidateQuery(q, o);
  }
  stats(o) {
    return this.pick().stats(o);
  }
  ping(o) {
    return this.pick().ping(o);
  }
  show(view, o) {
    return this.pick().show(view, o);
  }
  pause(q, o) {
    return this.pick().pause(q, o);
  }
  resume(q, o) {
    return this.pick().resume(q, o);
  }
  claim(q, o) {
    return this.pick().claim(q, o);
  }
  reload(o) {
    return this.pick().reload(o);
  }
  async close() {
    await Promise.all(this.clients.map((c) => c.close()));
  }
}

// pause/resume/claim take a query name (adminBody would send none for undefined).
function requireQuery(query) {
  if (query === undefined || query === null) throw badArgument('a query name is required');
  return query;
}

module.exports = { Client, Pool, backoffDelay, resolveOptions, DEFAULTS, RELOAD_TIMEOUT };
