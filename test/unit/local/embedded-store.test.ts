/**
 * The embedded store's own guarantees, apart from the port contracts: one gateway per state
 * directory (a live holder refuses a second, a dead one's lock is taken over), file modes, the
 * region a state directory belongs to, TTL sweeping, and the local root key file.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Database } from 'node-sqlite3-wasm';
import { startEmbeddedBackend } from '../../../local/backends/embedded-backend';
import { EmbeddedDatabase } from '../../../local/embedded/database';
import { EmbeddedGovernanceLedger } from '../../../local/embedded/embedded-governance-ledger';
import { EmbeddedUsageRecords } from '../../../local/embedded/embedded-usage-records';
import { sweepExpired } from '../../../local/embedded/expiry';
import { LocalRootKey } from '../../../local/embedded/local-root-key';

const dirs: string[] = [];
const fresh = () => {
  const d = mkdtempSync(join(tmpdir(), 'sr-embedded-'));
  dirs.push(d);
  return d;
};
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

test('a second open of a state directory in use is refused; after close it opens again', () => {
  const dir = fresh();
  const db = new EmbeddedDatabase({ dir });
  expect(() => new EmbeddedDatabase({ dir })).toThrow(/another local gateway \(pid \d+\) is using/);
  db.close();
  new EmbeddedDatabase({ dir }).close();
});

test('a lock left by a process that no longer runs is taken over (kill -9 leaves one)', () => {
  const dir = fresh();
  new EmbeddedDatabase({ dir }).close();
  writeFileSync(join(dir, 'gateway.lock'), '2147483646'); // no such process
  const db = new EmbeddedDatabase({ dir });
  expect(readFileSync(join(dir, 'gateway.lock'), 'utf8')).toBe(String(process.pid));
  db.close();
});

test('the state directory is 0700 and its files 0600; the root key file is written once and reused', async () => {
  const dir = fresh();
  const b = await startEmbeddedBackend({ region: 'eu-central-1', providers: {}, stateDir: dir, requestDeadlineMs: 30_000, log: silent });
  await b.stop();
  expect(statSync(dir).mode & 0o777).toBe(0o700);
  for (const f of ['gateway.sqlite', 'usage.journal', 'root-key.bin', 'pepper']) expect([f, statSync(join(dir, f)).mode & 0o777]).toEqual([f, 0o600]);
  const a = LocalRootKey.open('eu-central-1', dir);
  const wrapped = await a.generateDataKey({ app: 'sovereign-router', tenant: 't' });
  const again = LocalRootKey.open('eu-central-1', dir);
  expect(again.keyArn).toBe(a.keyArn);
  expect(a.keyArn).toMatch(/^arn:aws:kms:eu-central-1:000000000000:key\/[0-9a-f-]{36}$/);
  expect((await again.decryptDataKey(wrapped.wrapped, { tenant: 't', app: 'sovereign-router' }, a.keyArn)).equals(wrapped.plaintext)).toBe(true);
  // Another directory's key opens nothing of this one.
  const other = LocalRootKey.open('eu-central-1', fresh());
  await expect(other.decryptDataKey(wrapped.wrapped, { app: 'sovereign-router', tenant: 't' }, other.keyArn)).rejects.toMatchObject({ reason: 'invalid_ciphertext' });
});

test('a frozen context opens only its own data key, every time (its AAD is kept with it); a changed or mutable context is encoded anew', async () => {
  const key = LocalRootKey.open('eu-central-1');
  const context = Object.freeze({ app: 'sovereign-router', region: 'eu-central-1', tenant: 't', provider: 'openai', secret: 'default', version: '1' });
  const made = await key.generateDataKey(context);
  for (let i = 0; i < 3; i++) expect((await key.decryptDataKey(made.wrapped, context, key.keyArn)).equals(made.plaintext)).toBe(true);
  // Another frozen context that differs in one value, or has a pair more, opens nothing.
  for (const other of [Object.freeze({ ...context, version: '2' }), Object.freeze({ ...context, tenant: 'u' }), Object.freeze({ ...context, extra: 'x' })]) {
    await expect(key.decryptDataKey(made.wrapped, other, key.keyArn)).rejects.toMatchObject({ reason: 'invalid_ciphertext' });
  }
  // A mutable context is read as it is at each call: changed after a first open, it opens nothing.
  const mutable: Record<string, string> = { ...context };
  expect((await key.decryptDataKey(made.wrapped, mutable, key.keyArn)).equals(made.plaintext)).toBe(true);
  mutable.version = '2';
  await expect(key.decryptDataKey(made.wrapped, mutable, key.keyArn)).rejects.toMatchObject({ reason: 'invalid_ciphertext' });
  // The frozen one still opens after all that.
  expect((await key.decryptDataKey(made.wrapped, context, key.keyArn)).equals(made.plaintext)).toBe(true);
});

test("a state directory belongs to one region: another region's gateway refuses it", async () => {
  const dir = fresh();
  await (await startEmbeddedBackend({ region: 'eu-central-1', providers: {}, stateDir: dir, requestDeadlineMs: 30_000, log: silent })).stop();
  await expect(startEmbeddedBackend({ region: 'us-east-1', providers: {}, stateDir: dir, requestDeadlineMs: 30_000, log: silent })).rejects.toThrow(/holds a eu-central-1 cell/);
  // The refused start released the directory.
  await (await startEmbeddedBackend({ region: 'eu-central-1', providers: {}, stateDir: dir, requestDeadlineMs: 30_000, log: silent })).stop();
});

test('TTL: expired usage records, counters and reservations are swept; live ones stay', () => {
  const db = new EmbeddedDatabase({ dir: fresh() });
  try {
    db.run("INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES ('t', 'a#1', 'a', '1', 100, '{}'), ('t', 'b#2', 'b', '2', 300, '{}')");
    db.run("INSERT INTO counters(pk, sk, requests, expires_at) VALUES ('RATE#t', 'w1', 1, 100), ('RATE#t', 'w2', 1, 300), ('SPEND#t', 'm', NULL, NULL)");
    db.run("INSERT INTO counters(pk, sk, reclaim_after, expires_at, body) VALUES ('RESV#t', 'r1', 50, 100, '{}'), ('RESV#t', 'r2', 50, 300, '{}')");
    expect(sweepExpired(db, 200)).toBe(3);
    expect(db.all('SELECT sk FROM usage').map((r) => r.sk)).toEqual(['b#2']);
    expect(db.all('SELECT sk FROM counters WHERE body IS NULL ORDER BY pk, sk').map((r) => r.sk)).toEqual(['w2', 'm']);
    expect(db.all("SELECT sk FROM counters WHERE pk = 'RESV#t' AND body IS NOT NULL").map((r) => r.sk)).toEqual(['r2']);
  } finally {
    db.close();
  }
});

test('TTL: every tenant is swept, past a batch of expired records; the live ones stay', () => {
  const db = new EmbeddedDatabase({ dir: fresh() });
  try {
    db.transaction(() => {
      for (let i = 0; i < 1_200; i++) db.run('INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)', ['a', `2026-01-01T00:00:00.${String(i).padStart(4, '0')}#r${i}`, 'x', `r${i}`, 100, '{}']);
      db.run("INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES ('a', '2026-02-01#live', 'x', 'live', 300, '{}'), ('b', '2026-01-01#old', 'x', 'old', 100, '{}'), ('b', '2026-02-01#new', 'x', 'new', 300, '{}'), ('c', '2026-01-01#old', 'x', 'old', 100, '{}')");
    });
    expect(sweepExpired(db, 200)).toBe(1_202);
    expect(db.all('SELECT tenant_id, request_id FROM usage ORDER BY tenant_id, sk')).toEqual([
      { tenant_id: 'a', request_id: 'live' },
      { tenant_id: 'b', request_id: 'new' },
    ]);
  } finally {
    db.close();
  }
});

test('a state directory made with the earlier schema (usage in a rowid table + index, reservations in a table of their own) is migrated on open, every row kept', async () => {
  const dir = fresh();
  // The previous schema, as the gateway created it (WAL mode), with rows of three tenants.
  const old = new Database(join(dir, 'gateway.sqlite'));
  old.all('PRAGMA journal_mode=WAL');
  old.exec(`CREATE TABLE usage(
    id INTEGER PRIMARY KEY, tenant_id TEXT NOT NULL, sk TEXT NOT NULL, at TEXT NOT NULL, request_id TEXT NOT NULL,
    expires_at INTEGER NOT NULL, body TEXT NOT NULL);
    CREATE UNIQUE INDEX usage_by_tenant ON usage(tenant_id, sk);
    CREATE TABLE counters(
      pk TEXT NOT NULL, sk TEXT NOT NULL,
      spentMicros INTEGER, reservedMicros INTEGER, committedMicros INTEGER, requests INTEGER, tokens INTEGER,
      expires_at INTEGER, token_id TEXT,
      PRIMARY KEY(pk, sk)) WITHOUT ROWID;
    CREATE TABLE reservations(
      pk TEXT NOT NULL, sk TEXT NOT NULL, reclaim_after INTEGER NOT NULL, expires_at INTEGER NOT NULL, body TEXT NOT NULL,
      PRIMARY KEY(pk, sk)) WITHOUT ROWID;
    INSERT INTO counters(pk, sk, spentMicros, reservedMicros, committedMicros, expires_at) VALUES ('SPEND#t1', '2026-03', 10, 70, 80, NULL);
    INSERT INTO reservations(pk, sk, reclaim_after, expires_at, body) VALUES
      ('RESV#t1', 'req-a', 1, 2000000000, '{"amountMicros":30,"period":"2026-03","tokenKey":"k","key":{"pk":"RESV#t1","sk":"req-a"}}'),
      ('RESV#t1', 'req-b', 1, 2000000000, '{"amountMicros":40,"period":"2026-03","tokenKey":"k","key":{"pk":"RESV#t1","sk":"req-b"}}');`);
  const rows: { tenant_id: string; sk: string; at: string; request_id: string; expires_at: number; body: string }[] = [];
  for (let i = 0; i < 900; i++) {
    const at = `2026-03-0${1 + (i % 9)}T00:00:00.000Z`;
    rows.push({ tenant_id: ['t1', 't2', 't3'][i % 3], sk: `${at}#req-${i}`, at, request_id: `req-${i}`, expires_at: 2_000_000_000, body: JSON.stringify({ tenantId: ['t1', 't2', 't3'][i % 3], requestId: `req-${i}`, at, costUsd: i / 1000 }) });
  }
  old.exec('BEGIN');
  for (const r of rows) old.run('INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)', [r.tenant_id, r.sk, r.at, r.request_id, r.expires_at, r.body]);
  old.exec('COMMIT');
  old.close();

  const db = new EmbeddedDatabase({ dir });
  try {
    const sorted = [...rows].sort((a, b) => (a.tenant_id === b.tenant_id ? (a.sk < b.sk ? -1 : 1) : a.tenant_id < b.tenant_id ? -1 : 1));
    expect(db.all('SELECT tenant_id, sk, at, request_id, expires_at, body FROM usage ORDER BY tenant_id, sk')).toEqual(sorted);
    expect(db.all('PRAGMA table_info(usage)').map((c) => c.name)).toEqual(['tenant_id', 'sk', 'at', 'request_id', 'expires_at', 'body']);
    expect(db.all("SELECT name FROM sqlite_master WHERE name IN ('usage_by_tenant', 'usage_clustered')")).toEqual([]);
    expect(String(db.one("SELECT sql FROM sqlite_master WHERE name = 'usage'")!.sql)).toMatch(/WITHOUT ROWID/);
    // The read side pages over the migrated rows in key order, and a new record joins them.
    const page = await new EmbeddedUsageRecords(db).queryUsage({ tenantId: 't2', from: '2026-03-01', to: '2026-03-09T99', limit: 1_000 });
    expect(page.records.map((r) => r.requestId)).toEqual(sorted.filter((r) => r.tenant_id === 't2').map((r) => r.request_id));
    db.run("INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES ('t2', '2026-03-10#new', 'x', 'new', 1, '{}')");
    // Reservations now live next to the counters; the ledger finds and releases them there.
    expect(db.all("SELECT name FROM sqlite_master WHERE name = 'reservations'")).toEqual([]);
    expect(db.all('SELECT pk, sk, spentMicros, reservedMicros, reclaim_after, body IS NOT NULL AS held FROM counters ORDER BY pk, sk')).toEqual([
      { pk: 'RESV#t1', sk: 'req-a', spentMicros: null, reservedMicros: null, reclaim_after: 1, held: 1 },
      { pk: 'RESV#t1', sk: 'req-b', spentMicros: null, reservedMicros: null, reclaim_after: 1, held: 1 },
      { pk: 'SPEND#t1', sk: '2026-03', spentMicros: 10, reservedMicros: 70, reclaim_after: null, held: 0 },
    ]);
    const ledger = new EmbeddedGovernanceLedger(db);
    expect((await ledger.expiredReservations('t1', 100, 10)).map((r) => r.amountMicros)).toEqual([30, 40]);
    expect(await ledger.write({ reservation: { delete: { pk: 'RESV#t1', sk: 'req-a' }, reclaimableAt: 100 }, counters: [{ key: { pk: 'SPEND#t1', sk: '2026-03' }, add: { reservedMicros: -30, committedMicros: -30 } }] })).toEqual({ ok: true });
    // A counter row is never taken for a reservation (its key is not one, and it holds no body).
    expect((await ledger.write({ reservation: { delete: { pk: 'SPEND#t1', sk: '2026-03' } }, counters: [] })).ok).toBe(false);
    expect(db.all("SELECT sk FROM counters WHERE pk = 'RESV#t1'").map((r) => r.sk)).toEqual(['req-b']);
    expect(db.one("SELECT reservedMicros FROM counters WHERE pk = 'SPEND#t1'")!.reservedMicros).toBe(40);
  } finally {
    db.close();
  }
  // Opening again migrates nothing and keeps everything.
  const again = new EmbeddedDatabase({ dir });
  try {
    expect(again.one('SELECT count(*) AS n FROM usage')!.n).toBe(901);
  } finally {
    again.close();
  }
});
