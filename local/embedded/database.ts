/**
 * The local gateway's embedded store: SQLite (node-sqlite3-wasm, a WebAssembly build with a
 * Node.js file-system VFS: no compiler, no native binary, nothing but the npm registry).
 *
 * Durability: `journal_mode=WAL` with `synchronous=NORMAL` (default) writes every committed
 * transaction to the WAL file before COMMIT returns, so a process that is killed (kill -9, crash)
 * loses nothing it committed; an OS crash or power loss may lose the last transactions (the WAL
 * is fsynced at checkpoints). `synchronous: 'FULL'` fsyncs the WAL on every commit and survives
 * power loss too, at about 0.3-0.7 ms per write here. The VFS has no shared memory, so the
 * database is opened in `locking_mode=EXCLUSIVE` (one process, which the gateway is) and a lock
 * file in the state directory keeps a second gateway out.
 *
 * Every call is synchronous and the process has one JavaScript thread, so a transaction runs
 * from BEGIN to COMMIT without anything interleaving: conditional writes and budget
 * reservations are exact. Statements are prepared once and reused.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { Database, Statement } from 'node-sqlite3-wasm';

export type SqlValue = number | string | null | Uint8Array;
export type Row = Record<string, number | bigint | string | Uint8Array | null>;
export type SyncMode = 'NORMAL' | 'FULL';

export interface EmbeddedDatabaseOptions {
  /** Directory of the database (created 0700); undefined: in memory, gone with the process. */
  readonly dir?: string;
  /** @default 'NORMAL' (survives a killed process; FULL also survives power loss) */
  readonly synchronous?: SyncMode;
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
CREATE TABLE IF NOT EXISTS counters(
  pk TEXT NOT NULL, sk TEXT NOT NULL,
  spentMicros INTEGER, reservedMicros INTEGER, committedMicros INTEGER, requests INTEGER, tokens INTEGER,
  expires_at INTEGER, token_id TEXT,
  PRIMARY KEY(pk, sk)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS counters_expiry ON counters(expires_at) WHERE expires_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS reservations(
  pk TEXT NOT NULL, sk TEXT NOT NULL, reclaim_after INTEGER NOT NULL, expires_at INTEGER NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY(pk, sk)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS reservations_expiry ON reservations(expires_at);
CREATE TABLE IF NOT EXISTS usage(
  id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, sk TEXT NOT NULL, at TEXT NOT NULL, request_id TEXT NOT NULL,
  expires_at INTEGER NOT NULL, body TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS usage_by_tenant ON usage(tenant_id, sk);
CREATE INDEX IF NOT EXISTS usage_expiry ON usage(expires_at);
CREATE TABLE IF NOT EXISTS response_cache(key TEXT PRIMARY KEY, tenant_id TEXT NOT NULL, expires_at INTEGER NOT NULL, sealed BLOB NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS response_cache_expiry ON response_cache(expires_at);
`;

export const DATABASE_FILE = 'gateway.sqlite';
const WAL_AUTOCHECKPOINT_PAGES = 10_000;
const LOCK_FILE = 'gateway.lock';

/** A SQLite database with a statement cache and synchronous transactions. */
export class EmbeddedDatabase {
  private readonly db: Database;
  private readonly statements = new Map<string, Statement>();
  private readonly lockPath?: string;
  private closed = false;

  constructor(opts: EmbeddedDatabaseOptions = {}) {
    let file = ':memory:';
    if (opts.dir) {
      mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
      chmodSync(opts.dir, 0o700);
      this.lockPath = join(opts.dir, LOCK_FILE);
      takeLock(this.lockPath, join(opts.dir, DATABASE_FILE));
      file = join(opts.dir, DATABASE_FILE);
    }
    try {
      this.db = new Database(file);
      if (opts.dir) {
        this.db.exec('PRAGMA locking_mode=EXCLUSIVE');
        const mode = this.db.all('PRAGMA journal_mode=WAL')[0] as Row | undefined;
        if (mode?.journal_mode !== 'wal') throw new Error(`the embedded store could not enter WAL mode (${String(mode?.journal_mode)})`);
        this.db.exec(`PRAGMA synchronous=${opts.synchronous ?? 'NORMAL'}`);
        // A checkpoint (two fsyncs and the copy into the database file) every ~10,000 pages
        // written instead of SQLite's 1,000: with about ten pages per request that is one per
        // ~1,000 requests, not per ~100. Durability is the WAL's, before COMMIT returns, either way.
        this.db.exec(`PRAGMA wal_autocheckpoint=${WAL_AUTOCHECKPOINT_PAGES}`);
        for (const f of [DATABASE_FILE, `${DATABASE_FILE}-wal`]) if (existsSync(join(opts.dir, f))) chmodSync(join(opts.dir, f), 0o600);
      }
      this.db.exec('PRAGMA foreign_keys=OFF');
      this.db.exec(SCHEMA);
    } catch (err) {
      if (this.lockPath) rmSync(this.lockPath, { force: true });
      throw err;
    }
  }

  private statement(sql: string): Statement {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      this.statements.set(sql, s);
    }
    return s;
  }

  /** All rows (always stepped to the end, so no statement stays open). */
  all(sql: string, params: readonly SqlValue[] = []): Row[] {
    return this.statement(sql).all(params as SqlValue[]) as Row[];
  }

  one(sql: string, params: readonly SqlValue[] = []): Row | undefined {
    return this.all(sql, params)[0];
  }

  /** Runs a write; returns the number of rows changed. */
  run(sql: string, params: readonly SqlValue[] = []): number {
    return this.statement(sql).run(params as SqlValue[]).changes;
  }

  /**
   * Runs `fn` in one transaction (BEGIN IMMEDIATE … COMMIT); any throw rolls everything back.
   * `fn` must be synchronous: nothing else runs until it returns.
   */
  transaction<T>(fn: () => T): T {
    // Prepared once, like every statement (exec would parse the SQL on every call).
    this.statement('BEGIN IMMEDIATE').run();
    try {
      const out = fn();
      this.statement('COMMIT').run();
      return out;
    } catch (err) {
      if (this.db.inTransaction) this.db.exec('ROLLBACK');
      throw err;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of this.statements.values()) s.finalize();
    this.statements.clear();
    this.db.close();
    if (this.lockPath) rmSync(this.lockPath, { force: true });
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
