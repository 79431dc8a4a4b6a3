'use strict';
// Errors: one class, CacheError, carrying the protocol's stable numeric code and its name.
//
// Codes 1..11 are sent by the server (PROTOCOL.md section 6); a code the client does not
// know (12..255) is reported as `internal` (8), the original number kept in `wireCode`.
// Codes 100..106 are detected by the client itself (the same numbers, positive, as the C
// client's CS_CLIENT_E_* codes).

const SERVER_CODES = Object.freeze({
  UNKNOWN_QUERY: 1,
  BAD_PARAMS: 2,
  OVERLOADED: 3,
  UNAVAILABLE: 4,
  TOO_LARGE: 5,
  AUTH: 6,
  PROTOCOL: 7,
  INTERNAL: 8,
  TIMEOUT: 9,
  SHUTTING_DOWN: 10,
  FUTURE_LSN: 11,
  NO_SHARD: 12, // the shard key maps to no shard (a sharded origin); not retryable
});

const CLIENT_CODES = Object.freeze({
  IO: 100, // socket error; the connection is closed
  CLIENT_TIMEOUT: 101, // no reply (or no connection) within the request's timeout
  CLOSED: 102, // the connection closed (by the server, by close(), or after an error)
  BAD_REPLY: 103, // the server sent a malformed or unexpected frame; the connection is closed
  BAD_ARGUMENT: 105, // invalid argument; nothing was sent
  CONNECT: 106, // could not connect (address, refused, timed out)
});

const Codes = Object.freeze({ ...SERVER_CODES, ...CLIENT_CODES });

const NAMES = new Map([
  [1, 'unknown_query'],
  [2, 'bad_params'],
  [3, 'overloaded'],
  [4, 'unavailable'],
  [5, 'too_large'],
  [6, 'auth'],
  [7, 'protocol'],
  [8, 'internal'],
  [9, 'timeout'],
  [10, 'shutting_down'],
  [11, 'future_lsn'],
  [12, 'no_shard'],
  [100, 'io'],
  [101, 'client_timeout'],
  [102, 'closed'],
  [103, 'bad_reply'],
  [105, 'bad_argument'],
  [106, 'connect'],
]);

/** The stable name of a code ("unknown_query", "client_timeout", ...). */
function codeName(code) {
  return NAMES.get(code) || 'internal';
}

class CacheError extends Error {
  /**
   * @param {number} code  a code of Codes (an unknown server code becomes INTERNAL)
   * @param {string} message
   * @param {object} [extra] { fromServer, wireCode, cause }
   */
  constructor(code, message, extra = {}) {
    const known = NAMES.has(code);
    const c = known ? code : SERVER_CODES.INTERNAL;
    super(message, extra.cause !== undefined ? { cause: extra.cause } : undefined);
    this.name = 'CacheError';
    /** Stable numeric code (Codes). */
    this.code = c;
    /** Stable name of the code ("unknown_query", "bad_reply", ...). */
    this.codeName = codeName(c);
    /** The code as it was on the wire (differs from `code` only for unknown server codes). */
    this.wireCode = extra.wireCode !== undefined ? extra.wireCode : code;
    /** True when the server sent this error (an error frame or an MGET item error). */
    this.fromServer = !!extra.fromServer;
  }

  /** True when the error closed the connection (protocol, io, bad_reply, closed). */
  get closesConnection() {
    return (
      this.code === Codes.PROTOCOL ||
      this.code === Codes.IO ||
      this.code === Codes.BAD_REPLY ||
      this.code === Codes.CLOSED
    );
  }
}

/** A CacheError from a server error code (unknown codes are `internal`). */
function serverError(code, msg) {
  const known = Number.isInteger(code) && code >= 1 && code <= 10;
  const e = new CacheError(known ? code : SERVER_CODES.INTERNAL, `${codeName(known ? code : 8)}: ${msg}`, {
    fromServer: true,
    wireCode: code,
  });
  e.serverMessage = msg;
  return e;
}

function badReply(why) {
  return new CacheError(CLIENT_CODES.BAD_REPLY, `bad reply: ${why}`);
}

function badArgument(why) {
  return new CacheError(CLIENT_CODES.BAD_ARGUMENT, why);
}

module.exports = { CacheError, Codes, codeName, serverError, badReply, badArgument };
