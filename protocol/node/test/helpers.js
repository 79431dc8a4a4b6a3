'use strict';
// Test helpers: a seeded PRNG, frame building, and a scripted fake server.
const net = require('node:net');
const { Encoder, decode, ExtData } = require('@msgpack/msgpack');

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const enc = new Encoder({ useBigInt64: true });
/** msgpack bytes of a value (bigints as int64/uint64, ExtData as ext). */
function mp(v) {
  return Buffer.from(enc.encode(v));
}

/** A whole frame: header + body (a Buffer or a value to encode). */
function frame(opcode, id, body, { version = 1, flags = 0, len } = {}) {
  const b = Buffer.isBuffer(body) ? body : mp(body);
  const h = Buffer.alloc(12);
  h.writeUInt32BE(len === undefined ? b.length : len, 0);
  h[4] = version;
  h[5] = opcode;
  h.writeUInt16BE(flags, 6);
  h.writeUInt32BE(id, 8);
  return Buffer.concat([h, b]);
}

/** A timestamp ext (-1) in its 12-byte form. */
function ts96(sec, nsec) {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(nsec, 0);
  b.writeBigInt64BE(BigInt(sec), 4);
  return new ExtData(-1, b);
}

function meta(src = 0, extra = {}) {
  return { src, lsn: 0x16b374d848, age: 1500, stale: false, ...extra };
}

/**
 * A fake cachesvc server on a unix socket. handler(req, conn) is called for every request
 * frame {opcode, id, body (decoded)}; conn.reply(opcode, id, body), conn.raw(bytes),
 * conn.end(). HELLO is answered automatically unless handler returns true for it.
 */
async function fakeServer(dir, handler) {
  const path = `${dir}/fake-${process.pid}-${Math.floor(Math.random() * 1e9)}.sock`;
  const conns = new Set();
  let accepted = 0;
  const server = net.createServer((sock) => {
    accepted++;
    conns.add(sock);
    sock.on('close', () => conns.delete(sock));
    sock.on('error', () => {});
    let buf = Buffer.alloc(0);
    const c = {
      reply: (op, id, body) => sock.write(frame(op, id, body)),
      raw: (bytes) => sock.write(bytes),
      end: () => sock.destroy(),
      sock,
    };
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      while (buf.length >= 12) {
        const len = buf.readUInt32BE(0);
        if (buf.length < 12 + len) break;
        const f = { opcode: buf[5], id: buf.readUInt32BE(8), body: decode(buf.subarray(12, 12 + len), { useBigInt64: true }), bytes: buf.subarray(0, 12 + len) };
        buf = buf.subarray(12 + len);
        const handled = handler(f, c);
        if (f.opcode === 1 && !handled) c.reply(0x81, f.id, { v: 1, server: 'fake/1', max_frame: 1048576 });
      }
    });
  });
  await new Promise((resolve) => server.listen(path, resolve));
  return {
    path,
    get accepted() {
      return accepted;
    },
    dropAll() {
      for (const s of conns) s.destroy();
    },
    close() {
      for (const s of conns) s.destroy();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

module.exports = { prng, mp, frame, ts96, meta, fakeServer };
