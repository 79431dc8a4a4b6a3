'use strict';
// One connection to the server: connect + HELLO, pipelined requests matched by id (replies
// in any order), per-request timeouts. No reconnection here: see Client.
const net = require('node:net');
const codec = require('./codec');
const { CacheError, Codes, badReply } = require('./errors');

const { OP } = codec;
// Replies to requests that timed out are still owed by the server; their ids stay reserved
// until they arrive. A server owing more than this many is considered broken.
const MAX_ABANDONED = 4096;

class Connection {
  /**
   * @param {object} o resolved options: host, port, path, clientName, token, maxReply,
   *   decoder options. Call open() next.
   * @param {(err: CacheError) => void} [onClose] called once when the connection dies
   */
  constructor(o, onClose) {
    this.o = o;
    this.onClose = onClose || (() => {});
    this.pending = new Map(); // id -> {opcode, decode, resolve, reject, timer}
    this.abandoned = new Set();
    this.nextId = 1;
    this.rx = 0; // reply frames received
    this.dead = null; // the CacheError that ended it
    this.reader = new codec.FrameReader(o.maxReply);
    this.decoder = codec.makeDecoder(o.maxReply);
    this.outq = [];
    this.outBytes = 0; // bytes in outq (not yet handed to the socket)
    this.flushScheduled = false;
    this.maxFrame = codec.LIMITS.requestBody;
    this.server = null;
    this.socket = null;
    this.draining = false; // the server said shutting_down: the client uses another connection
    this.closed = new Promise((resolve) => (this._closedResolve = resolve));
  }

  get address() {
    return this.o.path ? `unix:${this.o.path}` : `${this.o.host}:${this.o.port}`;
  }

  /** Requests sent and not yet answered, counting those that timed out until their late
   * reply arrives (a pool must not prefer a connection whose server stopped answering). */
  get inFlight() {
    return this.pending.size + this.abandoned.size;
  }

  /**
   * Connects and performs HELLO, all within timeoutMs. Resolves with {version, server,
   * maxFrame}; rejects with a CacheError (connect, auth, bad_reply, ...) and the
   * connection is then dead.
   */
  open(timeoutMs) {
    const o = this.o;
    let sock;
    try {
      sock = o.path ? net.connect({ path: o.path }) : net.connect({ host: o.host, port: o.port });
    } catch (e) {
      const err = new CacheError(Codes.CONNECT, `connect to ${this.address}: ${e.message}`, { cause: e });
      this._fail(err);
      return Promise.reject(err);
    }
    this.socket = sock;
    this.opening = true;
    sock.setNoDelay(true);
    sock.on('connect', () => sock.setKeepAlive(true, 30000));
    sock.on('data', (chunk) => this._onData(chunk));
    sock.on('error', (e) => {
      const code = this.opening ? Codes.CONNECT : Codes.IO;
      const what = this.opening ? `connect to ${this.address}` : `connection to ${this.address}`;
      this._fail(new CacheError(code, `${what}: ${e.message}`, { cause: e }));
    });
    sock.on('close', () => {
      this._fail(new CacheError(this.opening ? Codes.CONNECT : Codes.CLOSED,
        this.opening ? `connect to ${this.address}: closed during HELLO` : `the server closed the connection (${this.address})`));
      this._closedResolve();
    });
    const hello = this.request(OP.HELLO, codec.helloBody(o.clientName, o.token), codec.decodeHello, timeoutMs);
    return hello.then(
      (info) => {
        this.opening = false;
        this.server = info;
        // max_frame 0 says nothing: the protocol's default request limit (1 MiB) holds
        this.maxFrame = info.maxFrame || codec.LIMITS.requestBody;
        return info;
      },
      (e) => {
        let err = e;
        if (e.code === Codes.CLIENT_TIMEOUT)
          err = new CacheError(Codes.CONNECT, `connect to ${this.address}: no HELLO reply within ${timeoutMs} ms`);
        this._fail(err);
        throw err;
      }
    );
  }

  /**
   * Sends one request; resolves with decode(body) of its reply, or rejects with a
   * CacheError (the server's error, client_timeout, closed, ...). Nothing is sent when the
   * body is over the server's limit (too_large) or the connection is dead (closed).
   */
  request(opcode, body, decode, timeoutMs) {
    if (this.dead) return Promise.reject(new CacheError(Codes.CLOSED, `connection is closed (${this.dead.message})`));
    if (!(timeoutMs > 0))
      return Promise.reject(new CacheError(Codes.CLIENT_TIMEOUT, 'no time left for the request'));
    const id = this._allocId();
    let frame;
    try {
      frame = codec.encodeFrame(opcode, id, body, this.maxFrame);
    } catch (e) {
      return Promise.reject(e);
    }
    // Write backpressure: output the server has not read yet (queued here and buffered in
    // the socket) is bounded; past the bound new requests fail at once, nothing sent.
    const queued = this.outBytes + (this.socket ? this.socket.writableLength : 0);
    if (queued > 0 && queued + frame.length > this.o.maxQueued)
      return Promise.reject(new CacheError(Codes.OVERLOADED,
        `${queued} bytes of requests not yet taken by ${this.address} (maxQueued ${this.o.maxQueued}): the server is not reading`));
    return new Promise((resolve, reject) => {
      const p = { opcode, decode, resolve, reject, timer: null, rx: this.rx };
      p.timer = setTimeout(() => this._timeout(id, timeoutMs), timeoutMs);
      this.pending.set(id, p);
      this._write(frame);
    });
  }

  /** Closes the connection; requests in flight fail with `err` (default: closed). */
  close(err) {
    this._fail(err || new CacheError(Codes.CLOSED, 'connection closed by the client'));
    return this.socket ? this.closed : Promise.resolve();
  }

  _allocId() {
    for (;;) {
      const id = this.nextId;
      this.nextId = id >= 0xffffffff ? 1 : id + 1;
      if (!this.pending.has(id) && !this.abandoned.has(id)) return id;
    }
  }

  _write(frame) {
    this.outq.push(frame);
    this.outBytes += frame.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this._flush());
    }
  }

  _flush() {
    this.flushScheduled = false;
    if (this.dead || this.outq.length === 0) return;
    const q = this.outq;
    this.outq = [];
    this.outBytes = 0;
    this.socket.write(q.length === 1 ? q[0] : Buffer.concat(q));
  }

  _timeout(id, ms) {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    this.abandoned.add(id);
    p.reject(new CacheError(Codes.CLIENT_TIMEOUT, `no reply within ${ms} ms (${this.address})`));
    // No frame at all since this request was sent: the server is presumed dead or wedged.
    // Close (the other requests fail with `closed`; the Client connects anew).
    if (this.rx === p.rx && !this.opening)
      this._fail(new CacheError(Codes.CLOSED, `a request timed out with no reply from ${this.address} since it was sent; connection dropped`));
    else if (this.abandoned.size > MAX_ABANDONED)
      this._fail(new CacheError(Codes.CLOSED, `${this.abandoned.size} requests timed out unanswered; connection dropped`));
  }

  _onData(chunk) {
    if (this.dead) return;
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (e) {
      this._fail(e);
      return;
    }
    for (const f of frames) {
      this.rx++;
      this._dispatch(f);
      if (this.dead) return;
    }
  }

  _dispatch(f) {
    const p = this.pending.get(f.id);
    let body;
    try {
      body = codec.decodeBody(this.decoder, f.body, 0, f.body.length, codec.cellDepth(f.opcode), this.o.maxCells, codec.protoMapDepth(f.opcode));
    } catch (e) {
      this._fail(e);
      return;
    }
    if (!p) {
      if (this.abandoned.delete(f.id)) return; // the late reply of a timed-out request
      if (f.opcode === OP.ERROR) {
        // an error the server could not tie to a request (id 0): it closes after it
        let err;
        try {
          err = codec.errorFromBody(body);
        } catch (e) {
          err = e;
        }
        this._fail(err);
        return;
      }
      this._fail(badReply(`reply to request id ${f.id}, which is not in flight`));
      return;
    }
    if (f.opcode !== OP.ERROR && f.opcode !== (0x80 | p.opcode)) {
      this._fail(badReply(`reply opcode 0x${f.opcode.toString(16)} to a request of opcode 0x${p.opcode.toString(16)}`));
      return;
    }
    let value;
    let err = null;
    try {
      value = f.opcode === OP.ERROR ? codec.errorFromBody(body) : p.decode(body);
    } catch (e) {
      // A decoder failure that is not a CacheError would be a bug of this client: it still
      // only fails this connection (as bad_reply, the cause attached), never the process.
      this._fail(e instanceof CacheError ? e : new CacheError(Codes.BAD_REPLY, `bad reply: ${e && e.message}`, { cause: e }));
      return;
    }
    this.pending.delete(f.id);
    clearTimeout(p.timer);
    if (f.opcode === OP.ERROR) {
      err = value;
      p.reject(err);
      // The server closes the connection after a protocol error.
      if (err.code === Codes.PROTOCOL) {
        this._fail(new CacheError(Codes.CLOSED, `the server closed the connection after a protocol error: ${err.serverMessage}`));
        return;
      }
      // A draining server: no new requests here; close once the ones in flight are answered.
      if (err.code === Codes.SHUTTING_DOWN) this.draining = true;
    } else {
      p.resolve(value);
    }
    if (this.draining && this.pending.size === 0)
      this._fail(new CacheError(Codes.CLOSED, `the server is shutting down (${this.address})`));
  }

  _fail(err) {
    if (this.dead) return;
    this.dead = err;
    if (this.socket) this.socket.destroy();
    const pending = this.pending;
    this.pending = new Map();
    this.abandoned.clear();
    for (const p of pending.values()) {
      clearTimeout(p.timer);
      p.reject(err);
    }
    this.onClose(err);
  }
}

module.exports = { Connection };
