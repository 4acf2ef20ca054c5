/**
 * EmbeddedDatabase's own rules (local/embedded/database.ts, row-cache.ts): group commit (one
 * commit per event-loop turn, each write atomic on its own, `durable()` after the commit),
 * checkpoints never at COMMIT, and the row cache's invalidation, including the adversarial
 * cases: a rolled-back write, statements the cache does not know, triggers.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { Database } from 'node-sqlite3-wasm';
import { DATABASE_FILE, EmbeddedDatabase } from '../../../local/embedded/database';
import type { UsageRecord } from '../../../lambda/core/router/usage-record';
import { EmbeddedGovernanceLedger } from '../../../local/embedded/embedded-governance-ledger';
import { EmbeddedRouterStore } from '../../../local/embedded/embedded-router-store';
import { invalidatesRowCache } from '../../../local/embedded/row-cache';
import { clearsCounterMirror } from '../../../local/embedded/counter-mirror';
import { sweepExpired } from '../../../local/embedded/expiry';
import { counterItemOf } from '../../../local/embedded/rows';
import type { CounterUpdate, LedgerWrite } from '../../../lambda/core/governance/ledger';
import { waitUntil } from '../../support/wait';

const dirs: string[] = [];
const fresh = () => {
  const d = mkdtempSync(join(tmpdir(), 'sr-edb-'));
  dirs.push(d);
  return d;
};
let db: EmbeddedDatabase;
beforeEach(() => {
  db = new EmbeddedDatabase({ dir: fresh() });
});
afterEach(() => db.close());
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

const putMeta = (name: string) => db.run('INSERT INTO meta(name, value) VALUES (?, ?)', [name, 'v']);
const metaNames = () => db.all('SELECT name FROM meta ORDER BY name').map((r) => r.name);
const nextTurn = () => new Promise((r) => setImmediate(r));

describe('group commit', () => {
  test('deferred writes of one turn are visible at once and committed together at the end of the turn; durable() resolves after that commit', async () => {
    const before = db.commits;
    db.deferred(() => putMeta('a'));
    db.deferred(() => putMeta('b'));
    expect(metaNames()).toEqual(['a', 'b']);
    expect(db.commits).toBe(before);
    await db.durable();
    expect(db.commits).toBe(before + 1);
    await expect(db.durable()).resolves.toBeUndefined(); // nothing pending
  });

  test('durableNow(): a request alone in flight commits its group at once, inside the call; with other requests in flight it waits for the end of the turn and shares the commit', async () => {
    let alone = true;
    const sole = new EmbeddedDatabase({ dir: fresh(), soleRequest: () => alone });
    try {
      const meta = (name: string) => sole.deferredRun('INSERT INTO meta(name, value) VALUES (?, ?)', [name, 'v']);
      const before = sole.commits;
      meta('a');
      const done = sole.durableNow();
      expect(sole.commits).toBe(before + 1); // committed before durableNow returned, not at the end of the turn
      await done;
      await nextTurn();
      expect(sole.commits).toBe(before + 1); // the end of the turn found nothing left to commit
      // Others in flight: two requests' writes of one turn, one commit at the end of the turn.
      alone = false;
      meta('b');
      const first = sole.durableNow();
      meta('c');
      const second = sole.durableNow();
      expect(sole.commits).toBe(before + 1);
      await Promise.all([first, second]);
      expect(sole.commits).toBe(before + 2);
      // Nothing open: resolves at once, commits nothing.
      alone = true;
      await sole.durableNow();
      expect(sole.commits).toBe(before + 2);
      expect(sole.all('SELECT name FROM meta ORDER BY name').map((r) => r.name)).toEqual(['a', 'b', 'c']);
    } finally {
      sole.close();
    }
  });

  test("durableNow() alone, whose COMMIT fails: it rejects, the group is rolled back, and a waiter's write made before it in the group is told too", async () => {
    const sole = new EmbeddedDatabase({ dir: fresh(), soleRequest: () => true });
    try {
      sole.transaction(() => sole.run('INSERT INTO meta(name, value) VALUES (?, ?)', ['prepared', 'v'])); // COMMIT prepared
      const commit = (sole as unknown as { statements: Map<string, { stmt: { _step(): unknown } }> }).statements.get('COMMIT')!.stmt;
      const failing = jest.spyOn(commit, '_step').mockImplementationOnce(() => {
        throw new Error('disk I/O error');
      });
      sole.deferredRun('INSERT INTO meta(name, value) VALUES (?, ?)', ['settle', 'v']);
      const settle = sole.durable(); // a writer that only waits (a settle's rewrite watch)
      sole.deferredRun('INSERT INTO meta(name, value) VALUES (?, ?)', ['usage', 'v']);
      await expect(sole.durableNow()).rejects.toThrow(/I\/O/);
      await expect(settle).rejects.toThrow(/I\/O/);
      failing.mockRestore();
      expect(sole.all('SELECT name FROM meta ORDER BY name').map((r) => r.name)).toEqual(['prepared']);
      // The store goes on: the next write commits.
      sole.deferredRun('INSERT INTO meta(name, value) VALUES (?, ?)', ['again', 'v']);
      await sole.durableNow();
      expect(sole.all('SELECT name FROM meta ORDER BY name').map((r) => r.name)).toEqual(['again', 'prepared']);
    } finally {
      sole.close();
    }
  });

  test('a deferred write that throws undoes itself only; the others of its turn commit', async () => {
    db.deferred(() => putMeta('kept'));
    expect(() =>
      db.deferred(() => {
        putMeta('undone');
        throw new Error('refused');
      }),
    ).toThrow('refused');
    expect(() => db.deferred(() => putMeta('kept'))).toThrow(/UNIQUE/); // a statement error undoes only its write too
    // A single statement needs no savepoint: SQLite undoes a failed one alone.
    expect(() => db.deferredRun('INSERT INTO meta(name, value) VALUES (?, ?)', ['kept', 'v'])).toThrow(/UNIQUE/);
    expect(db.deferredRun('INSERT INTO meta(name, value) VALUES (?, ?)', ['also', 'v'])).toBe(1);
    await db.durable();
    expect(metaNames()).toEqual(['also', 'kept']);
  });

  test('transaction() commits before it returns, with the deferred writes pending before it', async () => {
    db.deferred(() => putMeta('deferred'));
    const waiting = db.durable();
    const before = db.commits;
    db.transaction(() => putMeta('now'));
    expect(db.commits).toBe(before + 1);
    await waiting;
    await nextTurn();
    expect(db.commits).toBe(before + 1); // the scheduled commit found nothing left to do
  });

  test('a transaction that throws leaves nothing written and no transaction open; a nested one commits with its outer write only', async () => {
    expect(() =>
      db.transaction(() => {
        putMeta('x');
        throw new Error('no');
      }),
    ).toThrow('no');
    expect(metaNames()).toEqual([]);
    const before = db.commits;
    db.transaction(() => {
      putMeta('outer');
      db.transaction(() => putMeta('inner'));
      expect(db.commits).toBe(before); // not committed in the middle of the outer write
    });
    expect(db.commits).toBe(before + 1);
    expect(metaNames()).toEqual(['inner', 'outer']);
  });

  test('a full disk in the middle of a group: a writer is told its write is durable only if it is stored, and the failed write fails', async () => {
    const pages = Number(db.one('PRAGMA page_count')?.page_count);
    db.run(`PRAGMA max_page_count = ${pages + 3}`); // room for a few pages more, then SQLITE_FULL
    const big = 'f'.repeat(3000);
    const outcomes: { name: string; durable: Promise<boolean> }[] = [];
    let refused = 0;
    for (let i = 0; i < 12; i++) {
      const name = `m${i}`;
      try {
        db.deferredRun('INSERT INTO meta(name, value) VALUES (?, ?)', [name, big]);
        outcomes.push({ name, durable: db.durable().then(() => true, () => false) });
      } catch (err) {
        expect(String(err)).toMatch(/full/i);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
    const told = await Promise.all(outcomes.map(async (o) => [o.name, await o.durable] as const));
    const stored = new Set(metaNames()); // after the commit (or its rollback)
    for (const [name, durable] of told) expect([name, durable]).toEqual([name, stored.has(name)]);
    // The store goes on once there is room again.
    db.run('PRAGMA max_page_count = 1000000');
    db.deferredRun('INSERT INTO meta(name, value) VALUES (?, ?)', ['after', 'v']);
    await db.durable();
    expect(metaNames()).toContain('after');
  });

  test('a reservation that cannot be stored (full disk) is not granted: the ledger write fails, nothing is held', async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    const pages = Number(db.one('PRAGMA page_count')?.page_count);
    db.run(`PRAGMA max_page_count = ${pages}`);
    const reservation = { key: { pk: 'RESV#t', sk: 'r1' }, tenantId: 't', tokenId: 'k', tokenKey: 'tk', period: '2026-12', window: 'w', amountMicros: 5, tpmTokens: 1, model: 'm', createdAt: 'x'.repeat(5000), reclaimAfter: 1, expiresAt: 2 };
    await expect(ledger.write({ reservation: { put: reservation }, counters: [{ key: { pk: 'SPEND#t', sk: '2026-12' }, add: { reservedMicros: 5, committedMicros: 5 }, ceilings: { committedMicros: 100 } }] })).rejects.toThrow(/full/i);
    db.run('PRAGMA max_page_count = 1000000');
    expect(db.all('SELECT sk FROM counters WHERE body IS NOT NULL')).toEqual([]);
    expect(db.all("SELECT reservedMicros FROM counters WHERE pk = 'SPEND#t'")).toEqual([]);
  });

  test("a group whose COMMIT fails: the answered request's settle and usage record are written again, so neither its record nor its spend is lost", async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    const store = new EmbeddedRouterStore(db);
    const key = { pk: 'RESV#t', sk: 'r1' };
    const spend = { pk: 'SPEND#t', sk: '2026-12' };
    const reservation = { key, tenantId: 't', tokenId: 'k', tokenKey: 'tk', period: '2026-12', window: 'w', amountMicros: 50, tpmTokens: 1, model: 'm', createdAt: '2026-12-01T00:00:00.000Z', reclaimAfter: 1, expiresAt: 2 };
    expect(await ledger.write({ reservation: { put: reservation }, counters: [{ key: spend, add: { reservedMicros: 50, committedMicros: 50 } }] })).toEqual({ ok: true });
    // The next COMMIT fails (an I/O error, a full disk): the group is rolled back.
    const commit = (db as unknown as { statements: Map<string, { stmt: { _step(): unknown } }> }).statements.get('COMMIT')!.stmt;
    const failing = jest.spyOn(commit, '_step').mockImplementationOnce(() => {
      throw new Error('disk I/O error');
    });
    // The router's end stage: the settle (not waited for: it shares the usage record's commit), then the record.
    expect(await ledger.write({ reservation: { delete: key }, counters: [{ key: spend, add: { reservedMicros: -50, committedMicros: -20, spentMicros: 30 } }] })).toEqual({ ok: true });
    const record = { requestId: 'r1', tenantId: 't', tokenId: 'k', route: 'chat', model: 'm', stream: false, status: 200, decision: 'ok', at: '2026-12-01T00:00:00.000Z', costUsd: 0.00003, latencyMs: 1, fallbackChain: [] } as unknown as UsageRecord;
    await store.putUsage(record); // resolves only once the record is stored
    expect(failing).toHaveBeenCalled();
    failing.mockRestore();
    expect(db.all('SELECT request_id FROM usage')).toEqual([{ request_id: 'r1' }]);
    expect(db.all('SELECT sk FROM counters WHERE body IS NOT NULL')).toEqual([]);
    expect(db.all('SELECT spentMicros, reservedMicros, committedMicros FROM counters')).toEqual([{ spentMicros: 30, reservedMicros: 0, committedMicros: 30 }]);
  });

  test('a group that SQLite rolled back on its own (after an I/O error in a read) is ended at the next write: its writers are told, and that write goes into a new group', async () => {
    db.deferred(() => putMeta('lost'));
    const waiting = db.durable().then(
      () => 'durable',
      () => 'failed',
    );
    (db as unknown as { db: Database }).db.exec('ROLLBACK'); // what SQLite does by itself after some errors
    db.deferred(() => putMeta('next'));
    db.deferredRun('INSERT INTO meta(name, value) VALUES (?, ?)', ['single', 'v']);
    const next = db.durable().then(
      () => 'durable',
      () => 'failed',
    );
    expect(await waiting).toBe('failed');
    expect(await next).toBe('durable'); // told the truth: stored
    expect(metaNames()).toEqual(['next', 'single']);
  });

  test('the database is closed with its pending group committed', () => {
    const dir = fresh();
    const a = new EmbeddedDatabase({ dir });
    a.deferred(() => a.run("INSERT INTO meta(name, value) VALUES ('closing', 'v')"));
    a.close();
    const b = new EmbeddedDatabase({ dir });
    try {
      expect(b.all('SELECT name FROM meta').map((r) => r.name)).toEqual(['closing']);
    } finally {
      b.close();
    }
  });
});

describe("the binding's internals", () => {
  test('the pinned binding (package-lock) passes the check: the fast paths are in use', () => {
    expect((db as unknown as { fast: boolean }).fast).toBe(true);
  });

  test('a binding whose internals changed meaning (not only name) is used through its public API, with the same answers', () => {
    // As a version bump could: _step answers SQLite's result code instead of a boolean, and the
    // public API was changed with it. A check of the names alone would take the fast path.
    type Internals = { _step(): unknown; _bind(v: unknown): void; _getColumnNames(): string[]; _getRow(c: string[], e: boolean): unknown; _reset(): boolean };
    const raw = new Database(':memory:');
    const probe = raw.prepare('SELECT 1');
    const proto = Object.getPrototypeOf(probe) as Internals & { all(values?: unknown): unknown[] };
    probe.finalize();
    raw.close();
    const step = proto._step;
    const stepCode = jest.spyOn(proto, '_step').mockImplementation(function (this: Internals) {
      return step.call(this) ? 100 : 101;
    });
    const publicAll = jest.spyOn(proto, 'all').mockImplementation(function (this: Internals, values?: unknown) {
      this._bind(values);
      const columns = this._getColumnNames();
      const rows: unknown[] = [];
      while (this._step() === 100) rows.push(this._getRow(columns, false));
      this._reset();
      return rows;
    });
    const d = new EmbeddedDatabase();
    try {
      expect((d as unknown as { fast: boolean }).fast).toBe(false);
      d.run("INSERT INTO meta(name, value) VALUES ('a', '1'), ('b', '2')");
      expect(d.all('SELECT name FROM meta ORDER BY name')).toEqual([{ name: 'a' }, { name: 'b' }]);
      expect(d.one('SELECT value FROM meta WHERE name = ?', ['zzz'])).toBeUndefined();
    } finally {
      stepCode.mockRestore();
      publicAll.mockRestore();
      d.close();
    }
  });
});

describe('bindings kept between runs (only changed values are bound again)', () => {
  const SELECT3 = 'SELECT ? AS a, ? AS b, ? AS c';
  const publicAnswer = (sql: string, params: (string | number | null | Uint8Array)[]) => {
    const raw = new Database(':memory:');
    try {
      return raw.all(sql, params)[0];
    } finally {
      raw.close();
    }
  };

  test('any sequence of runs of one statement answers what a fresh statement answers for the same values (strings, integers, doubles, NULL, bytes)', () => {
    const value = fc.oneof(fc.constantFrom('SPEND#t', '2026-12', '', 'é☃'), fc.string(), fc.integer(), fc.constantFrom(0, 2 ** 40, -1, 1.5), fc.constant(null), fc.uint8Array({ maxLength: 4 }));
    fc.assert(
      fc.property(fc.array(fc.tuple(value, value, value), { minLength: 1, maxLength: 12 }), (runs) => {
        for (const params of runs) {
          const bindable = params.every((v) => typeof v !== 'string' || (!v.includes('\0') && (v as unknown as { isWellFormed(): boolean }).isWellFormed()));
          if (!bindable) {
            expect(() => db.one(SELECT3, params)).toThrow(/refused/);
            continue;
          }
          expect(db.one(SELECT3, params)).toEqual(publicAnswer(SELECT3, params));
        }
      }),
      { numRuns: 150 },
    );
  });

  test('a byte array changed in place after it was bound is bound again (same object, new content)', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    db.run('INSERT INTO meta(name, value) VALUES (?, CAST(? AS TEXT))', ['a', bytes]);
    bytes[0] = 0x7a;
    db.run('INSERT INTO meta(name, value) VALUES (?, CAST(? AS TEXT))', ['b', bytes]);
    expect(db.all('SELECT name, hex(value) AS v FROM meta ORDER BY name')).toEqual([
      { name: 'a', v: '010203' },
      { name: 'b', v: '7A0203' },
    ]);
  });

  test('fewer values than the last run: the rest are NULL, as on a fresh statement', () => {
    expect(db.one(SELECT3, ['x', 1, 'z'])).toEqual({ a: 'x', b: 1, c: 'z' });
    expect(db.one(SELECT3, ['x'])).toEqual({ a: 'x', b: null, c: null });
    expect(db.one(SELECT3, ['x', 1, 'z'])).toEqual({ a: 'x', b: 1, c: 'z' });
  });

  test('a run refused halfway through its binds (a NUL after a changed value) leaves nothing stale: the next run binds every value again', () => {
    expect(db.one(SELECT3, ['a', 'b', 'c'])).toEqual({ a: 'a', b: 'b', c: 'c' });
    expect(() => db.one(SELECT3, ['A', 'x\0y', 'c'])).toThrow(/refused/);
    // Were the bindings taken as still ['a', 'b', 'c'], 'a' would not be bound again and 'A' would answer.
    expect(db.one(SELECT3, ['a', 'b', 'c'])).toEqual({ a: 'a', b: 'b', c: 'c' });
  });

  test('a run whose step fails (a constraint) keeps no failure on the statement, and its values are still the ones bound', () => {
    const sql = 'INSERT INTO meta(name, value) VALUES (?, ?)';
    db.run(sql, ['k', 'v1']);
    expect(() => db.run(sql, ['k', 'v2'])).toThrow(/UNIQUE/);
    expect(db.run(sql, ['k2', 'v2'])).toBe(1);
    expect(db.all('SELECT name, value FROM meta ORDER BY name')).toEqual([
      { name: 'k', value: 'v1' },
      { name: 'k2', value: 'v2' },
    ]);
  });
});

describe('checkpoints', () => {
  test('no checkpoint at COMMIT: thousands of pages of commits stay in the WAL until the timer', () => {
    const body = 'x'.repeat(3000);
    for (let i = 0; i < 2500; i++) db.transaction(() => db.run('INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)', ['t', `k${i}`, 'a', `r${i}`, 1, body]));
    // wal_checkpoint reports the WAL's frames: with SQLite's default (1,000 pages) they would have been folded in.
    const [row] = db.all('PRAGMA wal_checkpoint(PASSIVE)');
    expect(Number(row.log)).toBeGreaterThan(2500);
  });

  test('under sustained writes (never idle) the timer checkpoints once the WAL passes its bound, and the WAL file is reused, not grown', async () => {
    const dir = fresh();
    const max = 512 * 1024;
    const busy = new EmbeddedDatabase({ dir, maxWalBytes: max });
    const walSize = () => statSync(join(dir, `${DATABASE_FILE}-wal`)).size;
    try {
      const body = 'y'.repeat(3000);
      let written = 0;
      let largest = 0;
      // A commit every 5 ms or more (never 250 ms idle), until three checkpoints were needed: at most
      // about 25 commits (~8 KiB of WAL each) fall between two 100 ms timer ticks, so the WAL stays
      // under 2x its bound even when timers run late under load (with 2 ms it once passed 2x).
      for (let i = 0; i < 3000 && busy.checkpoints < 3; i++, written++) {
        busy.transaction(() => busy.run('INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)', ['t', `k${i}`, 'a', `r${i}`, 1, body]));
        largest = Math.max(largest, walSize());
        await new Promise((r) => setTimeout(r, 5));
      }
      expect(busy.checkpoints).toBe(3);
      // The WAL never grew far past its bound (one commit and one timer tick of writes at most).
      expect(largest).toBeLessThan(2 * max);
      expect(busy.all('SELECT count(*) AS n FROM usage')[0].n).toBe(written);
    } finally {
      busy.close();
    }
  });

  test('while commits come, the WAL is flushed to disk in the background about once a second', async () => {
    const before = db.walSyncs;
    const until = Date.now() + 1_300;
    for (let i = 0; Date.now() < until; i++) {
      db.transaction(() => putMeta(`m${i}`));
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(db.walSyncs - before).toBeGreaterThanOrEqual(1);
    expect(db.walSyncs - before).toBeLessThanOrEqual(3);
  });

  test('a checkpoint that fails is reported, not thrown out of its timer (which would end the gateway); the store goes on', async () => {
    const errors: unknown[] = [];
    const d = new EmbeddedDatabase({ dir: fresh(), onBackgroundError: (err) => errors.push(err) });
    const realAll = Database.prototype.all;
    const failing = jest.spyOn(Database.prototype, 'all').mockImplementation(function (this: Database, sql: string, ...rest: unknown[]) {
      if (/wal_checkpoint/.test(sql)) throw new Error('disk I/O error');
      return (realAll as (...a: unknown[]) => unknown).call(this, sql, ...rest) as never;
    });
    try {
      d.transaction(() => d.run("INSERT INTO meta(name, value) VALUES ('a', 'v')"));
      await waitUntil(() => errors.length > 0, 'the failed checkpoint to be reported');
      expect(String(errors[0])).toMatch(/disk I\/O error/);
      failing.mockRestore();
      d.transaction(() => d.run("INSERT INTO meta(name, value) VALUES ('b', 'v')"));
      expect(d.all('SELECT name FROM meta ORDER BY name').map((r) => r.name)).toEqual(['a', 'b']);
    } finally {
      failing.mockRestore();
      d.close();
    }
  });

  test('the timer checkpoints once the gateway is idle', async () => {
    db.transaction(() => putMeta('one'));
    const before = db.checkpoints;
    await waitUntil(() => db.checkpoints > before, 'the idle checkpoint');
    expect(db.checkpoints).toBeGreaterThan(before);
  });
});

describe('row cache', () => {
  const tokenBody = () => db.rows.get('token:v', () => db.one('SELECT body FROM tokens WHERE verifier = ?', ['v'])?.body as string | undefined);

  test('a write rolled back after its uncommitted row was read leaves nothing stale behind', () => {
    db.transaction(() => db.run("INSERT INTO tokens(verifier, tenant_id, token_id, body) VALUES ('v', 't', 'k', 'original')"));
    expect(tokenBody()).toBe('original');
    expect(() =>
      db.transaction(() => {
        db.run("UPDATE tokens SET body = 'uncommitted' WHERE verifier = 'v'");
        expect(tokenBody()).toBe('uncommitted'); // read (and cached) inside the write
        throw new Error('rolled back');
      }),
    ).toThrow('rolled back');
    expect(tokenBody()).toBe('original');
  });

  test('a deferred write that fails after touching a cached table clears the cache too', () => {
    db.transaction(() => db.run("INSERT INTO tokens(verifier, tenant_id, token_id, body) VALUES ('v', 't', 'k', 'original')"));
    db.deferred(() => putMeta('other'));
    expect(() =>
      db.deferred(() => {
        db.run("DELETE FROM tokens WHERE verifier = 'v'");
        expect(tokenBody()).toBeUndefined();
        throw new Error('refused');
      }),
    ).toThrow('refused');
    expect(tokenBody()).toBe('original');
  });

  test.each([
    'UPDATE tokens SET body = ? WHERE verifier = ?',
    'DELETE FROM secrets WHERE tenant_id = ?',
    'INSERT OR REPLACE INTO tenants(tenant_id, body) VALUES (?, ?)',
    'REPLACE INTO erasure_keys(tenant_id, body) VALUES (?, ?)',
    'INSERT INTO "tokens"(verifier, tenant_id, token_id, body) VALUES (?, ?, ?, ?)',
    "WITH x AS (SELECT 1) UPDATE tokens SET body = 'y'",
    'insert into tokens_shadow(x) values (1)',
    'UPDATE OR REPLACE counters SET tokens = 1',
    'ROLLBACK',
    'ROLLBACK TO w',
    'DROP TABLE tokens',
    'ALTER TABLE secrets ADD COLUMN x',
    'VACUUM',
    'PRAGMA writable_schema = 1',
    'ATTACH DATABASE ? AS other',
  ])('a statement that may change a cached table clears the cache: %s', (sql) => {
    expect(invalidatesRowCache(sql)).toBe(true);
  });

  test.each([
    'SELECT body FROM tokens WHERE verifier = ?',
    'BEGIN IMMEDIATE',
    'COMMIT',
    'SAVEPOINT w',
    'RELEASE w',
    'INSERT INTO counters(pk, sk, reclaim_after, expires_at, body) VALUES (?, ?, ?, ?, ?) ON CONFLICT(pk, sk) DO NOTHING',
    'INSERT INTO counters(pk, sk, tokens) VALUES (?, ?, ?) ON CONFLICT(pk, sk) DO UPDATE SET tokens = excluded.tokens',
    'INSERT OR REPLACE INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)',
    'DELETE FROM counters WHERE pk = ? AND sk = ? AND body IS NOT NULL',
    'INSERT OR REPLACE INTO response_cache(key, tenant_id, expires_at, sealed) VALUES (?, ?, ?, ?)',
  ])("the request path's own statements keep the cache: %s", (sql) => {
    expect(invalidatesRowCache(sql)).toBe(false);
  });

  test('a flood of unknown tokens keeps the cache bounded (it starts over), and answers stay right', () => {
    for (let i = 0; i < 25_000; i++) expect(db.rows.get(`token:${i}`, () => undefined)).toBeUndefined();
    expect(db.rows.size).toBeLessThanOrEqual(10_000);
    db.transaction(() => db.run("INSERT INTO tokens(verifier, tenant_id, token_id, body) VALUES ('v', 't', 'k', 'row')"));
    expect(tokenBody()).toBe('row');
  });

  test('the store refuses to create a trigger, and refuses to open a database that holds one', () => {
    expect(() => db.run("CREATE TRIGGER t AFTER INSERT ON usage BEGIN DELETE FROM tokens; END")).toThrow(/triggers are not allowed/);
    expect(() => db.run("create temp trigger t after insert on usage begin delete from tokens; end")).toThrow(/triggers are not allowed/);
    // SQLite takes comments for blanks, before and inside the keywords.
    expect(() => db.run('/* c */ CREATE TRIGGER t AFTER INSERT ON usage BEGIN DELETE FROM tokens; END')).toThrow(/triggers are not allowed/);
    expect(() => db.run('-- c\nCREATE/**/TEMP/* x */TRIGGER t AFTER INSERT ON usage BEGIN DELETE FROM tokens; END')).toThrow(/triggers are not allowed/);
    expect(db.all("SELECT name FROM sqlite_master WHERE type = 'trigger' UNION ALL SELECT name FROM sqlite_temp_master WHERE type = 'trigger'")).toEqual([]);
    const dir = fresh();
    new EmbeddedDatabase({ dir }).close();
    rmSync(join(dir, `${DATABASE_FILE}.lock`), { recursive: true, force: true }); // the VFS's lock, as a killed process leaves it
    const raw = new Database(join(dir, DATABASE_FILE));
    raw.exec('PRAGMA locking_mode=EXCLUSIVE'); // the VFS has no shared memory for WAL
    raw.exec('CREATE TRIGGER t AFTER INSERT ON usage BEGIN DELETE FROM tokens; END');
    raw.close();
    expect(() => new EmbeddedDatabase({ dir })).toThrow(/holds triggers/);
  });
});

describe('counter mirror', () => {
  const spend = { pk: 'SPEND#t', sk: '2026-12' };
  const tokenSpend = { pk: 'SPEND#t#k1', sk: '2026-12' };
  const rate = { pk: 'RATE#t', sk: '2026-12-01T00:00Z' };
  const keys = [spend, tokenSpend, rate, { pk: 'RATE#t#k1', sk: '2026-12-01T00:00Z' }];
  /** What the request's read returns (mirror first), against a plain SELECT of each row. */
  const read = async () => (await new EmbeddedRouterStore(db).loadRequestContext('v', 't', [], keys)).counters;
  const truth = () => {
    const out = new Map<string, Record<string, unknown>>();
    for (const k of keys) {
      const row = db.one('SELECT * FROM counters WHERE pk = ? AND sk = ?', [k.pk, k.sk]);
      if (row) out.set(`${k.pk}|${k.sk}`, counterItemOf(row));
    }
    return out;
  };
  const expectExact = async () => expect(await read()).toEqual(truth());
  const reservation = (sk: string, amount: number) => ({
    key: { pk: 'RESV#t', sk }, tenantId: 't', tokenId: 'k1', tokenKey: 'k1', period: '2026-12', window: 'w', amountMicros: amount, tpmTokens: 3,
    model: 'm', createdAt: '2026-12-01T00:00:00.000Z', reclaimAfter: 100, expiresAt: 200,
  });
  const reserve = (sk: string, amount: number, budget: number): LedgerWrite => ({
    reservation: { put: reservation(sk, amount) },
    counters: [
      { key: spend, add: { spentMicros: 0, reservedMicros: amount, committedMicros: amount }, ceilings: { committedMicros: budget - amount }, expiresAt: 500 },
      { key: tokenSpend, add: { spentMicros: 0, reservedMicros: amount, committedMicros: amount }, expiresAt: 500, tokenId: 'k1' },
      { key: rate, add: { requests: 1, tokens: 3 }, ceilings: { requests: 9 }, expiresAt: 600 },
    ],
  });
  const settle = (sk: string, amount: number, cost: number): LedgerWrite => ({
    reservation: { delete: { pk: 'RESV#t', sk } },
    counters: [
      { key: spend, add: { spentMicros: cost, reservedMicros: -amount, committedMicros: cost - amount }, expiresAt: 500 },
      { key: tokenSpend, add: { spentMicros: cost, reservedMicros: -amount, committedMicros: cost - amount }, expiresAt: 500 },
      { key: rate, add: { tokens: -1, requests: 0 } },
    ],
  });
  const commitStmt = () => (db as unknown as { statements: Map<string, { stmt: { _step(): unknown } }> }).statements.get('COMMIT')!.stmt;

  test('a reservation and its counters go in one statement; a second put of the same reservation is refused and leaves every counter, and the mirror, as they were', async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    const ran: string[] = [];
    const realRunMirrored = EmbeddedDatabase.prototype.runMirrored;
    const spy = jest.spyOn(db, 'runMirrored').mockImplementation(function (this: EmbeddedDatabase, sql, params) {
      ran.push(sql);
      return realRunMirrored.call(this, sql, params);
    });
    try {
      expect(await ledger.write(reserve('r1', 10, 1000))).toEqual({ ok: true });
      expect(ran).toHaveLength(1);
      await expectExact();
      const before = truth();
      const clears = db.counters.clears;
      expect(await ledger.write(reserve('r1', 10, 1000))).toEqual({ ok: false, reservationFailed: true, failed: [] });
      // The counters the refused statement had raised are back, in SQLite and in what the read returns.
      expect(truth()).toEqual(before);
      expect(db.counters.clears).toBeGreaterThan(clears);
      await expectExact();
      expect(db.all("SELECT sk FROM counters WHERE pk = 'RESV#t' AND body IS NOT NULL")).toEqual([{ sk: 'r1' }]);
      // A new id goes through, on the counters as they were.
      expect(await ledger.write(reserve('r2', 10, 1000))).toEqual({ ok: true });
      expect((await read()).get('SPEND#t|2026-12')).toMatchObject({ reservedMicros: 20, committedMicros: 20 });
      await expectExact();
    } finally {
      spy.mockRestore();
    }
  });

  test("once a row is known, the request's read and the reservation's ceiling check run no SELECT; what they see is what SQLite holds", async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    await expectExact(); // fills the mirror (rows known absent)
    expect(await ledger.write(reserve('r1', 40, 1000))).toEqual({ ok: true });
    const all = jest.spyOn(db, 'all');
    await expectExact();
    expect(await ledger.write(reserve('r2', 40, 1000))).toEqual({ ok: true });
    expect(await ledger.write(settle('r1', 40, 15))).toEqual({ ok: true });
    await db.durable();
    await expectExact();
    expect(all.mock.calls.filter(([sql]) => /FROM counters/.test(sql) && !/pk = \? AND sk = \?$/.test(sql))).toEqual([]);
    all.mockRestore();
    expect(db.counters.size).toBeGreaterThan(0);
  });

  test('a refused reservation (budget) changes nothing, and what the mirror answers afterwards is what SQLite holds', async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    expect(await ledger.write(reserve('r1', 60, 100))).toEqual({ ok: true });
    await expectExact();
    const refused = await ledger.write(reserve('r2', 60, 100));
    expect(refused).toMatchObject({ ok: false, reservationFailed: false, failed: [{ index: 0, item: { reservedMicros: 60, committedMicros: 60, spentMicros: 0 } }] });
    await expectExact();
    expect((await read()).get('SPEND#t|2026-12')).toMatchObject({ reservedMicros: 60 });
    // A refusal by the reservation's own condition (a repeated request id).
    expect(await ledger.write(reserve('r1', 1, 100))).toMatchObject({ ok: false, reservationFailed: true });
    await expectExact();
  });

  test('a repeated reservation id leaves its row and every existing counter as they were (and the mirror exact), and names both refusals', async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    expect(await ledger.write(reserve('r1', 60, 100))).toEqual({ ok: true });
    await db.durable();
    const before = db.all('SELECT * FROM counters ORDER BY pk, sk');
    const again = { ...reserve('r1', 60, 100), reservation: { put: { ...reservation('r1', 60), model: 'other' } } };
    expect(await ledger.write(again)).toEqual({ ok: false, reservationFailed: true, failed: [{ index: 0, item: { spentMicros: 0, reservedMicros: 60, committedMicros: 60 } }] });
    expect(await ledger.write(reserve('r1', 1, 1000))).toEqual({ ok: false, reservationFailed: true, failed: [] });
    await db.durable();
    expect(db.all('SELECT * FROM counters ORDER BY pk, sk')).toEqual(before);
    await expectExact();
    // A counter update naming the reservation's own key is applied to that row.
    expect(await ledger.write({ reservation: { put: reservation('r2', 1) }, counters: [{ key: { pk: 'RESV#t', sk: 'r2' }, add: { requests: 2 } }] })).toEqual({ ok: true });
    expect(db.one("SELECT requests, body IS NOT NULL AS held FROM counters WHERE pk = 'RESV#t' AND sk = 'r2'")).toEqual({ requests: 2, held: 1 });
  });

  test('a rolled-back write, a failed COMMIT and a group SQLite rolled back by itself leave no uncommitted counter in the mirror', async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    expect(await ledger.write(reserve('r1', 10, 1000))).toEqual({ ok: true });
    await expectExact();
    // A write of the same group that throws after the ledger's write: undone, mirror cleared.
    expect(() =>
      db.deferred(() => {
        db.run("UPDATE counters SET spentMicros = 999 WHERE pk = 'SPEND#t'");
        throw new Error('refused');
      }),
    ).toThrow('refused');
    await expectExact();
    // A failed COMMIT: the reservation of the group is gone, and so is its mirrored effect.
    const failing = jest.spyOn(commitStmt(), '_step').mockImplementationOnce(() => {
      throw new Error('disk I/O error');
    });
    await expect(ledger.write(reserve('r2', 10, 1000))).rejects.toThrow(/I\/O/);
    failing.mockRestore();
    await expectExact();
    expect((await read()).get('SPEND#t|2026-12')).toMatchObject({ reservedMicros: 10 });
    // SQLite rolled the open group back by itself: the next read must not answer its writes.
    db.deferred(() => (ledger as unknown as { apply(w: LedgerWrite): void }).apply(reserve('r3', 10, 1000)));
    expect((await read()).get('SPEND#t|2026-12')).toMatchObject({ reservedMicros: 20 });
    (db as unknown as { db: Database }).db.exec('ROLLBACK');
    await expectExact();
    expect((await read()).get('SPEND#t|2026-12')).toMatchObject({ reservedMicros: 10 });
    await db.durable().catch(() => undefined);
  });

  test('a reclaim, a direct SQL write to the counters table (admin, expiry sweep) and a malformed row are followed exactly', async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    expect(await ledger.write(reserve('r1', 30, 1000))).toEqual({ ok: true });
    await expectExact();
    const give = (key: { pk: string; sk: string }): CounterUpdate => ({ key, add: { reservedMicros: -30, committedMicros: -25, spentMicros: 5 } });
    expect(await ledger.write({ reservation: { delete: { pk: 'RESV#t', sk: 'r1' }, reclaimableAt: 101 }, counters: [give(spend), give(tokenSpend)] })).toEqual({ ok: true });
    await expectExact();
    db.transaction(() => db.run("UPDATE counters SET spentMicros = spentMicros + 7 WHERE pk = 'SPEND#t'"));
    await expectExact();
    expect((await read()).get('SPEND#t|2026-12')).toMatchObject({ spentMicros: 12 });
    expect(sweepExpired(db, 550)).toBeGreaterThan(0); // spend rows (expiry 500) are swept, the rate row (600) stays
    await expectExact();
    expect([...(await read()).keys()]).toEqual(['RATE#t|2026-12-01T00:00Z']);
    // A row whose values are not numbers is read from SQLite every time, with SQLite's semantics.
    db.transaction(() => db.run("INSERT INTO counters(pk, sk, committedMicros, requests) VALUES ('SPEND#t', '2026-12', 'x', 2.5)"));
    await expectExact();
    expect(await ledger.write(reserve('r2', 30, 1000))).toEqual({ ok: true });
    await db.durable();
    await expectExact();
    expect((await read()).get('SPEND#t|2026-12')).toMatchObject({ committedMicros: 30, reservedMicros: 30 });
  });

  test('writes the mirror cannot follow exactly (numbers beyond 2^53, fractions) leave the row to SQLite', async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    await expectExact();
    expect(await ledger.write({ counters: [{ key: spend, add: { spentMicros: 2 ** 53 } }, { key: rate, add: { tokens: 0.5 } }] })).toEqual({ ok: true });
    expect(db.counters.get(spend.pk, spend.sk)).toBeUndefined();
    expect(db.counters.get(rate.pk, rate.sk)).toBeUndefined();
    expect(await ledger.write({ counters: [{ key: spend, add: { spentMicros: 1 } }, { key: rate, add: { tokens: 0.25 } }] })).toEqual({ ok: true });
    await db.durable();
    await expectExact();
  });

  test('500 random ledger writes, refusals, rollbacks, failed commits and direct writes: after each, what the request reads is what SQLite holds', async () => {
    const ledger = new EmbeddedGovernanceLedger(db);
    db.transaction(() => putMeta('prepared')); // COMMIT prepared, so a step can make it fail
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const open = new Set<string>();
    let next = 0;
    for (let step = 0; step < 500; step++) {
      const choice = rand(10);
      if (choice <= 3) {
        const id = `r${next++}`;
        if ((await ledger.write(reserve(id, 1 + rand(30), 200 + rand(400)))).ok) open.add(id);
      } else if (choice <= 5 && open.size > 0) {
        const id = [...open][rand(open.size)];
        open.delete(id);
        expect(await ledger.write(settle(id, 0, rand(20)))).toMatchObject({ ok: true });
      } else if (choice === 6) {
        // A write of the group that is undone after the ledger wrote in it.
        try {
          db.deferred(() => {
            (ledger as unknown as { apply(w: LedgerWrite): void }).apply({ counters: [{ key: spend, add: { spentMicros: 1 + rand(5) } }] });
            throw new Error('undone');
          });
        } catch {
          // expected
        }
      } else if (choice === 7) {
        db.transaction(() => db.run('UPDATE counters SET tokens = coalesce(tokens, 0) + ? WHERE pk = ?', [rand(3), 'RATE#t']));
      } else if (choice === 8) {
        const failing = jest.spyOn(commitStmt(), '_step').mockImplementationOnce(() => {
          throw new Error('disk I/O error');
        });
        const id = `r${next++}`;
        await ledger.write(reserve(id, 1, 1000)).catch(() => undefined);
        failing.mockRestore();
      } else {
        expect(await ledger.write({ counters: [{ key: rate, add: { tokens: rand(7) - 3, requests: 0 } }] })).toEqual({ ok: true });
      }
      if (rand(3) === 0) await db.durable().catch(() => undefined);
      await expectExact();
    }
    await db.durable().catch(() => undefined);
    await expectExact();
  });

  test.each(['UPDATE counters SET tokens = 1', 'DELETE FROM counters WHERE expires_at < ?', 'INSERT OR REPLACE INTO counters(pk, sk) VALUES (?, ?)', 'REPLACE INTO counters(pk, sk) VALUES (?, ?)', 'WITH x AS (SELECT 1) DELETE FROM counters', 'ROLLBACK', 'ROLLBACK TO w', 'DROP TABLE counters', 'insert into "counters"(pk, sk) values (1, 2)', 'VACUUM'])(
    'a statement that may change a counters row clears the mirror: %s',
    (sql) => expect(clearsCounterMirror(sql)).toBe(true),
  );

  test.each(['SELECT * FROM counters', 'BEGIN IMMEDIATE', 'COMMIT', 'INSERT OR REPLACE INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)', 'INSERT INTO audit(tenant_id, seq, body) VALUES (?, ?, ?)', 'UPDATE tokens SET body = ? WHERE verifier = ?'])(
    'a statement that cannot change a counters row keeps the mirror: %s',
    (sql) => expect(clearsCounterMirror(sql)).toBe(false),
  );
});

describe('long text bound as UTF-8 bytes', () => {
  test('a usage record and a reservation are stored as TEXT, byte for byte the JSON the adapters wrote (non-ASCII, emoji, escapes)', async () => {
    const store = new EmbeddedRouterStore(db);
    const ledger = new EmbeddedGovernanceLedger(db);
    const model = 'modèle-😀-\u2028-"quoted"-\\-\u0000';
    const record = { requestId: 'r1', tenantId: 't', tokenId: 'k', route: 'chat', model, stream: false, status: 200, decision: 'ok', at: '2026-12-01T00:00:00.000Z', costUsd: 0.00003, latencyMs: 1, fallbackChain: [] } as unknown as UsageRecord;
    await store.putUsage(record);
    const reservation = { key: { pk: 'RESV#t', sk: 'r1' }, tenantId: 't', tokenId: 'k', tokenKey: 'tk', period: '2026-12', window: 'w', amountMicros: 5, tpmTokens: 1, model, createdAt: '2026-12-01T00:00:00.000Z', reclaimAfter: 1, expiresAt: 2 };
    expect(await ledger.write({ reservation: { put: reservation }, counters: [] })).toEqual({ ok: true });
    await db.durable();
    expect(db.one('SELECT typeof(body) AS t, body FROM usage')).toEqual({ t: 'text', body: JSON.stringify(record) });
    expect(db.one("SELECT typeof(body) AS t, body FROM counters WHERE pk = 'RESV#t'")).toEqual({ t: 'text', body: JSON.stringify(reservation) });
    // Read back through the adapters' own queries.
    expect(await ledger.expiredReservations('t', 10, 10)).toEqual([reservation]);
    expect(db.one('SELECT length(CAST(body AS BLOB)) AS n FROM usage')!.n).toBe(Buffer.byteLength(JSON.stringify(record)));
  });
});
