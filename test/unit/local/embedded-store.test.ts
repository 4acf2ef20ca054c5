/**
 * The embedded store's own guarantees, apart from the port contracts: one gateway per state
 * directory (a live holder refuses a second, a dead one's lock is taken over), file modes, the
 * region a state directory belongs to, TTL sweeping, and the local root key file.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedBackend } from '../../../local/backends/embedded-backend';
import { EmbeddedDatabase } from '../../../local/embedded/database';
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
  for (const f of ['gateway.sqlite', 'root-key.bin', 'pepper']) expect([f, statSync(join(dir, f)).mode & 0o777]).toEqual([f, 0o600]);
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
    db.run("INSERT INTO reservations(pk, sk, reclaim_after, expires_at, body) VALUES ('RESV#t', 'r1', 50, 100, '{}'), ('RESV#t', 'r2', 50, 300, '{}')");
    expect(sweepExpired(db, 200)).toBe(3);
    expect(db.all('SELECT sk FROM usage').map((r) => r.sk)).toEqual(['b#2']);
    expect(db.all('SELECT sk FROM counters ORDER BY pk, sk').map((r) => r.sk)).toEqual(['w2', 'm']);
    expect(db.all('SELECT sk FROM reservations').map((r) => r.sk)).toEqual(['r2']);
  } finally {
    db.close();
  }
});
