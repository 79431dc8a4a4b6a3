// Type declarations of cachesvc-client (lib/index.js). See README.md.

/** A parameter value: sent as the matching msgpack type; the server converts it to the
 * parameter's declared type (PROTOCOL.md section 5). */
export type Param = null | undefined | boolean | number | bigint | string | Date | Timestamp | Decimal | Uint8Array;

/** A parsed json/jsonb cell. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** A result cell: see README.md "Values" for the type of each column type. */
export type Value = null | boolean | number | bigint | string | Buffer | Timestamp | Decimal | JsonValue;

export type TierName = 'critical' | 'default' | 'batch';
export type LsnLike = bigint | number | string;
/** A read-your-writes token: an LSN and the shard it belongs to (null: a bare "X/Y"). */
export interface Token {
  shard: string | null;
  lsn: bigint;
}
/** A request's lsn: an LSN, "SHARD:X/Y" text, or a token object. */
export type TokenLike = LsnLike | { shard?: string | null; lsn: LsnLike };

export interface ReconnectOptions {
  /** First backoff delay in ms (default 50). */
  initialDelay?: number;
  /** Cap of the backoff delay in ms (default 2000). */
  maxDelay?: number;
}

export interface ClientOptions {
  /** TCP host (default "127.0.0.1"). */
  host?: string;
  /** TCP port (default 6380). */
  port?: number;
  /** A unix socket path; used instead of host/port when set. */
  path?: string | null;
  /** Auth token sent in HELLO. */
  token?: string | null;
  /** Client name sent in HELLO, at most 64 bytes (default "cachesvc-node/<version>"). */
  clientName?: string;
  /** TCP (or unix) connect plus HELLO, in ms (default 2000). */
  connectTimeout?: number;
  /** Default per-request timeout in ms, including any wait for a connection (default 5000). */
  timeout?: number;
  /** Largest reply body accepted, in bytes (default 64 MiB). */
  maxReply?: number;
  /** Most cells in one GET/REFRESH/MGET reply (rows x columns, an empty row counting 1,
   * summed over MGET items; default 1000000): more is refused (bad_reply) from the array
   * headers, before any row is built. */
  maxCells?: number;
  /** Most bytes of requests sent but not yet taken by the server (queued plus the socket's
   * buffer; default 16 MiB): past it new requests fail at once with `overloaded` (not from
   * the server), nothing sent. */
  maxQueued?: number;
  /** json/jsonb cells: parsed with JSON.parse (default) or the raw text. */
  json?: 'parse' | 'raw';
  /** int cells: a Number when it is a safe integer, else a BigInt (default "auto"); or always a BigInt. */
  int64?: 'auto' | 'bigint';
  /** Reconnect with capped exponential backoff and jitter (default on); false: a lost connection stays lost. */
  reconnect?: ReconnectOptions | boolean;
}

export interface PoolOptions extends ClientOptions {
  /** Connections (default 4, at most 64). */
  size?: number;
}

export interface RequestOptions {
  /** This request's timeout in ms. */
  timeout?: number;
}

export interface GetOptions extends RequestOptions {
  /** 0 critical, 1 default, 2 batch (warm-up). */
  tier?: 0 | 1 | 2 | TierName;
  /** Read-your-writes token: answer with data at least this new (0 = none). */
  lsn?: TokenLike;
  /** Skip the cache: read the database, do not fill. */
  bypass?: boolean;
}

export interface MgetItem {
  query: string;
  params?: Param[];
  tier?: 0 | 1 | 2 | TierName;
  lsn?: TokenLike;
  bypass?: boolean;
}

export type SourceName = 'cache' | 'replica' | 'primary';

export interface Meta {
  /** Where the answer came from. */
  source: SourceName;
  /** The wire code of source: 0 cache, 1 replica, 2 primary. */
  src: 0 | 1 | 2;
  /** The data is at least as new as this WAL position (format with formatLsn). */
  lsn: bigint;
  /** Milliseconds since the data was read from the database. */
  age: number | bigint;
  /** Served past its TTL (stale-while-revalidate). */
  stale: boolean;
  /** For answers read from the database: whether the result was stored in the cache (when the server says). */
  stored?: boolean;
}

export interface Column {
  name: string;
  /** The wire type code (1..255). */
  type: number;
  /** bool, int, float, text, bytea, timestamp, timestamptz, numeric, json, other (also for unknown codes). */
  typeName: 'bool' | 'int' | 'float' | 'text' | 'bytea' | 'timestamp' | 'timestamptz' | 'numeric' | 'json' | 'other';
}

export class Result {
  meta: Meta;
  columns: Column[];
  rows: Value[][];
  readonly source: SourceName;
  /** Rows as objects keyed by column name. */
  records(): Record<string, Value>[];
}

export interface ServerInfo {
  version: number;
  server: string;
  /** Largest request body the server accepts. */
  maxFrame: number;
}

export type Stats = Record<string, number | bigint>;

/** A SHOW/ADMIN row: column -> scalar (null: not known). Rows may differ in their columns. */
export type AdminValue = null | boolean | number | bigint | string;
export type Row = Record<string, AdminValue>;
/** The ADMIN pause/resume reply row. */
export interface PauseResult extends Row {
  query: string;
  paused: boolean;
  /** Whether the call changed the state. */
  changed: boolean;
}
/** The ADMIN claim reply row. */
export interface ClaimResult extends Row {
  query: string;
  /** Whether another server's definition owned the query (now taken over). */
  claimed: boolean;
}
/** The ADMIN reload reply row: applied (with the query count) or refused (with why). */
export interface ReloadResult extends Row {
  reload: 'applied' | 'refused';
  queries?: number;
  error?: string;
}
export type ShowView = 'queries' | 'servers' | 'clients' | 'invalidator' | 'config';

export class Client {
  constructor(opts?: ClientOptions);
  readonly serverInfo: ServerInfo | null;
  readonly connected: boolean;
  readonly inFlight: number;
  connect(): Promise<ServerInfo>;
  get(query: string, params?: Param[], opts?: GetOptions): Promise<Result>;
  refresh(query: string, params?: Param[], opts?: GetOptions): Promise<Result>;
  mget(items: MgetItem[], opts?: RequestOptions): Promise<(Result | CacheError)[]>;
  invalidate(query: string, params: Param[], opts?: RequestOptions): Promise<number>;
  invalidateQuery(query: string, opts?: RequestOptions): Promise<number | bigint>;
  stats(opts?: RequestOptions): Promise<Stats>;
  ping(opts?: RequestOptions): Promise<void>;
  /** SHOW a view (admin): its rows. */
  show(view: ShowView | string, opts?: RequestOptions): Promise<Row[]>;
  /** ADMIN pause: the query bypasses the cache on this server until resume. */
  pause(query: string, opts?: RequestOptions): Promise<PauseResult>;
  /** ADMIN resume: the cache serves the query again. */
  resume(query: string, opts?: RequestOptions): Promise<PauseResult>;
  /** ADMIN claim: this server's definition of the query takes its cache over from another's. */
  claim(query: string, opts?: RequestOptions): Promise<ClaimResult>;
  /** ADMIN reload, resolved when it has ended (default timeout: max(timeout, 30 s)). */
  reload(opts?: RequestOptions): Promise<ReloadResult>;
  close(): Promise<void>;
}

export class Pool {
  constructor(opts?: PoolOptions);
  readonly size: number;
  readonly clients: Client[];
  connect(): Promise<ServerInfo>;
  /** The least busy connection. */
  pick(): Client;
  get(query: string, params?: Param[], opts?: GetOptions): Promise<Result>;
  refresh(query: string, params?: Param[], opts?: GetOptions): Promise<Result>;
  mget(items: MgetItem[], opts?: RequestOptions): Promise<(Result | CacheError)[]>;
  invalidate(query: string, params: Param[], opts?: RequestOptions): Promise<number>;
  invalidateQuery(query: string, opts?: RequestOptions): Promise<number | bigint>;
  stats(opts?: RequestOptions): Promise<Stats>;
  ping(opts?: RequestOptions): Promise<void>;
  /** SHOW a view (admin): its rows. */
  show(view: ShowView | string, opts?: RequestOptions): Promise<Row[]>;
  /** ADMIN pause: the query bypasses the cache on this server until resume. */
  pause(query: string, opts?: RequestOptions): Promise<PauseResult>;
  /** ADMIN resume: the cache serves the query again. */
  resume(query: string, opts?: RequestOptions): Promise<PauseResult>;
  /** ADMIN claim: this server's definition of the query takes its cache over from another's. */
  claim(query: string, opts?: RequestOptions): Promise<ClaimResult>;
  /** ADMIN reload, resolved when it has ended (default timeout: max(timeout, 30 s)). */
  reload(opts?: RequestOptions): Promise<ReloadResult>;
  close(): Promise<void>;
}

export function createClient(opts?: ClientOptions): Client;
export function createPool(opts?: PoolOptions): Pool;

export const Codes: Readonly<{
  UNKNOWN_QUERY: 1;
  BAD_PARAMS: 2;
  OVERLOADED: 3;
  UNAVAILABLE: 4;
  TOO_LARGE: 5;
  AUTH: 6;
  PROTOCOL: 7;
  INTERNAL: 8;
  TIMEOUT: 9;
  SHUTTING_DOWN: 10;
  FUTURE_LSN: 11;
  NO_SHARD: 12;
  IO: 100;
  CLIENT_TIMEOUT: 101;
  CLOSED: 102;
  BAD_REPLY: 103;
  BAD_ARGUMENT: 105;
  CONNECT: 106;
}>;

export type CodeName =
  | 'unknown_query' | 'bad_params' | 'overloaded' | 'unavailable' | 'too_large' | 'auth' | 'protocol'
  | 'internal' | 'timeout' | 'shutting_down' | 'future_lsn' | 'no_shard' | 'io' | 'client_timeout' | 'closed' | 'bad_reply'
  | 'bad_argument' | 'connect';

export function codeName(code: number): CodeName;

export class CacheError extends Error {
  constructor(code: number, message: string, extra?: { fromServer?: boolean; wireCode?: number; cause?: unknown });
  name: 'CacheError';
  /** Stable numeric code (Codes); an unknown server code is INTERNAL. */
  code: number;
  codeName: CodeName;
  /** The code as sent (differs from code only for server codes this client does not know). */
  wireCode: number;
  /** True for errors the server sent. */
  fromServer: boolean;
  /** The server's message (server errors only). */
  serverMessage?: string;
  /** True when the error closed the connection (protocol, io, bad_reply, closed). */
  readonly closesConnection: boolean;
}

/** An exact decimal (numeric) kept as its text. */
export class Decimal {
  constructor(text: string);
  readonly value: string;
  toString(): string;
  toJSON(): string;
  toNumber(): number;
  toBigInt(): bigint;
  isNaN(): boolean;
}

/** A Date that keeps nanoseconds (timestamp and timestamptz cells). */
export class Timestamp extends Date {
  constructor(seconds: bigint | number, nanoseconds?: number);
  readonly seconds: bigint;
  /** 0..999999999 within the second. */
  readonly nanoseconds: number;
  readonly epochNanoseconds: bigint;
  toISOStringNano(): string;
  static fromDate(d: Date): Timestamp;
}

/** "16/B374D848" -> 0x16B374D848n. */
export function parseLsn(text: string): bigint;
/** 0x16B374D848n -> "16/B374D848". */
export function formatLsn(lsn: LsnLike): string;
/** "s1:0/16B3748" -> {shard: "s1", lsn: 0x16B3748n}; "16/B374D848" -> {shard: null, lsn}. */
export function parseToken(text: string): Token;
/** {shard: "s1", lsn: 0x16B3748n} -> "s1:0/16B3748" (shard null: "X/Y"). */
export function formatToken(t: TokenLike): string;
/** Delay in ms before reconnect attempt n (1-based). */
export function backoffDelay(n: number, r: Required<ReconnectOptions>, random?: () => number): number;

export const Source: Readonly<{ CACHE: 'cache'; REPLICA: 'replica'; PRIMARY: 'primary' }>;
export const Tier: Readonly<{ CRITICAL: 0; DEFAULT: 1; BATCH: 2 }>;
export const ColumnType: Readonly<{
  BOOL: 1; INT: 2; FLOAT: 3; TEXT: 4; BYTEA: 5; TIMESTAMP: 6; TIMESTAMPTZ: 7; NUMERIC: 8; JSON: 9; OTHER: 10;
}>;
export const TYPE_NAMES: Readonly<Record<number, string>>;
export const TIERS: Readonly<Record<TierName, 0 | 1 | 2>>;
export const LIMITS: Readonly<Record<string, number>>;
