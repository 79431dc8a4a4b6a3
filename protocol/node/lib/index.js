'use strict';
// cachesvc-client: Node.js client for the cachesvc binary protocol (protocol/PROTOCOL.md).
const { Client, Pool, backoffDelay } = require('./client');
const { CacheError, Codes, codeName } = require('./errors');
const { Decimal, Timestamp, parseLsn, formatLsn, parseToken, formatToken } = require('./types');
const { Result, TYPE_NAMES, TIERS, LIMITS } = require('./codec');

/** A Client (one pipelined connection). */
function createClient(opts) {
  return new Client(opts);
}
/** A Pool of `size` connections (default 4). */
function createPool(opts) {
  return new Pool(opts);
}

const Source = Object.freeze({ CACHE: 'cache', REPLICA: 'replica', PRIMARY: 'primary' });
const Tier = Object.freeze({ CRITICAL: 0, DEFAULT: 1, BATCH: 2 });
const ColumnType = Object.freeze({
  BOOL: 1,
  INT: 2,
  FLOAT: 3,
  TEXT: 4,
  BYTEA: 5,
  TIMESTAMP: 6,
  TIMESTAMPTZ: 7,
  NUMERIC: 8,
  JSON: 9,
  OTHER: 10,
});

module.exports = {
  Client,
  Pool,
  createClient,
  createPool,
  CacheError,
  Codes,
  codeName,
  Decimal,
  Timestamp,
  Result,
  parseLsn,
  formatLsn,
  parseToken,
  formatToken,
  backoffDelay,
  Source,
  Tier,
  ColumnType,
  TYPE_NAMES,
  TIERS,
  LIMITS,
};
