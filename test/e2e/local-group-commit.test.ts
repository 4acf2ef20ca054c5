/**
 * The embedded store's group commit and row cache seen through the local gateway (in-process,
 * embedded backend, fake OpenAI on loopback): a governed request alone in flight has its
 * reservation in the usage journal before the provider is called; its settle and its usage
 * record reach the journal in one write before the gateway ends the answer, and their SQL runs
 * after it (folded: no reservation row is written); 16 concurrent requests share commits; the row cache
 * holds sealed rows only (a canary provider key never appears in it), and a revoked token is
 * refused on the very next request.
 *
 * The "one write" claim holds because the router's end stage goes from the settle to putUsage
 * without waiting for a macrotask (local/embedded/database.ts); if this test fails after a change
 * to lambda/core/router/router-app.ts, that change made the end stage wait between them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jsonLogger } from '../../lambda/core/logger';
import { EmbeddedDatabase } from '../../local/embedded/database';
import { entriesOf, JournalEntry, UsageJournal } from '../../local/embedded/usage-journal';
import { LocalGateway, startLocalGateway } from '../../local/gateway';
import { canaryHits, makeCanary } from '../support/canary';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';
import { gatewayCall } from '../support/gateway-http';

const CANARY = makeCanary('groupcommit');
let fakes: FakeProviders;
let gw: LocalGateway;
let db: EmbeddedDatabase | undefined;
let admin: string;
let invoke: string;
const dir = mkdtempSync(join(tmpdir(), 'sr-group-'));
/**
 * Every write statement the gateway's database ran (run and runMirrored), and every usage record
 * it was given (deferredUsage: written to the usage journal before its group's COMMIT, under the
 * statement it stands for), with the commits done before it.
 */
const writes: { sql: string; commitsBefore: number; at: number }[] = [];
const realRun = EmbeddedDatabase.prototype.run;
const realRunMirrored = EmbeddedDatabase.prototype.runMirrored;
const realDeferredUsage = EmbeddedDatabase.prototype.deferredUsage;
const USAGE_INSERT = 'INSERT OR REPLACE INTO usage';
/** A reservation's write (alone, or in one statement with its counters): the only counters insert that sets reclaim_after. */
const RESERVATION = /^INSERT INTO counters\(pk, sk, [^)]*reclaim_after/;

const http = (method: string, path: string, body?: unknown, token?: string) => gatewayCall(gw.url, method, path, body, token);
/** The entries of every successful write to the usage journal, in order. */
const appends: JournalEntry[][] = [];
/** Each answer the gateway ended: its path, and the journal writes and commits done by then. */
const ends: { url?: string; appends: number; commits: number }[] = [];
const realAppend = UsageJournal.prototype.append;
const realEnd = ServerResponse.prototype.end;

beforeAll(async () => {
  jest.spyOn(EmbeddedDatabase.prototype, 'run').mockImplementation(function (this: EmbeddedDatabase, sql, params) {
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the gateway opens its database inside startLocalGateway; this is how the test gets it
    db = this;
    writes.push({ sql, commitsBefore: this.commits, at: Date.now() });
    return realRun.call(this, sql, params);
  });
  // The ledger's writes to the counters table (they keep the counter mirror, counter-mirror.ts).
  jest.spyOn(EmbeddedDatabase.prototype, 'runMirrored').mockImplementation(function (this: EmbeddedDatabase, sql, params) {
    writes.push({ sql, commitsBefore: this.commits, at: Date.now() });
    return realRunMirrored.call(this, sql, params);
  });
  jest.spyOn(EmbeddedDatabase.prototype, 'deferredUsage').mockImplementation(function (this: EmbeddedDatabase, row) {
    writes.push({ sql: USAGE_INSERT, commitsBefore: this.commits, at: Date.now() });
    return realDeferredUsage.call(this, row);
  });
  jest.spyOn(UsageJournal.prototype, 'append').mockImplementation(function (this: UsageJournal, frames, sync) {
    realAppend.call(this, frames, sync);
    appends.push(entriesOf(Buffer.concat(frames)));
  });
  jest.spyOn(ServerResponse.prototype, 'end').mockImplementation(function (this: ServerResponse, ...args: unknown[]) {
    ends.push({ url: this.req?.url, appends: appends.length, commits: db?.commits ?? -1 });
    return (realEnd as (...a: unknown[]) => ServerResponse).apply(this, args);
  });
  fakes = await startFakeProviders();
  fakes.setKey('openai', CANARY);
  gw = await startLocalGateway({ port: 0, stateDir: dir, providers: { openai: { kind: 'openai', baseUrl: fakes.openai.baseUrl } }, log: jsonLogger('local', () => undefined) });
  admin = (await http('POST', '/admin/tenants', { tenantId: 'group', mode: 'managed', policy: { monthlyBudgetUsd: 10 } })).json.token;
  expect((await http('POST', '/vault/secrets', { provider: 'openai', apiKey: CANARY }, admin)).status).toBe(201);
  invoke = (await http('POST', '/vault/tokens', { role: 'invoke', label: 'app' }, admin)).json.token;
}, 60_000);
afterAll(async () => {
  await gw?.stop();
  await fakes?.close();
  jest.restoreAllMocks();
  rmSync(dir, { recursive: true, force: true });
});

const chat = (token: string) => http('POST', '/v1/chat/completions', { model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: 'hello' }] }, token);

test("a governed request alone in flight: its reservation reaches the journal before the provider is called; its settle and usage record share one journal write before the answer's end; their SQL runs later, folded, before anything reads the store", async () => {
  writes.length = 0;
  appends.length = 0;
  ends.length = 0;
  let appendsAtProvider = -1;
  const requests = fakes.openai.requests;
  const push = requests.push;
  const spy = jest.spyOn(requests, 'push').mockImplementation(function (this: typeof requests, ...items) {
    appendsAtProvider = appends.length;
    return push.apply(this, items);
  });
  const r = await chat(invoke);
  spy.mockRestore();
  expect(r.status).toBe(200);
  // The reservation was on disk (a journal write) before the provider saw the request.
  const reservedAt = appends.findIndex((entries) => entries.some((e) => 'reservation' in e && e.reservation.put.sk === r.requestId));
  expect(reservedAt).toBeGreaterThanOrEqual(0);
  expect(reservedAt).toBeLessThan(appendsAtProvider);
  // When the gateway ended the answer, one journal write held this request's settle (its
  // reservation's deletion and counter updates) and its usage record: a kill -9 from then on
  // loses neither (test/unit/local/usage-journal.test.ts replays such a journal).
  const end = ends.filter((e) => e.url === '/v1/chat/completions').pop()!;
  const oneWrite = appends.slice(0, end.appends).find((entries) => entries.some((e) => 'ledger' in e && e.ledger.reservation.sk === r.requestId) && entries.some((e) => 'row' in e && e.row[3] === r.requestId));
  expect(oneWrite).toBeDefined();
  // No statement wrote the reservation or the settle before the answer ended.
  expect(writes.filter((w) => RESERVATION.test(w.sql) || w.sql.startsWith('DELETE FROM counters'))).toEqual([]);
  // Any reader sees them: the reservation and its settle fold into counter updates (no row ever written).
  expect(db!.all("SELECT body FROM usage WHERE request_id = ?", [r.requestId!])).toHaveLength(1);
  expect(db!.all("SELECT sk FROM counters WHERE pk = 'RESV#group' AND body IS NOT NULL")).toEqual([]);
  expect(db!.one("SELECT reservedMicros, spentMicros FROM counters WHERE pk = 'SPEND#group' AND reservedMicros IS NOT NULL")).toMatchObject({ reservedMicros: 0 });
  expect(writes.filter((w) => RESERVATION.test(w.sql))).toEqual([]);
  await db!.durable();
});

test('16 concurrent requests share commits (fewer commits than writes), none lost, every reservation settled', async () => {
  const before = db!.commits;
  writes.length = 0;
  const results = await Promise.all(Array.from({ length: 16 }, () => chat(invoke)));
  expect(results.map((r) => r.status)).toEqual(Array(16).fill(200));
  await db!.durable();
  expect(db!.commits - before).toBeLessThan(48); // 16 reservations, 16 settles, 16 usage records
  for (const r of results) expect(db!.all('SELECT 1 AS x FROM usage WHERE request_id = ?', [r.requestId!])).toHaveLength(1);
  expect(db!.all("SELECT sk FROM counters WHERE pk = 'RESV#group' AND body IS NOT NULL")).toEqual([]);
});

test('the row cache holds sealed rows only: the provider key never appears in it, in any encoding', async () => {
  expect((await chat(invoke)).status).toBe(200);
  const bodies = db!.rows.bodies();
  expect(bodies.some((b) => b.includes('"ciphertext"'))).toBe(true); // the sealed secret row is cached
  expect(canaryHits(bodies.join('\n'), [CANARY])).toEqual([]);
});

test('a token revoked through the vault is refused on the very next request; a new policy applies to the very next request', async () => {
  const extra = await http('POST', '/vault/tokens', { role: 'invoke', label: 'doomed' }, admin);
  expect((await chat(extra.json.token)).status).toBe(200); // read, and cached
  expect((await http('DELETE', `/vault/tokens/${extra.json.tokenId}`, undefined, admin)).status).toBeLessThan(300);
  expect((await chat(extra.json.token)).status).toBe(401);
  expect((await chat(invoke)).status).toBe(200);
  // A budget below any request's reservation: the very next call is refused for it.
  expect((await http('PUT', '/admin/tenants/group/policy', { policy: { monthlyBudgetUsd: 0.000001 } }, admin)).status).toBeLessThan(300);
  const denied = await chat(invoke);
  expect([denied.status, denied.json?.error?.code]).toEqual([429, 'budget_exceeded']);
});
