/**
 * Pepper rotation against moto with the production router wiring: what the overlap costs (one
 * read for every token, one conditional write to move a token on the previous pepper, after the
 * client's last byte), forged tokens and rows (no KMS call, no write), the settling time while
 * other processes still cache the old pepper, a forced rotation, and a rotation whose audit
 * event was lost in a crash.
 */
import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { createHmac } from 'node:crypto';
import { DynamoTenantStore } from '../../lambda/adapters/dynamo-tenant-store';
import { SecretsManagerPepperSource } from '../../lambda/adapters/secrets-manager-pepper';
import { createAdminApp } from '../../lambda/core/admin-app';
import type { Clock } from '../../lambda/core/ports';
import { createVaultApp } from '../../lambda/core/vault-app';
import { generateToken } from '../../lambda/core/token';
import { CELL_AUDIT_ID } from '../../lambda/core/store';
import { FAKE_PROVIDER_KEYS, RouterHarness, startRouterHarness } from '../support/router-harness';

jest.setTimeout(180_000);

let h: RouterHarness;
beforeAll(async () => {
  h = await startRouterHarness();
});
afterAll(() => h?.close());

const MIN = 60_000;
class TestClock implements Clock {
  t = Date.parse('2026-06-01T10:00:00.000Z');
  now(): Date {
    return new Date(this.t);
  }
}

/** One "process": its own pepper cache (15 minutes, the deployed default) and its apps. */
function process_(clock: Clock) {
  const pepper = new SecretsManagerPepperSource(h.cell.clients.secrets, h.cell.config.pepperSecretId, { clock });
  const config = h.cell.config;
  const adminApp = createAdminApp({ config, store: h.cell.store, pepper, pepperRotator: pepper, audit: h.cell.audit, clock });
  const vaultApp = createVaultApp({ config, store: h.cell.store, pepper, dataKeys: h.cell.dataKeys, usage: h.cell.usage, audit: h.cell.audit, clock });
  const router = h.makeRouter({ pepper });
  const json = (body: string) => {
    try {
      return JSON.parse(body);
    } catch {
      return body;
    }
  };
  return {
    pepper,
    async admin(method: string, path: string, body?: unknown) {
      const res = await adminApp({ method, path, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), iamCaller: 'arn:aws:iam::111122223333:role/Operator' });
      return { status: res.status, json: json(res.body) };
    },
    async vault(token: string, method: string, path: string, body?: unknown) {
      const res = await vaultApp({ method, path, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: res.status, json: json(res.body) };
    },
    async chat(token: string) {
      const { MemorySink } = await import('../../lambda/core/router/response-sink');
      const sink = new MemorySink();
      await router(
        { method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }), sourceIp: '203.0.113.7' },
        sink,
      );
      return { status: sink.status, json: json(sink.body), body: sink.body };
    },
  };
}

/** A tenant made through this process's apps (so its tokens are issued with this process's pepper). */
async function tenantVia(a: ReturnType<typeof process_>, id: string, mode: 'managed' | 'sovereign' = 'managed') {
  const created = await a.admin('POST', '/admin/tenants', { tenantId: id, mode });
  expect(created.status).toBe(201);
  const adminToken = created.json.token as string;
  expect((await a.vault(adminToken, 'POST', '/vault/secrets', { provider: 'openai', apiKey: FAKE_PROVIDER_KEYS.openai })).status).toBe(201);
  const inv = await a.vault(adminToken, 'POST', '/vault/tokens', { role: 'invoke', label: 'app' });
  expect(inv.status).toBe(201);
  return { adminToken, invokeToken: inv.json.token as string };
}

/** Advances past the pepper cache lifetime, so every process reads the secret again. */
const settle = (clock: TestClock) => (clock.t += 16 * MIN);

async function pepperVersionOf(tenantId: string, tokenId: string): Promise<number | undefined> {
  const t = (await h.cell.store.listTokens(tenantId)).find((x) => x.tokenId === tokenId);
  return t ? (t.pepperVersion ?? 1) : undefined;
}

test('overlap: one read per request for any token, one conditional move after the last byte, and a forged token costs no KMS call and no write', async () => {
  const clock = new TestClock();
  const a = process_(clock);
  const { invokeToken } = await tenantVia(a, 'ovl-managed');
  const sov = await tenantVia(a, 'ovl-sovereign', 'sovereign');
  const ids = async (tenant: string) => (await h.cell.store.listTokens(tenant)).find((t) => t.label === 'app')!.tokenId;

  expect((await a.admin('POST', '/admin/pepper/rotate', {})).status).toBe(200);
  settle(clock);

  for (const [tenant, token] of [
    ['ovl-managed', invokeToken],
    ['ovl-sovereign', sov.invokeToken],
  ] as const) {
    const tokenId = await ids(tenant);
    const from = await pepperVersionOf(tenant, tokenId);
    h.kmsCalls.length = 0;
    h.ddbCalls.length = 0;
    const first = await a.chat(token);
    expect(first.status).toBe(200);
    // One BatchGet before the provider (both verifiers in it), one Decrypt, then the move.
    expect(h.ddbCalls.filter((c) => c === 'BatchGetItemCommand')).toHaveLength(1);
    expect(h.ddbCalls.filter((c) => c === 'TransactWriteItemsCommand').length).toBeGreaterThanOrEqual(1);
    expect(h.kmsCalls).toEqual(['DecryptCommand']);
    expect(await pepperVersionOf(tenant, tokenId)).toBe((from ?? 1) + 1);

    h.ddbCalls.length = 0;
    expect((await a.chat(token)).status).toBe(200);
    // Moved: nothing more to write for it.
    expect(h.ddbCalls.filter((c) => c === 'BatchGetItemCommand')).toHaveLength(1);
    expect(h.ddbCalls.filter((c) => c === 'PutItemCommand' || c === 'DeleteItemCommand')).toEqual(['PutItemCommand']); // the usage record only
  }

  // A forged token (well formed, right checksum and region, never issued): 401 after the one
  // read, before KMS, and nothing written.
  h.kmsCalls.length = 0;
  h.ddbCalls.length = 0;
  const forged = await a.chat(generateToken('euc1', 'ovl-managed'));
  expect(forged.status).toBe(401);
  expect(forged.json.error.code).toBe('invalid_api_key');
  expect(h.kmsCalls).toEqual([]);
  expect(h.ddbCalls).toEqual(['BatchGetItemCommand']);
});

test('settling: right after a rotation tokens stay under the previous version, so a process with the old cache serves them; a second rotation waits', async () => {
  const clock = new TestClock();
  clock.t += 24 * 60 * MIN;
  const a = process_(clock);
  const b = process_(clock);
  const { adminToken, invokeToken } = await tenantVia(a, 'settle-t');
  // b reads (and caches) the pepper now; a rotates (force: other tests' tokens may sit on the previous version).
  expect((await b.chat(invokeToken)).status).toBe(200);
  const before = (await a.admin('GET', '/admin/pepper')).json;
  const rotated = await a.admin('POST', '/admin/pepper/rotate', { expectedVersion: before.current.version, force: true });
  expect(rotated.status).toBe(200);
  const v = rotated.json.toVersion as number;

  // Issued by the rotating process right away: under the previous version, which b (old cache) knows.
  const fresh = await a.vault(adminToken, 'POST', '/vault/tokens', { role: 'invoke', label: 'fresh' });
  expect(fresh.status).toBe(201);
  expect(await pepperVersionOf('settle-t', fresh.json.tokenId)).toBe(v - 1);
  expect((await b.chat(fresh.json.token)).status).toBe(200);
  // Used on a: found under the previous version, but not moved before the new one is issued everywhere.
  expect((await a.chat(invokeToken)).status).toBe(200);
  expect((await b.chat(invokeToken)).status).toBe(200);
  const status = (await a.admin('GET', '/admin/pepper')).json;
  expect(status).toMatchObject({ current: { version: v }, issuing: v - 1, canRotate: false });
  const early = await a.admin('POST', '/admin/pepper/rotate', { force: true });
  expect(early.status).toBe(409);
  expect(early.json.error.code).toBe('pepper_not_settled');

  // After the cache lifetime every process knows v; tokens move on use and keep working on both.
  settle(clock);
  expect((await b.chat(invokeToken)).status).toBe(200);
  expect((await a.chat(fresh.json.token)).status).toBe(200);
  const tokens = await h.cell.store.listTokens('settle-t');
  expect(tokens.find((t) => t.label === 'app')?.pepperVersion).toBe(v);
  expect(tokens.find((t) => t.label === 'fresh')?.pepperVersion).toBe(v);
  expect((await a.vault(adminToken, 'GET', '/vault/secrets')).status).toBe(200);
  expect((await b.chat(fresh.json.token)).status).toBe(200);
});

test('a forced rotation retires tokens left on the previous version: clear 401, counted as unreachable; a row forged under a retired pepper is never found', async () => {
  const clock = new TestClock();
  clock.t += 48 * 60 * MIN;
  const a = process_(clock);
  const { invokeToken } = await tenantVia(a, 'forced-t');
  const idle = (await h.cell.store.listTokens('forced-t')).find((t) => t.label === 'app')!;
  const retiredPepper = (await a.pepper.getPeppers()).current;
  expect(idle.pepperVersion).toBe(retiredPepper.version);

  // forced-t's token is on the current version; rotate twice without using it (the first rotation
  // forced: other tests' tokens may sit on the previous version).
  expect((await a.admin('POST', '/admin/pepper/rotate', { force: true })).status).toBe(200);
  settle(clock);
  const refused = await a.admin('POST', '/admin/pepper/rotate', {});
  expect(refused.status).toBe(409);
  expect(refused.json.error.code).toBe('tokens_on_previous_pepper');
  const forced = await a.admin('POST', '/admin/pepper/rotate', { force: true });
  expect(forced.status).toBe(200);
  expect(forced.json.retiredTokens).toBeGreaterThanOrEqual(1);
  settle(clock);

  const dead = await a.chat(invokeToken);
  expect(dead.status).toBe(401);
  expect(dead.json.error.message).toMatch(/not used while the region pepper was rotated twice/);
  const status = (await a.admin('GET', '/admin/pepper')).json;
  expect(status.unreachable).toBeGreaterThanOrEqual(1);
  expect(await pepperVersionOf('forced-t', idle.tokenId)).toBe(retiredPepper.version);

  // A table writer who knew the retired pepper plants a record for a token of its own making.
  const planted = generateToken('euc1', 'forced-t');
  await h.cell.clients.doc.send(
    new PutCommand({
      TableName: h.cell.config.tables.tokens,
      Item: { ...idle, verifier: createHmac('sha256', retiredPepper.pepper).update(planted).digest('hex'), tokenId: 'planted', pepperVersion: retiredPepper.version },
    }),
  );
  h.kmsCalls.length = 0;
  const res = await a.chat(planted);
  expect(res.status).toBe(401);
  expect(h.kmsCalls).toEqual([]);

  // Every rotation is in the cell's chain, which verifies.
  const trail = (await a.admin('GET', '/admin/cell/audit')).json;
  expect(trail.verification.ok).toBe(true);
  expect(trail.data.filter((e: { type: string }) => e.type === 'pepper.rotated').map((e: { details: { forced: boolean } }) => e.details.forced)).toContain(true);
});

test('a rotation whose audit event was lost (crash between the two) is recorded first by the next rotate', async () => {
  const clock = new TestClock();
  clock.t += 96 * 60 * MIN;
  const a = process_(clock);
  settle(clock);
  const before = (await a.admin('GET', '/admin/pepper')).json;
  // The rotation happens, then the process dies before it records it.
  await a.pepper.rotate(before.current.version);
  const unrecorded = (await a.admin('GET', '/admin/pepper')).json;
  expect(unrecorded.recordedThrough).toBe(before.current.version);
  expect(unrecorded.current.version).toBe(before.current.version + 1);

  settle(clock);
  const next = await a.admin('POST', '/admin/pepper/rotate', { force: true });
  expect(next.status).toBe(200);
  expect(next.json).toMatchObject({ recordedLate: before.current.version + 1, fromVersion: before.current.version + 1, toVersion: before.current.version + 2 });
  const events = await h.cell.store.listAudit(CELL_AUDIT_ID);
  const rotations = events.filter((e) => e.type === 'pepper.rotated').slice(-2);
  expect(rotations.map((e) => [e.details.toVersion, e.details.recordedLate ?? false])).toEqual([
    [before.current.version + 1, true],
    [before.current.version + 2, false],
  ]);
});

test('a revocation whose token listing still shows the verifier from before a move (index lag) revokes the moved token', async () => {
  const clock = new TestClock();
  clock.t += 200 * 60 * MIN;
  const a = process_(clock);
  settle(clock);
  const { adminToken, invokeToken } = await tenantVia(a, 'lag-t');
  const staleListing = await h.cell.store.listTokens('lag-t');
  expect((await a.admin('POST', '/admin/pepper/rotate', { force: true })).status).toBe(200);
  settle(clock);
  expect((await a.chat(invokeToken)).status).toBe(200); // moved to the new version
  expect((await a.vault(adminToken, 'GET', '/vault/tokens')).status).toBe(200); // the admin token too

  /** The byTenant index as DynamoDB may serve it for a moment after a move: the old verifiers. */
  class LaggingIndex extends DynamoTenantStore {
    stale = 2;
    override async listTokens(tenantId: string) {
      return this.stale-- > 0 ? staleListing : super.listTokens(tenantId);
    }
  }
  const store = new LaggingIndex(h.cell.clients.ddb, h.cell.config.tables, h.cell.audit.trail);
  const invokeId = staleListing.find((t) => t.label === 'app')!.tokenId;
  expect(await store.updateTokenLimits('lag-t', invokeId, { rpm: 9 }, { type: 'token.limits', actor: 'test', details: {} })).toMatchObject({ limits: { rpm: 9 } });
  store.stale = 2;
  expect(await store.deleteToken('lag-t', invokeId, { type: 'token.deleted', actor: 'test', details: {} })).toBe(true);
  expect((await a.chat(invokeToken)).status).toBe(401);
  // The last admin token stays protected through the lag as well.
  store.stale = 2;
  const adminId = staleListing.find((t) => t.role === 'tenant-admin')!.tokenId;
  await expect(store.deleteToken('lag-t', adminId, { type: 'token.deleted', actor: 'test', details: {} })).rejects.toThrow(/last tenant-admin token/);
});

test('a revocation whose token listing shows the moving token under neither verifier (index lag) looks again and revokes it; an unknown id is still a 404', async () => {
  const clock = new TestClock();
  clock.t += 400 * 60 * MIN;
  const a = process_(clock);
  settle(clock);
  const { adminToken, invokeToken } = await tenantVia(a, 'gap-t');
  expect((await a.admin('POST', '/admin/pepper/rotate', { force: true })).status).toBe(200);
  settle(clock);
  expect((await a.chat(invokeToken)).status).toBe(200); // moved to the new version
  const invokeId = (await h.cell.store.listTokens('gap-t')).find((t) => t.label === 'app')!.tokenId;

  /** The byTenant index between the put of the new verifier and the delete of the old: neither shown. */
  class GapIndex extends DynamoTenantStore {
    calls = 0;
    omitOn = new Set<number>();
    override async listTokens(tenantId: string) {
      const all = await super.listTokens(tenantId);
      return this.omitOn.has(this.calls++) ? all.filter((t) => t.tokenId !== invokeId) : all;
    }
  }
  const store = new GapIndex(h.cell.clients.ddb, h.cell.config.tables, h.cell.audit.trail);
  const vaultApp = createVaultApp({ config: h.cell.config, store, pepper: a.pepper, dataKeys: h.cell.dataKeys, usage: h.cell.usage, audit: h.cell.audit, clock });
  const revoke = async (tokenId: string) => {
    const res = await vaultApp({ method: 'DELETE', path: `/vault/tokens/${tokenId}`, headers: { authorization: `Bearer ${adminToken}` } });
    return { status: res.status, json: JSON.parse(res.body) };
  };

  // The store on its own: its first listing misses the token, the next shows it.
  store.omitOn = new Set([0]);
  expect(await store.updateTokenLimits('gap-t', invokeId, { rpm: 7 }, { type: 'token.limits', actor: 'test', details: {} })).toMatchObject({ limits: { rpm: 7 } });
  expect(store.calls).toBe(2);
  // The admin limits route, which finds the token by id in its own listing.
  const adminApp = createAdminApp({ config: h.cell.config, store, pepper: a.pepper, audit: h.cell.audit, clock });
  store.calls = 0;
  store.omitOn = new Set([0]);
  const limits = await adminApp({ method: 'GET', path: `/admin/tenants/gap-t/tokens/${invokeId}/limits`, headers: {}, iamCaller: 'arn:aws:iam::111122223333:role/Operator' });
  expect([limits.status, JSON.parse(limits.body).limits]).toEqual([200, { rpm: 7 }]);
  expect(store.calls).toBe(2);

  // The vault route (its own listing) and then the store's listing each miss the token once.
  store.calls = 0;
  store.omitOn = new Set([0, 2]);
  expect(await revoke(invokeId)).toEqual({ status: 200, json: { revoked: true, tokenId: invokeId } });
  expect(store.calls).toBe(4);
  expect((await a.chat(invokeToken)).status).toBe(401);
  expect((await h.cell.store.listTokens('gap-t')).map((t) => t.tokenId)).not.toContain(invokeId);

  // A genuinely unknown (or already revoked) id: looked for 1 + 3 times, then a 404; nothing deleted.
  store.omitOn = new Set();
  const before = (await h.cell.store.listTokens('gap-t')).map((t) => t.tokenId).sort();
  for (const id of [invokeId, 'tok_doesnotexist']) {
    store.calls = 0;
    const res = await revoke(id);
    expect(res.status).toBe(404);
    expect(res.json.error).toMatchObject({ code: 'token_not_found' });
    expect(store.calls).toBe(4);
  }
  store.calls = 0;
  expect(await store.deleteToken('gap-t', 'tok_doesnotexist', { type: 'token.deleted', actor: 'test', details: {} })).toBe(false);
  expect(store.calls).toBe(4);
  expect((await h.cell.store.listTokens('gap-t')).map((t) => t.tokenId).sort()).toEqual(before);
});

test('pepper admin routes: SigV4 caller required, malformed and oversized bodies refused before anything rotates, no rotator is a 501, nothing secret in any answer', async () => {
  const clock = new TestClock();
  const a = process_(clock);
  const before = (await a.admin('GET', '/admin/pepper')).json;
  const raw = createAdminApp({ config: h.cell.config, store: h.cell.store, pepper: a.pepper, pepperRotator: a.pepper, audit: h.cell.audit, clock });
  const call = (body: string | undefined, iamCaller?: string, app = raw) =>
    app({ method: 'POST', path: '/admin/pepper/rotate', headers: { 'content-type': 'application/json' }, body, ...(iamCaller ? { iamCaller } : {}) });
  const op = 'arn:aws:iam::111122223333:role/Operator';
  expect((await call('{}')).status).toBe(403);
  for (const [body, status] of [
    ['{', 400],
    ['[]', 400],
    ['{"force":"yes"}', 400],
    ['{"expectedVersion":0}', 400],
    ['{"expectedVersion":1.5}', 400],
    ['{"force":true,"pepper":"mine"}', 400],
    [JSON.stringify({ force: true, pad: 'x'.repeat(h.cell.config.maxRequestBytes) }), 413],
  ] as const) {
    const res = await call(body, op);
    expect([body.slice(0, 40), res.status]).toEqual([body.slice(0, 40), status]);
    expect(JSON.parse(res.body).error).toEqual(expect.objectContaining({ code: expect.any(String), message: expect.any(String) }));
  }
  const noRotator = createAdminApp({ config: h.cell.config, store: h.cell.store, pepper: a.pepper, audit: h.cell.audit, clock });
  expect((await call('{}', op, noRotator)).status).toBe(501);
  expect((await a.admin('GET', '/admin/pepper')).json.current.version).toBe(before.current.version);

  // Status and audit answers carry versions and ids, never a pepper or a verifier.
  const ring = await a.pepper.getPeppers();
  const peppers = [ring.current.pepper, ring.previous?.pepper].filter((p): p is Buffer => p !== undefined);
  await tenantVia(a, 'routes-t');
  const verifiers = (await h.cell.store.listTokens('routes-t')).map((t) => t.verifier);
  expect(verifiers).toHaveLength(2);
  const answers = JSON.stringify([(await a.admin('GET', '/admin/pepper')).json, (await a.admin('GET', '/admin/cell/audit')).json]);
  for (const p of peppers) {
    expect(answers).not.toContain(p.toString('utf8'));
    expect(answers).not.toContain(p.toString('hex'));
  }
  for (const v of verifiers) expect(answers).not.toContain(v);
});
