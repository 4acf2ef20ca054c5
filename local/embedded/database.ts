/**
 * The local gateway's embedded store: SQLite (node-sqlite3-wasm, a WebAssembly build with a
 * Node.js file-system VFS: no compiler, no native binary, nothing but the npm registry).
 *
 * Durability: `journal_mode=WAL` with `synchronous=NORMAL` (default) writes every committed
 * transaction to the WAL file before COMMIT returns, so a process that is killed (kill -9, crash)
 * loses nothing it committed; an OS crash or power loss may lose the transactions since the last
 * checkpoint (the WAL is fsynced at checkpoints). `synchronous: 'FULL'` fsyncs the WAL on every
 * commit and survives power loss too, at about 0.3-0.7 ms per commit here. The VFS has no shared
 * memory, so the database is opened in `locking_mode=EXCLUSIVE` (one process, which the gateway
 * is) and a lock file in the state directory keeps a second gateway out.
 *
 * Commits: `transaction` commits before it returns (vault, admin, anything rare). The request
 * path's writes (`deferred`: reservations, settles, usage records, cache entries) go into one
 * open transaction that is committed once at the end of the current event-loop turn, for every
 * request that wrote during it (group commit: a hot page such as a tenant's spend counter goes
 * to the WAL once per turn, not once per write). A writer that must not go on before its write
 * is on disk awaits `durable()`: a reservation before the provider is called, the usage record
 * before the router's end stage finishes, and the local gateway holds the answer's last byte
 * until then. So a request's settle and its usage record share one commit, and an answered
 * request is committed, as before. Those two waits use `durableNow()`: when the gateway has no
 * other request in flight (`soleRequest`), no other write can join the group, so it is committed
 * at once instead of after the rest of the turn (node's own work on the upstream socket, for one). A failed commit rolls the whole group back and fails every
 * writer waiting on it: a reservation fails closed; a settle and a usage record are written
 * again at once, in one new group (their adapters), and the answer waits for that.
 *
 * Usage records do not go through the WAL on the request path: a group's records are written to
 * the usage journal (usage-journal.ts: one write, before the group's COMMIT, so a record is on
 * disk before the settle that shares its group), and moved into the usage table in batches of a
 * few hundred, off the request path, and before any statement that touches that table; the
 * journal is emptied once they are committed there, and one a killed process left is moved in
 * when the store opens. That saves the request the usage table's page in the WAL and every page a
 * B-tree split of it writes (about 2.6 frames of 4 KB, two writes each, per record).
 *
 * Checkpoints are off the request path: SQLite's automatic checkpoint (at COMMIT, every N WAL
 * pages: an event-loop pause of tens of ms while every request in flight waits, about every
 * 1,000 requests) is off. A timer checkpoints when no commit came for IDLE_CHECKPOINT_MS and,
 * under sustained load, after MAX_COMMITS_PER_CHECKPOINT commits or once the WAL outgrows
 * MAX_WAL_BYTES (one pause of ~15-35 ms here, every few thousand requests: outside p99). The WAL
 * file is then rewritten from its start in place (RESTART; journal_size_limit caps it), which
 * costs less per write than growing a file. Once a second while commits come, the WAL is also
 * flushed to disk by an fdatasync on the thread pool (off the event loop): that halves the
 * checkpoint's pause (its own fsync finds little left) and bounds what a power loss can take
 * under synchronous=NORMAL to about the last second of commits. A killed process loses nothing
 * committed either way.
 *
 * Every call is synchronous and the process has one JavaScript thread, so a write runs from its
 * SAVEPOINT to its RELEASE without anything interleaving: conditional writes and budget
 * reservations are exact. Statements are prepared once and reused, with their column names.
 *
 * Rows of tenants, tokens, secrets and erasure keys are read through an exact in-process cache
 * (`rows`, read by embedded-router-store.ts): only this process writes the database (EXCLUSIVE lock, lock file), and every
 * statement that may change those tables (any statement but a SELECT or a write to one of the
 * request-path tables), and every rollback, clears it before it runs. See row-cache.ts.
 */
import { closeSync, existsSync, fdatasync, mkdirSync, openSync, readFileSync, rmSync, statSync, writeSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import * as sqliteModule from 'node-sqlite3-wasm';
import { Database, Statement } from 'node-sqlite3-wasm';
import { clearsCounterMirror, CounterMirror, CounterRow } from './counter-mirror';
import { CREATES_TRIGGER, RowCache, invalidatesRowCache } from './row-cache';
import { countersByKeySql } from './rows';
import { pushCounterParams, upsertSql } from './counter-sql';
import { foldLedgerEntries, LedgerEntry } from './ledger-batch';
import { frameOf, INSERT_USAGE_SQL, JournaledLedgerWrite, JournaledReservation, ledgerFrameOf, reservationFrameOf, USAGE_JOURNAL_FILE, UsageJournal, UsageRow } from './usage-journal';

export type SqlValue = number | string | null | Uint8Array;
export type Row = Record<string, number | bigint | string | Uint8Array | null>;
export type SyncMode = 'NORMAL' | 'FULL';

export interface EmbeddedDatabaseOptions {
  /** Directory of the database (created 0700); undefined: in memory, gone with the process. */
  readonly dir?: string;
  /** @default 'NORMAL' (survives a killed process; FULL also survives power loss) */
  readonly synchronous?: SyncMode;
  /**
   * Whether the caller of `durableNow()` is the gateway's only request in flight: then no other
   * request's write can join the open group, and it is committed at once instead of at the end of
   * the turn. @default never (always the end of the turn)
   */
  readonly soleRequest?: () => boolean;
  /** Told about a group commit that failed while no writer was waiting on it. @default none */
  readonly onCommitError?: (err: unknown) => void;
  /** Told about a failed timer checkpoint or background flush of the WAL (the store goes on). @default none */
  readonly onBackgroundError?: (err: unknown) => void;
  /** WAL size that triggers a checkpoint although commits keep coming. @default 64 MiB */
  readonly maxWalBytes?: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta(name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tenants(tenant_id TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS secrets(
  tenant_id TEXT NOT NULL, provider TEXT NOT NULL, name TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY(tenant_id, provider, name)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tokens(verifier TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, token_id TEXT NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tokens_by_tenant ON tokens(tenant_id, token_id);
CREATE TABLE IF NOT EXISTS erasure_keys(tenant_id TEXT PRIMARY KEY, body TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS audit(tenant_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL, PRIMARY KEY(tenant_id, seq)) WITHOUT ROWID;
-- Governance counters and budget reservations share one table (reservation rows: pk RESV#<tenant>,
-- reclaim_after and body set; counter rows: SPEND#/RATE#, both NULL), so a request's reservation
-- lands on the page of its counters: one page per ledger write, not two (migrateStore below).
CREATE TABLE IF NOT EXISTS counters(
  pk TEXT NOT NULL, sk TEXT NOT NULL,
  spentMicros INTEGER, reservedMicros INTEGER, committedMicros INTEGER, requests INTEGER, tokens INTEGER,
  expires_at INTEGER, token_id TEXT, reclaim_after INTEGER, body TEXT,
  PRIMARY KEY(pk, sk)) WITHOUT ROWID;
-- Usage records clustered by (tenant_id, sk): an append writes one page, not a table page and an
-- index page (stores made before this are migrated on open, migrateStore below).
CREATE TABLE IF NOT EXISTS usage(
  tenant_id TEXT NOT NULL, sk TEXT NOT NULL, at TEXT NOT NULL, request_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY(tenant_id, sk)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS response_cache(key TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, expires_at INTEGER NOT NULL, sealed BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS response_cache_expiry ON response_cache(expires_at);
-- Expiry indexes of the request path's tables cost pages on every request; the sweep
-- (expiry.ts) does without them: usage sort keys grow with time, counters (and reservations) are few.
DROP INDEX IF EXISTS usage_expiry;
DROP INDEX IF EXISTS counters_expiry;
DROP INDEX IF EXISTS reservations_expiry;
`;

/**
 * Brings a store made by an earlier version to this schema, in one transaction (a failure leaves
 * it as it was; no row is lost: every copy is a plain INSERT, which fails rather than drop a
 * colliding row, and the sources are dropped only after):
 * - usage records in a rowid table with a unique (tenant_id, sk) index are copied into the
 *   clustered table;
 * - reservations in a table of their own move into the counters table (their keys, RESV#..., are
 *   apart from every counter key).
 */
function migrateStore(db: Database): void {
  const columnsOf = (table: string) => (db.all(`PRAGMA table_info(${table})`) as Row[]).map((c) => String(c.name));
  const counters = columnsOf('counters');
  const steps: string[] = [];
  if (!counters.includes('reclaim_after')) steps.push('ALTER TABLE counters ADD COLUMN reclaim_after INTEGER');
  if (!counters.includes('body')) steps.push('ALTER TABLE counters ADD COLUMN body TEXT');
  if (columnsOf('reservations').length > 0) {
    steps.push(
      'INSERT INTO counters(pk, sk, reclaim_after, expires_at, body) SELECT pk, sk, reclaim_after, expires_at, body FROM reservations',
      'DROP TABLE reservations',
    );
  }
  if (columnsOf('usage').includes('id')) {
    steps.push(
      `CREATE TABLE usage_clustered(
        tenant_id TEXT NOT NULL, sk TEXT NOT NULL, at TEXT NOT NULL, request_id TEXT NOT NULL,
        expires_at INTEGER NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY(tenant_id, sk)) WITHOUT ROWID`,
      `INSERT INTO usage_clustered(tenant_id, sk, at, request_id, expires_at, body)
        SELECT tenant_id, sk, at, request_id, expires_at, body FROM usage ORDER BY tenant_id, sk`,
      'DROP TABLE usage',
      'ALTER TABLE usage_clustered RENAME TO usage',
    );
  }
  if (steps.length === 0) return;
  db.exec('BEGIN IMMEDIATE');
  try {
    for (const step of steps) db.exec(step);
    db.exec('COMMIT');
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}

export const DATABASE_FILE = 'gateway.sqlite';
const LOCK_FILE = 'gateway.lock';
/** A checkpoint when no commit came for this long (the gateway is idle). */
const IDLE_CHECKPOINT_MS = 250;
/** Under sustained load, a checkpoint once the WAL is this large (~16,000 pages). */
const MAX_WAL_BYTES = 64 * 1024 * 1024;
/**
 * Under sustained load, also a checkpoint after this many commits (the WAL file is reused in
 * place, not truncated, so its size says only that the content outgrew it).
 */
const MAX_COMMITS_PER_CHECKPOINT = 8_000;
/** The WAL file is trimmed to this size after a checkpoint (and reused in place below it). */
const JOURNAL_SIZE_LIMIT = MAX_WAL_BYTES;
const CHECKPOINT_TIMER_MS = 100;
/** How often the WAL is flushed to disk in the background while commits come. */
const WAL_SYNC_INTERVAL_MS = 1_000;
/**
 * Once this many usage records wait in the journal, they are moved into the table right after the
 * commit that wrote the last of them (setImmediate: after the answers it held); when idle, any.
 * Small batches: a record held in memory for long would outlive the young generation of the heap.
 */
const JOURNAL_IMPORT_ROWS = 128;
/** Records kept in the journal at most: past this, a commit moves them into the table at once. */
const MAX_JOURNAL_ROWS = 4_096;
/** Statements that touch the usage table: the journal's records are moved into it first. */
const TOUCHES_USAGE = /\busage\b/i;

/**
 * A long text parameter as its UTF-8 bytes, for a statement that binds it as `CAST(? AS TEXT)`:
 * the binding encodes a string to UTF-8 in JavaScript, character by character (about 2.5 µs for a
 * 600-character usage record here), a Buffer is encoded natively and copied in one go (about 1 µs
 * with the cast). The stored value is the same TEXT. Worth it from a few hundred characters;
 * shorter strings are bound as they are.
 */
export function textBytes(s: string): Uint8Array {
  return Buffer.from(s, 'utf8');
}

/**
 * The binding passes a string to SQLite as a NUL-terminated C string, encoded by its own UTF-8
 * encoder: a NUL cuts the text short and a string that is not well-formed UTF-16 (lone or
 * reversed surrogates) can come out as another text. Either way a key would name another row
 * ('acme\0x' is 'acme'), behind the row cache and the counter mirror, which key by the exact
 * JavaScript string. Such a value is refused before it is bound (no JSON text holds one:
 * JSON.stringify escapes both).
 */
const UNBINDABLE = 'embedded store: a text value holds a NUL character or is not well-formed Unicode, which SQLite would store as another text; refused';

function assertBindableValue(v: SqlValue): void {
  if (typeof v === 'string' && (v.includes('\0') || !(v as unknown as { isWellFormed(): boolean }).isWellFormed())) throw new Error(UNBINDABLE);
}

function assertBindable(params: readonly SqlValue[]): void {
  for (let i = 0; i < params.length; i++) assertBindableValue(params[i]);
}

/** Statements that never change the cached tables (row-cache.ts). */
interface Prepared {
  readonly stmt: Statement;
  readonly invalidates: boolean;
  /** May write a counters row (counter-mirror.ts). */
  readonly clearsCounters: boolean;
  /** Reads or writes the usage table (the journal is moved into it first). */
  readonly touchesUsage: boolean;
  /** Column names of a query, read once (the binding asks SQLite for them on every call). */
  columns?: string[];
  /**
   * The values bound to the statement now (fast path): sqlite3_reset keeps bindings, so the next
   * run binds only the parameters whose value differs (a request's counter keys, expiries and
   * amounts are mostly the last request's). Undefined: unknown, everything is bound afresh.
   */
  bound?: SqlValue[];
}

/**
 * Journaled ledger writes waiting for their SQL at most: past this, a commit applies them. Below
 * it they wait for a reader that needs them, a move of the journal's usage records into the table
 * (every JOURNAL_IMPORT_ROWS records), or the timer.
 */
const MAX_PENDING_LEDGER = 256;
const LEDGER_STUCK = 'embedded store: journaled ledger writes could not be applied; refusing further writes until they are';

/** The meta row holding the highest reservation sequence number applied, in order (usage-journal.ts). */
const APPLIED_SEQ = 'journal.reservations.applied';
const APPLIED_SEQ_SQL = 'INSERT OR REPLACE INTO meta(name, value) VALUES (?, ?)';
const RESERVATIONS_OF_SQL = 'SELECT sk FROM counters WHERE pk = ? AND body IS NOT NULL LIMIT ?';
/** A tenant with more reservation rows than this (a crash under heavy load left them) has its reservations committed at once until reclaims thin them. */
const MAX_LOADED_RESERVATIONS = 1_000;

/** sqlite3_changes() of the WebAssembly module (the package exports its C functions). */
const sqliteChanges = (sqliteModule as unknown as { _sqlite3_changes?: (db: number) => number })._sqlite3_changes;
/** sqlite3_reset() of the WebAssembly module: ends a run and keeps the bound values (clear_bindings is not called). */
const sqliteReset = (sqliteModule as unknown as { _sqlite3_reset?: (stmt: number) => number })._sqlite3_reset;

/** node-sqlite3-wasm's statement internals used for single-row reads without per-call column lookups. */
interface StatementInternals {
  _ptr: number;
  _bind(values: readonly SqlValue[]): void;
  _bindValue(value: SqlValue, position: number): void;
  _step(): boolean;
  _getRow(columns: string[], expand: boolean): Row;
  _getColumnNames(): string[];
  _reset(): boolean;
}

/** A SQLite database with a statement cache, group commit and an exact cache of sealed rows. */
export class EmbeddedDatabase {
  private readonly db: Database;
  private readonly statements = new Map<string, Prepared>();
  private readonly lockPath?: string;
  private readonly walPath?: string;
  private readonly onCommitError?: (err: unknown) => void;
  private readonly soleRequest?: () => boolean;
  private readonly onBackgroundError?: (err: unknown) => void;
  private readonly fast: boolean;
  private readonly maxWalBytes: number;
  private closed = false;
  /** The open group transaction (BEGIN IMMEDIATE ran, COMMIT did not). */
  private open = false;
  /** Nesting depth of write(): only the outermost commits. */
  private depth = 0;
  private commitScheduled = false;
  private waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private checkpointTimer?: NodeJS.Timeout;
  private lastCommitAt = 0;
  private commitsSinceCheckpoint = 0;
  /** Commits so far (tests: a request's writes share one). */
  commits = 0;
  /** Checkpoints run by the timer so far. */
  checkpoints = 0;
  /** Longest checkpoint so far, ms (the pause the event loop took for it). */
  maxCheckpointMs = 0;
  /** A background flush of the WAL is running (fdatasync on the thread pool). */
  private walSyncing = false;
  /** Background flushes of the WAL so far (tests). */
  walSyncs = 0;
  private lastWalSyncAt = 0;
  private commitsAtWalSync = 0;
  private walFd?: number;
  /** Exact cache of tenants, tokens, secrets and erasure-key rows (row-cache.ts). */
  readonly rows = new RowCache();
  /** Exact mirror of governance counter rows (counter-mirror.ts). */
  readonly counters = new CounterMirror();
  /** The usage records' journal (usage-journal.ts); undefined in memory (records go into the table). */
  private readonly journal?: UsageJournal;
  private readonly syncJournal: boolean;
  /** Usage records of the open group, not yet written anywhere (their frames, and the rows). */
  private groupFrames: Buffer[] = [];
  private groupRows: UsageRow[] = [];
  /** Rows in the journal file and not in the table (or in it only uncommitted). */
  private journaled: UsageRow[] = [];
  /** Rows of the journal moved into the table in the open group: the journal is emptied when it commits. */
  private importedInGroup: UsageRow[] = [];
  /** The journal's rows are being moved into the table (its statements do not start another move). */
  private importing = false;
  private moveScheduled = false;
  /** Moves of the journal into the table so far (tests). */
  journalImports = 0;
  /** Journaled ledger writes whose SQL has not run yet (`deferredApply`, `journalReservation`), in order. */
  private pending: LedgerEntry[] = [];
  /** Journaled ledger writes applied in the open group: applied again if the group fails. */
  private appliedInGroup: LedgerEntry[] = [];
  private draining = false;
  /** The open group holds a write that no journal frame covers (it must be committed before its writer goes on). */
  private groupUncovered = false;
  /** A journaled ledger write could not be applied: the journal is kept for the next open to replay. */
  private keepJournal = false;
  /** Journaled ledger writes replayed when the store opened (tests). */
  replayedLedgerWrites = 0;
  /** Journaled reservations replayed when the store opened (tests). */
  replayedReservations = 0;
  /** The last reservation sequence number handed out (usage-journal.ts). */
  private reservationSeq = 0;
  /** The journaled ledger writes could not be applied: they wait, and no new reservation is taken. */
  private ledgerStuck = false;

  constructor(opts: EmbeddedDatabaseOptions = {}) {
    let file = ':memory:';
    this.onCommitError = opts.onCommitError;
    this.soleRequest = opts.soleRequest;
    this.onBackgroundError = opts.onBackgroundError;
    this.maxWalBytes = opts.maxWalBytes ?? MAX_WAL_BYTES;
    if (opts.dir) {
      mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
      chmodSync(opts.dir, 0o700);
      this.lockPath = join(opts.dir, LOCK_FILE);
      takeLock(this.lockPath, join(opts.dir, DATABASE_FILE));
      file = join(opts.dir, DATABASE_FILE);
      this.walPath = `${file}-wal`;
    }
    try {
      this.db = new Database(file);
      if (opts.dir) {
        this.db.exec('PRAGMA locking_mode=EXCLUSIVE');
        const mode = this.db.all('PRAGMA journal_mode=WAL')[0] as Row | undefined;
        if (mode?.journal_mode !== 'wal') throw new Error(`the embedded store could not enter WAL mode (${String(mode?.journal_mode)})`);
        this.db.exec(`PRAGMA synchronous=${opts.synchronous ?? 'NORMAL'}`);
        // No checkpoint at COMMIT (a stall on the request path): the timer below runs them.
        this.db.exec('PRAGMA wal_autocheckpoint=0');
        this.db.exec(`PRAGMA journal_size_limit=${JOURNAL_SIZE_LIMIT}`);
        for (const f of [DATABASE_FILE, `${DATABASE_FILE}-wal`]) if (existsSync(join(opts.dir, f))) chmodSync(join(opts.dir, f), 0o600);
      }
      this.db.exec('PRAGMA foreign_keys=OFF');
      this.db.exec(SCHEMA);
      migrateStore(this.db);
      // The row cache relies on every write changing only its target table.
      if (Number((this.db.all("SELECT count(*) AS n FROM sqlite_master WHERE type = 'trigger'")[0] as Row).n) > 0) {
        throw new Error('the embedded store holds triggers, which this gateway does not create; refusing to open it');
      }
    } catch (err) {
      if (this.lockPath) rmSync(this.lockPath, { force: true });
      throw err;
    }
    // The internals this class uses for speed, checked once: without them it uses the public API.
    this.fast = this.internalsWork();
    this.syncJournal = opts.synchronous === 'FULL';
    if (opts.dir) {
      try {
        this.journal = new UsageJournal(join(opts.dir, USAGE_JOURNAL_FILE));
        // What a killed process left in the journal goes into the database before anything reads
        // it: its settles (each applied only if its reservation row is still there) and its records.
        const entries = this.journal.recover();
        const ledger: ({ readonly ledger: JournaledLedgerWrite } | { readonly reservation: JournaledReservation })[] = [];
        for (const e of entries) {
          if ('row' in e) this.journaled.push(e.row);
          else ledger.push(e);
        }
        this.reservationSeq = this.appliedReservationSeq();
        if (ledger.length > 0) this.deferred(() => this.replayLedger(ledger), false, true);
        this.importJournal();
        this.flush();
        if (this.journaled.length > 0 || this.open) throw new Error('embedded store: the usage journal could not be moved into the database');
        this.journal.clear();
      } catch (err) {
        this.journal?.close();
        this.db.close();
        if (this.lockPath) rmSync(this.lockPath, { force: true });
        throw err;
      }
    }
    if (opts.dir) {
      this.checkpointTimer = setInterval(() => this.checkpointIfDue(), CHECKPOINT_TIMER_MS);
      this.checkpointTimer.unref();
    }
  }

  /** A prepared statement; clears the caches it may make stale before it runs (`mirrored`: the caller keeps the counter mirror). */
  private prepared(sql: string, mirrored = false): Prepared {
    let p = this.statements.get(sql);
    if (!p) {
      if (CREATES_TRIGGER.test(sql)) throw new Error('embedded store: triggers are not allowed (the row cache relies on their absence)');
      p = { stmt: this.db.prepare(sql), invalidates: invalidatesRowCache(sql), clearsCounters: clearsCounterMirror(sql), touchesUsage: TOUCHES_USAGE.test(sql) };
      this.statements.set(sql, p);
    }
    if (p.touchesUsage && !this.importing) this.importJournal();
    if (p.invalidates) this.rows.clear();
    if (p.clearsCounters && !mirrored) this.counters.clear();
    return p;
  }

  /** Forgets everything read through the caches (a rollback, an undo, a failed or lost group). */
  private forgetReads(): void {
    this.rows.clear();
    this.counters.clear();
    // A journal's rows moved into the table in this group may have been undone with it: they are
    // moved again (a second move of a row writes the same row), and the journal is kept until then.
    if (this.importedInGroup.length > 0) {
      this.journaled = this.importedInGroup.concat(this.journaled);
      this.importedInGroup = [];
    }
  }

  /**
   * Counters rows by key, through the exact mirror (counter-mirror.ts): keys it does not know are
   * read in one SELECT and remembered. Undefined for a key with no row. Rows the mirror does not
   * hold (values that are not exact numbers) are returned as SQLite gives them.
   */
  counterRows(keys: readonly { readonly pk: string; readonly sk: string }[]): (CounterRow | Row | undefined)[] {
    // A group SQLite rolled back by itself (after an error) took its uncommitted counters with it.
    if (this.open && !this.db.inTransaction) this.forgetReads();
    const out: (CounterRow | Row | undefined)[] = new Array(keys.length);
    let missing: number[] | undefined;
    for (let i = 0; i < keys.length; i++) {
      const known = this.counters.get(keys[i].pk, keys[i].sk);
      if (known === undefined) (missing ??= []).push(i);
      else out[i] = known ?? undefined;
    }
    // The mirror holds the journaled writes whose SQL has not run yet; SQLite holds them once drained.
    if (!missing) return out;
    if (this.pending.length > 0) {
      this.drain();
      // SQLite without them would answer counters that are not exact: refused, not guessed.
      if (this.pending.length > 0) throw new Error(LEDGER_STUCK);
      if (this.open && !this.db.inTransaction) this.forgetReads();
      return this.counterRows(keys);
    }
    const params: string[] = [];
    for (const i of missing) params.push(keys[i].pk, keys[i].sk);
    const found = new Map<string, Row>();
    for (const row of this.all(countersByKeySql(missing.length), params)) found.set(`${String(row.pk).length}:${String(row.pk)}${String(row.sk)}`, row);
    for (const i of missing) {
      const { pk, sk } = keys[i];
      const row = found.get(`${pk.length}:${pk}${sk}`);
      this.counters.remember(pk, sk, row);
      out[i] = row;
    }
    return out;
  }

  /**
   * A write to the counters table that leaves the counter mirror in place: the caller (the
   * governance ledger, inside a `deferred` write, so any failure clears the mirror) updates or
   * forgets the rows it changed. Returns the number of rows changed.
   */
  runMirrored(sql: string, params: readonly SqlValue[]): number {
    return this.runPrepared(this.prepared(sql, true), params);
  }

  /** All rows (always stepped to the end, so no statement stays open). */
  all(sql: string, params: readonly SqlValue[] = []): Row[] {
    this.drain();
    const p = this.prepared(sql);
    if (!this.fast) {
      assertBindable(params);
      return p.stmt.all(params as SqlValue[]) as Row[];
    }
    const s = this.bound(p, params);
    const columns = (p.columns ??= s._getColumnNames());
    const rows: Row[] = [];
    try {
      while (s._step()) rows.push(s._getRow(columns, false));
    } finally {
      sqliteReset!(s._ptr);
    }
    return rows;
  }

  /** The first row, or undefined; the statement is reset after it (nothing stays open). */
  one(sql: string, params: readonly SqlValue[] = []): Row | undefined {
    this.drain();
    const p = this.prepared(sql);
    if (!this.fast) {
      assertBindable(params);
      return (p.stmt.all(params as SqlValue[]) as Row[])[0];
    }
    const s = this.bound(p, params);
    try {
      if (!s._step()) return undefined;
      return s._getRow((p.columns ??= s._getColumnNames()), false);
    } finally {
      sqliteReset!(s._ptr);
    }
  }

  /** Runs a write; returns the number of rows changed. */
  run(sql: string, params: readonly SqlValue[] = []): number {
    this.drain();
    return this.runPrepared(this.prepared(sql), params);
  }

  private runPrepared(p: Prepared, params: readonly SqlValue[]): number {
    if (!this.fast) {
      assertBindable(params);
      return p.stmt.run(params as SqlValue[]).changes;
    }
    // The binding's run() also reads the last rowid (a 64-bit value through BigInt) on every call.
    const s = this.bound(p, params);
    try {
      s._step();
    } finally {
      sqliteReset!(s._ptr); // nothing stays open, and no failure lingers on the statement
    }
    return sqliteChanges!(this.dbPointer());
  }

  /**
   * Binds `params` to a statement that is reset (fast path). Only the values that differ from
   * those bound now are bound (a string or number equal to the bound one is the same binding;
   * a byte array is always bound again, its content may have changed); a different count binds
   * everything afresh, clearing the rest. Until every bind succeeded, the bound values are unknown.
   */
  private bound(p: Prepared, params: readonly SqlValue[]): StatementInternals {
    const s = p.stmt as unknown as StatementInternals;
    const last = p.bound;
    p.bound = undefined;
    if (last !== undefined && last.length === params.length) {
      for (let i = 0; i < params.length; i++) {
        const v = params[i];
        if (v === last[i] && (v === null || typeof v !== 'object')) continue;
        assertBindableValue(v);
        s._bindValue(v, i + 1);
      }
    } else {
      assertBindable(params);
      s._bind(params); // clear_bindings, reset, every value
    }
    p.bound = params.slice();
    return s;
  }

  /**
   * A single-statement write in the open group transaction (see `deferred`). A statement is
   * atomic by itself (SQLite undoes a failed one and nothing else), so it needs no savepoint.
   */
  deferredRun(sql: string, params: readonly SqlValue[] = []): number {
    return this.deferred(() => this.run(sql, params), true);
  }

  /**
   * A usage record in the open group: written to the journal (one write for the group's records)
   * right before the group's COMMIT, so it is on disk when `durable()` resolves, or the group fails
   * as a whole. Without a journal (in memory), a row of the usage table in the open group.
   */
  deferredUsage(row: UsageRow): void {
    if (!this.journal) {
      this.deferredRun(INSERT_USAGE_SQL, row);
      return;
    }
    if (this.closed) throw new Error('embedded store: the database is closed');
    this.groupFrames.push(frameOf(row));
    this.groupRows.push(row);
    if (this.depth === 0 && !this.commitScheduled) {
      this.commitScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** Whether writes can be journaled before their SQL runs (a store on disk, open). */
  get journaling(): boolean {
    return this.journal !== undefined && !this.closed;
  }

  /**
   * A ledger write whose outcome is known now (its caller checked its only condition, which
   * nothing can change before its SQL runs, and updated the counter mirror): its frame joins the
   * open group's usage records, so it is on disk when `durableNow()` or `durable()` resolves; its
   * SQL runs later, folded with the other journaled writes (ledger-batch.ts), before any statement
   * that could see it missing (`drain`). A request's settle so costs its answer one write to the
   * journal. If the group that applies it fails, it is applied again in the next one; if it cannot
   * be applied, the journal is kept, and the next open replays it (usage-journal.ts).
   */
  deferredApply(entry: JournaledLedgerWrite): void {
    if (!this.journal) throw new Error('embedded store: no journal (in memory)');
    if (this.closed) throw new Error('embedded store: the database is closed');
    this.groupFrames.push(ledgerFrameOf(entry));
    this.pending.push({ settle: entry });
    this.scheduleFlush();
  }

  /**
   * Whether a new reservation may be journaled now (`journalReservation`): a store on disk, open,
   * its journaled ledger writes applied or applicable, and the caller the only request in flight.
   */
  get canJournalReservation(): boolean {
    return this.journal !== undefined && !this.closed && !this.ledgerStuck && this.depth === 0 && this.soleRequest?.() === true;
  }

  /**
   * Whether the reservation row (pk, sk) does not exist, for certain: through the counter mirror,
   * which reads every reservation row of `pk` in one SELECT when it does not know them all (false
   * for a tenant with too many to hold).
   */
  reservationAbsent(pk: string, sk: string): boolean {
    if (!this.counters.knowsAllReservations(pk)) {
      const rows = this.all(RESERVATIONS_OF_SQL, [pk, MAX_LOADED_RESERVATIONS + 1]);
      if (rows.length > MAX_LOADED_RESERVATIONS) return false;
      this.counters.reservationsLoaded(
        pk,
        rows.map((r) => String(r.sk)),
      );
    }
    return this.counters.isReservationAbsent(pk, sk);
  }

  /**
   * A new reservation whose outcome is known now (its caller checked its ceilings through the
   * counter mirror, and that its row does not exist), for the only request in flight: its frame is
   * written to the journal now, with the open group's frames, in one write; on success it is
   * durable, and its SQL runs later, folded with the other journaled writes (`drain`). The group
   * that applies it also stores its sequence number (`APPLIED_SEQ`), so a replay never applies it
   * twice. False, with nothing written or held, when it cannot be journaled now (another request
   * in flight, a write in the open group that no frame covers, a journal move in the group, a
   * failed write): the caller writes it the usual way.
   */
  journalReservation(entry: Omit<JournaledReservation, 'seq'>): boolean {
    if (!this.canJournalReservation || this.groupUncovered || this.importedInGroup.length > 0) return false;
    // A number is never used twice, not even after a failed write (its bytes may be on disk).
    const reserve: JournaledReservation = { seq: ++this.reservationSeq, put: entry.put, counters: entry.counters };
    this.groupFrames.push(reservationFrameOf(reserve));
    try {
      this.appendGroupFrames();
    } catch {
      this.groupFrames.pop(); // the frames are written again, at the same place, by the next write
      return false;
    }
    this.pending.push({ reserve });
    if (this.pending.length >= MAX_PENDING_LEDGER) this.scheduleFlush();
    return true;
  }

  /** A flush at the end of this turn (it commits only what must be: see `flush`). */
  private scheduleFlush(): void {
    if (this.depth === 0 && !this.commitScheduled) {
      this.commitScheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /**
   * Runs the journaled ledger writes' SQL in the open group, folded into one write (ledger-batch.ts)
   * with the highest reservation sequence number it applies; outside any write only. The counter
   * mirror holds them already. If the write fails, they all wait for the next try (in order: the
   * stored sequence number covers only reservations applied in order), the mirror is cleared (it
   * is ahead of SQLite), and no new reservation is taken until they are applied.
   */
  private drain(): void {
    if (this.pending.length === 0 || this.depth > 0 || this.draining) return;
    const batch = this.pending;
    this.pending = [];
    this.draining = true;
    try {
      this.write(() => this.applyLedger(batch), false, true);
      for (const e of batch) this.appliedInGroup.push(e);
      this.ledgerStuck = false;
    } catch (err) {
      // Their frames are on disk (or will be with this group): the next open applies them. In order:
      // a group SQLite rolled back has put the writes an earlier drain applied in it back into
      // `pending` (endGroup), and those come first; nothing else can have joined since.
      this.pending = this.pending.concat(batch);
      this.ledgerStuck = true;
      this.keepJournal = true;
      this.forgetReads();
      this.onBackgroundError?.(err);
    } finally {
      this.draining = false;
    }
    // Applied in the open group: it commits at the end of this turn.
    this.scheduleFlush();
  }

  /** The SQL of journaled ledger writes; the mirror already holds them (mirrored statements). */
  private applyLedger(entries: readonly LedgerEntry[]): void {
    const b = foldLedgerEntries(entries);
    for (const d of b.deletes) {
      if (this.runMirrored('DELETE FROM counters WHERE pk = ? AND sk = ? AND body IS NOT NULL', [d.pk, d.sk]) !== 1) throw new Error('embedded store: a journaled settle found no reservation row');
    }
    for (const p of b.inserts) {
      const params = [p.pk, p.sk, p.reclaimAfter, p.expiresAt, textBytes(p.body)];
      if (this.runMirrored('INSERT INTO counters(pk, sk, reclaim_after, expires_at, body) VALUES (?, ?, ?, ?, CAST(? AS TEXT)) ON CONFLICT(pk, sk) DO NOTHING', params) !== 1) {
        throw new Error('embedded store: a journaled reservation found its row taken');
      }
    }
    if (b.counters.length > 0) {
      const params: SqlValue[] = [];
      for (const u of b.counters) pushCounterParams(params, u);
      this.runMirrored(upsertSql(b.counters.length), params);
    }
    if (b.seq > 0) this.runMirrored(APPLIED_SEQ_SQL, [APPLIED_SEQ, String(b.seq)]);
  }

  /** The highest reservation sequence number applied (0: none yet). */
  private appliedReservationSeq(): number {
    const n = Number(this.one('SELECT value FROM meta WHERE name = ?', [APPLIED_SEQ])?.value ?? 0);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error('embedded store: the stored reservation sequence number is not a number; refusing to open');
    return n;
  }

  /**
   * The journal's ledger writes and reservations, when the store opens, in order: a reservation
   * only above the stored sequence number (it never committed), a settle or release only while its
   * reservation row exists. The highest sequence number seen is stored with them.
   */
  private replayLedger(entries: readonly ({ readonly ledger: JournaledLedgerWrite } | { readonly reservation: JournaledReservation })[]): void {
    const applied = this.reservationSeq;
    let highest = applied;
    for (const e of entries) {
      if ('ledger' in e) {
        this.replayLedgerWrite(e.ledger);
        continue;
      }
      const r = e.reservation;
      highest = Math.max(highest, r.seq);
      if (r.seq <= applied) continue;
      const p = r.put;
      if (this.run('INSERT INTO counters(pk, sk, reclaim_after, expires_at, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT(pk, sk) DO NOTHING', [p.pk, p.sk, p.reclaimAfter, p.expiresAt, p.body]) === 0) continue;
      if (r.counters.length > 0) {
        const params: SqlValue[] = [];
        for (const u of r.counters) pushCounterParams(params, u);
        this.run(upsertSql(r.counters.length), params);
      }
      this.replayedReservations++;
    }
    if (highest > applied) this.run(APPLIED_SEQ_SQL, [APPLIED_SEQ, String(highest)]);
    this.reservationSeq = highest;
  }

  /** A journaled ledger write, when the store opens: applied only while its reservation row exists. */
  private replayLedgerWrite(w: JournaledLedgerWrite): void {
    if (this.run('DELETE FROM counters WHERE pk = ? AND sk = ? AND body IS NOT NULL', [w.reservation.pk, w.reservation.sk]) === 0) return;
    if (w.counters.length > 0) {
      const params: SqlValue[] = [];
      for (const u of w.counters) pushCounterParams(params, u);
      this.run(upsertSql(w.counters.length), params);
    }
    this.replayedLedgerWrites++;
  }

  /**
   * Moves the journal's rows (and the open group's records) into the usage table, in the open
   * group (committed with it; the journal is emptied then). Inside a write, only the journal's
   * rows: that write may still be undone, and the group's records must not go with it.
   */
  private importJournal(): void {
    if (!this.journal || this.importing) return;
    const fromGroup = this.depth === 0 ? this.groupRows : [];
    if (this.journaled.length === 0 && fromGroup.length === 0) return;
    const rows = this.journaled;
    this.importing = true;
    try {
      this.deferred(
        () => {
          const p = this.prepared(INSERT_USAGE_SQL);
          for (const row of rows) this.runPrepared(p, row);
          for (const row of fromGroup) this.runPrepared(p, row);
        },
        false,
        true,
      );
    } finally {
      this.importing = false;
    }
    this.journaled = [];
    this.importedInGroup = this.importedInGroup.concat(rows);
    if (fromGroup.length > 0) {
      this.groupRows = [];
      this.groupFrames = [];
    }
    this.journalImports++;
  }

  /**
   * Runs `fn` as one atomic write, committed before this returns (with any deferred writes still
   * waiting for their group commit); any throw undoes `fn`'s writes and nothing else.
   * `fn` must be synchronous: nothing else runs until it returns.
   */
  transaction<T>(fn: () => T): T {
    const out = this.write(fn);
    if (this.depth === 0) this.commit();
    return out;
  }

  /**
   * Runs `fn` as one atomic write in the open group transaction, committed at the end of this
   * event-loop turn together with every other write of the turn; await `durable()` to know it is
   * on disk. Any throw undoes `fn`'s writes and nothing else.
   */
  deferred<T>(fn: () => T, oneStatement = false, covered = false): T {
    const out = this.write(fn, oneStatement, covered);
    if (this.depth === 0 && this.open && !this.commitScheduled) {
      this.commitScheduled = true;
      setImmediate(() => this.flush());
    }
    return out;
  }

  /**
   * Like `durable()`, for a request that waits on its own writes (a reservation, a usage record):
   * when it is the only request in flight (`soleRequest`), nobody can join the open group, so it
   * is committed now rather than after whatever else the turn holds (node's own work on the
   * upstream socket, for one). Under concurrency the group commits at the end of the turn as before.
   */
  durableNow(): Promise<void> {
    const sole = this.depth === 0 && this.soleRequest?.() === true;
    if (sole && this.journalFirst()) return Promise.resolve();
    const done = this.durable();
    if (sole && this.hasGroup()) this.flush();
    return done;
  }

  /**
   * When every write of the open group is covered by a journal frame (usage records, journaled
   * ledger writes, journal moves), the frames are written now, and the SQL runs and commits after
   * the caller went on (at the end of the turn): the caller's writes are on disk already, and a
   * failed commit is made good from the journal (in this process, or when the store opens next).
   */
  private journalFirst(): boolean {
    if (!this.journal || this.groupUncovered || this.importedInGroup.length > 0 || this.groupFrames.length === 0) return false;
    try {
      this.appendGroupFrames();
    } catch {
      return false; // the commit path writes them again (a failed write is overwritten)
    }
    if (!this.commitScheduled) {
      this.commitScheduled = true;
      setImmediate(() => this.flush());
    }
    return true;
  }

  /** The open group's frames to the journal, in one write; its records are then journaled rows. */
  private appendGroupFrames(): void {
    this.journal!.append(this.groupFrames, this.syncJournal);
    for (const row of this.groupRows) this.journaled.push(row);
    this.groupRows = [];
    this.groupFrames = [];
    if (this.journaled.length >= JOURNAL_IMPORT_ROWS && !this.moveScheduled) {
      this.moveScheduled = true;
      setImmediate(() => {
        this.moveScheduled = false;
        this.moveJournal();
      });
    }
  }

  /** A group is open: SQL writes, journal frames not yet written, or journaled ledger writes not yet applied. */
  private hasGroup(): boolean {
    return this.open || this.groupFrames.length > 0 || this.pending.length > 0;
  }

  /** Resolves once every write made so far is committed; rejects if their commit failed. */
  durable(): Promise<void> {
    if (!this.hasGroup()) return Promise.resolve();
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.scheduleFlush();
    return done;
  }

  close(): void {
    if (this.closed) return;
    if (this.hasGroup()) this.flush(true);
    // A clean stop leaves the journal empty (a failure here leaves it for the next open).
    try {
      this.importJournal();
      this.flush(true);
      if (this.importedInGroup.length === 0 && this.journaled.length === 0 && this.pending.length === 0 && !this.keepJournal) this.journal?.clear();
    } catch {
      // The journal is moved into the table when the store opens next.
    }
    this.closed = true;
    if (!this.walSyncing) this.journal?.close();
    if (this.checkpointTimer) clearInterval(this.checkpointTimer);
    if (this.walFd !== undefined && !this.walSyncing) closeSync(this.walFd);
    if (!this.walSyncing) this.walFd = undefined;
    for (const p of this.statements.values()) {
      try {
        p.stmt.finalize();
      } catch {
        // finalize repeats the statement's last failure (a refused write); it is finalized anyway.
      }
    }
    this.statements.clear();
    this.forgetReads();
    this.db.close();
    if (this.lockPath) rmSync(this.lockPath, { force: true });
  }

  // ------------------------------------------------------------------ internals

  /**
   * Whether the binding's statement internals are there and still mean what the fast paths take
   * them to mean (package-lock pins the version; `^` lets an update in): a probe read through them
   * must give exactly what the public API gives, else the public API is used.
   */
  private internalsWork(): boolean {
    if (typeof this.dbPointer() !== 'number' || typeof sqliteChanges !== 'function' || typeof sqliteReset !== 'function') return false;
    const probe = this.db.prepare("SELECT ? AS n, ? AS t, NULL AS z UNION ALL SELECT 2, 'b', x'01'");
    try {
      const s = probe as unknown as Partial<StatementInternals>;
      if (!(['_bind', '_bindValue', '_step', '_getRow', '_getColumnNames', '_reset'] as const).every((m) => typeof s[m] === 'function')) return false;
      if (typeof s._ptr !== 'number') return false;
      const text = (rows: unknown[]) => JSON.stringify(rows, (_k, v: unknown) => (v instanceof Uint8Array ? Array.from(v) : v));
      const expectedA = text(probe.all([1, 'a']) as unknown[]);
      const expectedC = text(probe.all([1, 'c']) as unknown[]);
      const i = s as StatementInternals;
      const read = (): Row[] | undefined => {
        const rows: Row[] = [];
        try {
          // Bounded: a _step that no longer answers a boolean must not loop here.
          for (let n = 0; n < 3; n++) {
            const more: unknown = i._step();
            if (more !== true && more !== false) return undefined;
            if (!more) break;
            rows.push(i._getRow(i._getColumnNames(), false));
          }
        } finally {
          sqliteReset!(i._ptr);
        }
        return rows;
      };
      // All values bound; then the same run again on the kept bindings; then one value changed.
      i._bind([1, 'a']);
      const first = read();
      const kept = read();
      i._bindValue('c', 2);
      const changed = read();
      i._reset();
      return [first, kept, changed].every((r) => r?.length === 2) && text(first!) === expectedA && text(kept!) === expectedA && text(changed!) === expectedC;
    } catch {
      return false;
    } finally {
      probe.finalize();
    }
  }

  private dbPointer(): number {
    return (this.db as unknown as { _ptr: number })._ptr;
  }

  /** A statement without parameters (transaction control). */
  private exec1(sql: string): void {
    const p = this.prepared(sql);
    if (!this.fast) {
      p.stmt.run();
      return;
    }
    const s = p.stmt as unknown as StatementInternals;
    try {
      s._step();
    } finally {
      sqliteReset!(s._ptr);
    }
  }

  private write<T>(fn: () => T, oneStatement = false, covered = false): T {
    if (this.closed) throw new Error('embedded store: the database is closed');
    // Journaled ledger writes are logically done: their SQL runs before this write reads anything.
    this.drain();
    // ... and if it cannot, nothing else is written on top of a state that lacks them.
    if (this.ledgerStuck && !this.draining) throw new Error(LEDGER_STUCK);
    if (this.open && this.depth === 0 && !this.db.inTransaction) {
      // SQLite rolled the group back by itself (an I/O error or out-of-memory in a read): its
      // writers are told now, and this write goes into a new group, not into autocommit (where it
      // would be stored, and then reported lost by the failing COMMIT).
      this.forgetReads();
      this.endGroup(new Error('embedded store: the open transaction was rolled back after an error'));
    }
    const opened = !this.open;
    if (opened) {
      this.exec1('BEGIN IMMEDIATE');
      this.open = true;
    }
    // A write that opens the group needs no savepoint (undoing it is rolling the group back),
    // nor does a single statement (SQLite undoes a failed statement and nothing else).
    const savepoint = !opened && !oneStatement;
    if (savepoint) this.exec1('SAVEPOINT w');
    if (!covered) this.groupUncovered = true;
    this.depth++;
    try {
      const out = fn();
      if (savepoint) this.exec1('RELEASE w');
      return out;
    } catch (err) {
      this.undo(opened, savepoint);
      throw err;
    } finally {
      this.depth--;
    }
  }

  /** Undoes the failed write only; writes of others in the open group stay. */
  private undo(opened: boolean, savepoint: boolean): void {
    this.forgetReads();
    if (!this.db.inTransaction) {
      // SQLite rolled the whole transaction back itself (I/O error, full disk): the group is lost.
      this.endGroup(new Error('embedded store: a write failed and its transaction was rolled back'));
      return;
    }
    if (opened && this.depth === 1) {
      // Nobody else wrote in this group (nothing interleaves a synchronous write).
      this.db.exec('ROLLBACK');
      this.open = false;
      return;
    }
    if (!savepoint) return; // one statement: SQLite undid it already
    this.exec1('ROLLBACK TO w');
    this.exec1('RELEASE w');
  }

  /** Commits the open group; journaled ledger writes alone wait (see MAX_PENDING_LEDGER) unless `force`d. */
  private flush(force = false): void {
    this.commitScheduled = false;
    if (!this.hasGroup() || this.depth > 0) return;
    // Their frames are on disk and the mirror holds them: nothing needs their SQL yet.
    if (!force && !this.open && this.groupFrames.length === 0 && this.waiters.length === 0 && this.pending.length < MAX_PENDING_LEDGER) return;
    try {
      this.commit();
    } catch (err) {
      if (this.waiters.length === 0) this.onCommitError?.(err);
    }
  }

  /** Commits the open group; on failure rolls it back and fails its waiters (and throws). */
  private commit(): void {
    if (!this.hasGroup()) return;
    this.drain();
    const moved = this.importedInGroup.length > 0;
    try {
      if (moved) {
        // This group empties the journal: its own records go into the table with the rest.
        this.importing = true;
        try {
          const p = this.prepared(INSERT_USAGE_SQL);
          for (const row of this.groupRows) this.runPrepared(p, row);
        } finally {
          this.importing = false;
        }
      } else if (this.groupFrames.length > 0) {
        // Before the COMMIT: a record is on disk before the settle committed with it.
        this.appendGroupFrames();
      }
      this.groupRows = [];
      this.groupFrames = [];
      if (this.open) this.exec1('COMMIT');
    } catch (err) {
      this.forgetReads();
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      this.endGroup(err);
      throw err;
    }
    if (moved) {
      this.importedInGroup = [];
      // Every journaled ledger write is committed too (none pending): the journal holds nothing more.
      if (this.journaled.length === 0 && this.pending.length === 0 && !this.keepJournal) this.journal!.clear();
    }
    this.commits++;
    this.commitsSinceCheckpoint++;
    this.lastCommitAt = Date.now();
    this.endGroup();
    // The timer moves the journal between requests; a loop that never gets to it is bounded here.
    if (this.journaled.length >= MAX_JOURNAL_ROWS) this.moveJournal();
  }

  private endGroup(err?: unknown): void {
    this.open = false;
    this.groupUncovered = false;
    // A failed group's journaled ledger writes are applied again, in the next group.
    if (err !== undefined && this.appliedInGroup.length > 0) this.pending = this.appliedInGroup.concat(this.pending);
    this.appliedInGroup = [];
    // A failed group's records are written again by their writers (embedded-router-store.ts).
    this.groupRows = [];
    this.groupFrames = [];
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) {
      if (err === undefined) w.resolve();
      else w.reject(err);
    }
  }

  /**
   * The timer's checkpoint: when idle, or when the WAL grew past its bound under load. A failure
   * is reported, never thrown out of the timer (an uncaught exception would end the gateway); the
   * commits stay in the WAL and the next tick tries again.
   */
  private checkpointIfDue(): void {
    try {
      this.syncWalInBackground();
      const idle = Date.now() - this.lastCommitAt >= IDLE_CHECKPOINT_MS;
      // Journaled ledger writes left by a failed group (their retry is not a busy loop).
      if (this.pending.length > 0 && !this.commitScheduled && this.depth === 0) this.flush(true);
      if (idle) this.moveJournal();
      if (this.closed || this.open || this.commitsSinceCheckpoint === 0) return;
      if (!idle && this.commitsSinceCheckpoint < MAX_COMMITS_PER_CHECKPOINT && this.walBytes() <= this.maxWalBytes) return;
      this.checkpoint();
    } catch (err) {
      this.onBackgroundError?.(err);
    }
  }

  /**
   * Copies the WAL into the database file; the next commit writes the WAL from its start again
   * (RESTART: there is no other reader to wait for). The file is reused in place: a truncation
   * would cost a pause of its own, and growing a file costs more than rewriting it.
   */
  checkpoint(): void {
    if (this.closed || this.open) return;
    const started = Date.now();
    this.db.all('PRAGMA wal_checkpoint(RESTART)');
    this.commitsSinceCheckpoint = 0;
    this.checkpoints++;
    this.maxCheckpointMs = Math.max(this.maxCheckpointMs, Date.now() - started);
  }

  /**
   * Once a second while commits come, the WAL's dirty pages are flushed to disk by an fdatasync
   * on the thread pool, not on the event loop. An extra flush changes nothing SQLite relies on;
   * it leaves the checkpoint's own fsync of the WAL little to do (a shorter pause), and it
   * narrows what a power loss can take under synchronous=NORMAL to about the last second.
   */
  private syncWalInBackground(): void {
    if (this.closed || this.walSyncing || !this.walPath || this.commits === this.commitsAtWalSync) return;
    const now = Date.now();
    if (now - this.lastWalSyncAt < WAL_SYNC_INTERVAL_MS) return;
    try {
      this.walFd ??= openSync(this.walPath, 'r');
    } catch {
      return; // no WAL yet
    }
    this.walSyncing = true;
    this.lastWalSyncAt = now;
    this.commitsAtWalSync = this.commits;
    this.walSyncs++;
    fdatasync(this.walFd, (err) => {
      // A failed flush loses nothing by itself (the checkpoint's own fsync still comes first), but
      // a disk that fails it is worth a line.
      if (err) this.onBackgroundError?.(err);
      // The usage journal likewise (its records are on disk as the WAL's commits are).
      const journal = this.journal;
      if (!journal || this.closed || journal.bytes === 0) return this.walSynced();
      fdatasync(journal.descriptor, (jerr) => {
        if (jerr) this.onBackgroundError?.(jerr);
        this.walSynced();
      });
    });
  }

  private walSynced(): void {
    this.walSyncing = false;
    if (this.closed) {
      if (this.walFd !== undefined) closeSync(this.walFd);
      this.walFd = undefined;
      this.journal?.close();
    }
  }

  /**
   * Moves the journal's usage records into the table, in a group of their own, committed now
   * (the timer, between requests). A failure is reported; the records stay in the journal.
   */
  private moveJournal(): void {
    try {
      if (this.closed || this.hasGroup() || this.depth > 0 || this.journaled.length === 0) return;
      this.importJournal();
      this.flush();
    } catch (err) {
      this.onBackgroundError?.(err);
    }
  }

  private walBytes(): number {
    try {
      return this.walPath ? statSync(this.walPath).size : 0;
    } catch {
      return 0;
    }
  }
}
/**
 * One gateway per state directory. A lock file naming a live process refuses the start; one left
 * by a killed process is taken over, together with the VFS's own lock directory it left behind.
 */
function takeLock(lockPath: string, dbFile: string): void {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(lockPath, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      // The VFS locks with a `<file>.lock` directory; a killed process leaves it behind.
      rmSync(`${dbFile}.lock`, { recursive: true, force: true });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const pid = Number(readFileSync(lockPath, 'utf8').trim());
      if (Number.isInteger(pid) && pid > 0 && alive(pid)) {
        throw new Error(`another local gateway (pid ${pid}) is using ${lockPath.replace(/\/[^/]+$/, '')}; stop it or use another --state-dir`);
      }
      rmSync(lockPath, { force: true });
    }
  }
  throw new Error(`could not lock ${lockPath}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
