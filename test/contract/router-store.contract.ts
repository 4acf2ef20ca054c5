/**
 * RouterStore contract (the router's one read, and the usage log): what one read returns,
 * missing items, counters read with the request, and usage records appended, never replaced.
 */
import { createHash } from 'node:crypto';
import { AUDIT_GENESIS } from '../../lambda/core/audit-chain';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { BackendFactory, ContractBackend, freshTenantId } from './backend';
import { sealedSecret, secretWrite, tenantRecord, tokenRecord } from './tenant-store.contract';

const usage = (tenantId: string, requestId: string, at: string): UsageRecord => ({
  requestId,
  tenantId,
  tokenId: 'tok1',
  route: 'chat',
  model: 'gpt-4o',
  provider: 'openai',
  stream: false,
  status: 200,
  decision: 'ok',
  inputTokens: 3,
  outputTokens: 4,
  costUsd: 0.0001,
  latencyMs: 12,
  fallbackChain: [],
  at,
});

export function routerStoreContract(name: string, factory: BackendFactory): void {
  describe(`RouterStore contract: ${name}`, () => {
    let b: ContractBackend;
    beforeAll(() => {
      b = factory();
    });

    test("one read returns the token, the tenant, the default secret of each listed provider and the asked counters, unparsed", async () => {
      const id = freshTenantId('rs');
      const admin = tokenRecord(id, 'tenant-admin');
      await b.store.createTenant(tenantRecord(id, b.region), admin, { type: 'tenant.created', actor: 't', details: {} });
      const inv = tokenRecord(id, 'invoke');
      await b.store.putToken(inv, { type: 'token.created', actor: 't', details: {} });
      const openai = sealedSecret(id, b.region, b.keyArn, 'openai', 'default');
      const named = sealedSecret(id, b.region, b.keyArn, 'openai', 'team-b');
      const anthropic = sealedSecret(id, b.region, b.keyArn, 'anthropic', 'default');
      for (const s of [openai, named, anthropic]) await b.store.putSecret(secretWrite(s), { type: 'secret.created', actor: 't', details: {} });
      await b.raw.putCounterRow(`SPEND#${id}`, '2026-01', { spentMicros: 5, reservedMicros: 2, committedMicros: 7 });

      const read = await b.routerStore.loadRequestContext(inv.verifier, id, ['openai', 'mistral'], [
        { pk: `SPEND#${id}`, sk: '2026-01' },
        { pk: `RATE#${id}`, sk: '2026-01-01T00:00Z' },
      ]);
      expect(read.token).toEqual(inv);
      expect(read.tenant).toMatchObject({ tenantId: id, status: 'active', auditSeq: 5 });
      expect(read.tenant?.auditHead).not.toBe(AUDIT_GENESIS);
      // Only the listed providers' default secrets: not team-b, not anthropic.
      expect([...read.secrets.keys()]).toEqual(['openai#default']);
      expect(read.secrets.get('openai#default')).toEqual(openai);
      expect(read.tenant?.secretVersions).toEqual({ 'openai#default': { version: 1 }, 'openai#team-b': { version: 1 }, 'anthropic#default': { version: 1 } });
      expect([...read.counters.keys()]).toEqual([`SPEND#${id}|2026-01`]);
      expect(read.counters.get(`SPEND#${id}|2026-01`)).toMatchObject({ spentMicros: 5, reservedMicros: 2, committedMicros: 7 });
      expect(await b.routerStore.getSecret(id, 'openai', 'team-b')).toEqual(named);
      expect(await b.routerStore.getSecret(id, 'openai', 'nosuch')).toBeUndefined();
      // No erasure key yet (none sealed through the vault); then, in the same read, the stored item.
      expect(read.erasureKey).toBeUndefined();
      const e = await b.store.ensureErasureKey(id, Buffer.alloc(32, 9));
      const again = await b.routerStore.loadRequestContext(inv.verifier, id, ['openai'], []);
      expect(again.erasureKey).toMatchObject({ tenantId: id, key: e.toString('base64') });
    });

    test('a secret row is keyed by the key it was read under, never by what it claims to be', async () => {
      const id = freshTenantId('rsswap');
      await b.raw.putSecretRow(id, 'openai', 'default', { ...sealedSecret(id, b.region, b.keyArn, 'anthropic', 'other') });
      const read = await b.routerStore.loadRequestContext('c'.repeat(64), id, ['openai', 'anthropic'], []);
      expect([...read.secrets.keys()]).toEqual(['openai#default']);
      expect(read.secrets.get('openai#default')).toMatchObject({ provider: 'anthropic', secret: 'other' });
    });

    test('missing token and tenant come back undefined; nothing else is invented', async () => {
      const id = freshTenantId('rsnone');
      const read = await b.routerStore.loadRequestContext('e'.repeat(64), id, ['openai'], [{ pk: `SPEND#${id}`, sk: '2026-01' }]);
      expect(read.token).toBeUndefined();
      expect(read.tenant).toBeUndefined();
      expect(read.secrets.size).toBe(0);
      expect(read.counters.size).toBe(0);
    });

    test('loadRequestContextNow, where offered (an in-process store only), reads exactly what loadRequestContext reads, across changes and provider lists', async () => {
      const now = b.routerStore.loadRequestContextNow?.bind(b.routerStore);
      if (now === undefined) return; // DynamoDB: the router awaits loadRequestContext
      const id = freshTenantId('rsnow');
      const inv = tokenRecord(id, 'invoke');
      const same = async (providers: string[], verifier = inv.verifier, tenantId = id) => {
        const keys = [{ pk: `SPEND#${tenantId}`, sk: '2026-01' }];
        const viaPromise = await b.routerStore.loadRequestContext(verifier, tenantId, providers, keys);
        const direct = now(verifier, tenantId, providers, keys);
        expect(direct).toEqual(viaPromise);
        return direct;
      };
      expect((await same(['openai'])).tenant).toBeUndefined();
      await b.store.createTenant(tenantRecord(id, b.region), tokenRecord(id, 'tenant-admin'), { type: 'tenant.created', actor: 't', details: {} });
      await b.store.putToken(inv, { type: 'token.created', actor: 't', details: {} });
      const openai = sealedSecret(id, b.region, b.keyArn, 'openai', 'default');
      await b.store.putSecret(secretWrite(openai), { type: 'secret.created', actor: 't', details: {} });
      await b.raw.putCounterRow(`SPEND#${id}`, '2026-01', { spentMicros: 5, reservedMicros: 2, committedMicros: 7 });
      const read = await same(['openai', 'mistral']);
      expect(read.token).toEqual(inv);
      expect([...read.secrets.keys()]).toEqual(['openai#default']);
      // Another provider list, another tenant, an unknown verifier: each read for what it asked.
      const anthropic = sealedSecret(id, b.region, b.keyArn, 'anthropic', 'default');
      await b.store.putSecret(secretWrite(anthropic), { type: 'secret.created', actor: 't', details: {} });
      expect([...(await same(['anthropic', 'openai'])).secrets.keys()]).toEqual(['anthropic#default', 'openai#default']);
      expect((await same(['openai'], 'f'.repeat(64))).token).toBeUndefined();
      expect((await same(['openai'], inv.verifier, freshTenantId('rsnow2'))).tenant).toBeUndefined();
    });

    test('a counter field of the wrong type reads as stored; governance treats it as 0', async () => {
      const id = freshTenantId('rsbad');
      await b.raw.putCounterRow(`RATE#${id}`, '2026-01-01T00:00Z', { requests: 'many' });
      const read = await b.routerStore.loadRequestContext('d'.repeat(64), id, [], [{ pk: `RATE#${id}`, sk: '2026-01-01T00:00Z' }]);
      const { counterValue } = await import('../../lambda/core/governance/keys');
      expect(counterValue(read.counters.get(`RATE#${id}|2026-01-01T00:00Z`), 'requests')).toBe(0);
    });

    test('usage records are appended: two records at the same instant both stay, in time order', async () => {
      const id = freshTenantId('usage');
      const a = usage(id, 'req-a', '2026-01-02T03:04:05.000Z');
      const c = usage(id, 'req-c', '2026-01-02T03:04:06.000Z');
      const bb = usage(id, 'req-b', '2026-01-02T03:04:05.000Z');
      await Promise.all([b.routerStore.putUsage(c), b.routerStore.putUsage(a), b.routerStore.putUsage(bb)]);
      const stored = await b.raw.usageRecords(id);
      expect(stored.map((r) => r.requestId)).toEqual(['req-a', 'req-b', 'req-c']);
      expect(stored[0]).toMatchObject(a);
    });

    // The embedded adapter reads these rows through an in-process cache (local/embedded/row-cache.ts):
    // every change below must be seen by the very next read, as DynamoDB's strongly consistent read does.
    describe('every change is seen by the very next read (no stale token, tenant, secret or erasure key)', () => {
      const ev = (type: string) => ({ type, actor: 'contract-test', details: {} });
      const setup = async (prefix: string) => {
        const id = freshTenantId(prefix);
        const admin = tokenRecord(id, 'tenant-admin');
        await b.store.createTenant(tenantRecord(id, b.region), admin, ev('tenant.created'));
        const inv = tokenRecord(id, 'invoke');
        await b.store.putToken(inv, ev('token.created'));
        const secret = sealedSecret(id, b.region, b.keyArn, 'openai', 'default');
        await b.store.putSecret(secretWrite(secret), ev('secret.created'));
        await b.store.ensureErasureKey(id, Buffer.alloc(32, 7));
        // Warm: the rows are read (and, in the embedded adapter, cached) before each change.
        const warm = await b.routerStore.loadRequestContext(inv.verifier, id, ['openai'], []);
        expect(warm.token).toEqual(inv);
        expect(warm.secrets.get('openai#default')).toEqual(secret);
        expect(warm.erasureKey).toBeDefined();
        return { id, admin, inv, secret, read: () => b.routerStore.loadRequestContext(inv.verifier, id, ['openai'], []) };
      };

      test('a revoked token is gone on the next read', async () => {
        const t = await setup('rcrev');
        expect(await b.store.deleteToken(t.id, t.inv.tokenId, ev('token.revoked'))).toBe(true);
        expect((await t.read()).token).toBeUndefined();
      });

      test('a replaced token: the old verifier finds nothing, the new one its record', async () => {
        const t = await setup('rcrep');
        const next = tokenRecord(t.id, 'invoke');
        expect(await b.store.replaceToken(next, t.inv.tokenId, ev('token.rotated'))).toBe(true);
        expect((await t.read()).token).toBeUndefined();
        expect((await b.routerStore.loadRequestContext(next.verifier, t.id, [], [])).token).toEqual(next);
      });

      test('changed token limits are read at once', async () => {
        const t = await setup('rclim');
        await b.store.updateTokenLimits(t.id, t.inv.tokenId, { rpm: 1 }, ev('token.limits'));
        expect((await t.read()).token).toMatchObject({ tokenId: t.inv.tokenId, limits: { rpm: 1 } });
      });

      test('a rotated secret reads as its new version; a deleted one is gone (default and named reads)', async () => {
        const t = await setup('rcsec');
        expect(await b.routerStore.getSecret(t.id, 'openai', 'default')).toEqual(t.secret);
        const v2 = sealedSecret(t.id, b.region, b.keyArn, 'openai', 'default', 2);
        await b.store.putSecret(secretWrite(v2, 1), ev('secret.rotated'));
        const after = await t.read();
        expect(after.secrets.get('openai#default')).toEqual(v2);
        expect(after.tenant?.secretVersions).toEqual({ 'openai#default': { version: 2 } });
        expect(await b.routerStore.getSecret(t.id, 'openai', 'default')).toEqual(v2);
        expect(await b.store.deleteSecret(t.id, 'openai', 'default', ev('secret.deleted'))).toBe(true);
        expect((await t.read()).secrets.size).toBe(0);
        expect(await b.routerStore.getSecret(t.id, 'openai', 'default')).toBeUndefined();
      });

      test('a rewrapped secret (root-key migration) reads as its rewrapped row', async () => {
        const t = await setup('rcwrap');
        const after = { ...t.secret, wrappedKey: Buffer.alloc(64, 3).toString('base64') };
        expect(await b.store.rewrapSecret(t.secret, after, ev('secret.rewrapped'))).toBe(true);
        expect((await t.read()).secrets.get('openai#default')).toEqual(after);
      });

      test('a changed policy is read at once', async () => {
        const t = await setup('rcpol');
        await b.store.updatePolicy(t.id, { monthlyBudgetUsd: 1 }, ev('policy.updated'));
        expect((await t.read()).tenant?.policy).toEqual({ monthlyBudgetUsd: 1 });
      });

      test('an offboarded tenant: tenant offboarded, tokens, secrets and erasure key gone, on the next read', async () => {
        const t = await setup('rcoff');
        await b.store.offboardTenant(t.id, (c) => ({ type: 'tenant.offboarded', actor: 'contract-test', details: { ...c } }));
        const after = await t.read();
        expect(after.tenant).toMatchObject({ status: 'offboarded' });
        expect(after.token).toBeUndefined();
        expect(after.secrets.size).toBe(0);
        expect(after.erasureKey).toBeUndefined();
        expect((await b.routerStore.loadRequestContext(t.admin.verifier, t.id, [], [])).token).toBeUndefined();
      });

      test('a token moved to a new pepper verifier: the old verifier finds nothing, the new one the moved record', async () => {
        const t = await setup('rcpep');
        // A verifier of this tenant's own: the suite runs more than once on one table (SDK and lean clients).
        const to = { version: 2, verifier: createHash('sha256').update(t.id).digest('hex') };
        expect(await b.routerStore.moveTokenVerifier((await t.read()).token!, to)).toBe(true);
        expect((await t.read()).token).toBeUndefined();
        expect((await b.routerStore.loadRequestContext(to.verifier, t.id, [], [])).token).toMatchObject({ tokenId: t.inv.tokenId, verifier: to.verifier, pepperVersion: 2 });
      });

      test("a token's factor update (factor rotation) is read at once", async () => {
        const t = await setup('rcfac');
        const factorKey = { publicKey: Buffer.alloc(32, 5).toString('base64'), tag: Buffer.alloc(32, 6).toString('base64'), generation: 3 };
        expect(await b.store.updateTokenFactor(t.id, t.inv.verifier, { factorKey })).toBe(true);
        expect((await t.read()).token).toMatchObject({ factorKey });
      });

      test('rows changed under the store by another writer (raw rows) are never served stale', async () => {
        const t = await setup('rcraw');
        const planted = sealedSecret(t.id, b.region, b.keyArn, 'openai', 'default', 9);
        await b.raw.putSecretRow(t.id, 'openai', 'default', { ...planted });
        expect((await t.read()).secrets.get('openai#default')).toEqual(planted);
        await b.raw.deleteSecretRow(t.id, 'openai', 'default');
        expect((await t.read()).secrets.size).toBe(0);
        await b.raw.putErasureKeyItem(t.id, { key: Buffer.alloc(32, 1).toString('base64'), createdAt: '2026-01-01T00:00:00.000Z' });
        expect((await t.read()).erasureKey).toMatchObject({ key: Buffer.alloc(32, 1).toString('base64') });
      });

      test('an item handed out is a copy or cannot be changed (deeply): changing it does not change the next read', async () => {
        const t = await setup('rccopy');
        const first = await t.read();
        // The DynamoDB adapters hand out fresh items; the embedded store one deeply frozen item per
        // unchanged row, shared by the reads (row-cache.ts), where every write throws in strict code.
        const change = (item: unknown, name: string, value: unknown): void => {
          try {
            (item as Record<string, unknown>)[name] = value;
          } catch (err) {
            expect(err).toBeInstanceOf(TypeError);
            expect(Object.isFrozen(item)).toBe(true);
          }
        };
        change(first.token, 'role', 'tenant-admin');
        change(first.secrets.get('openai#default'), 'tenant', 'someone-else');
        change(first.tenant, 'status', 'active-ish');
        change((first.tenant as { policy: object }).policy, 'monthlyBudgetUsd', 1e9);
        change((first.tenant as { secretVersions: Record<string, object> }).secretVersions['openai#default'], 'version', 99);
        change(first.erasureKey, 'key', Buffer.alloc(32, 8).toString('base64'));
        const again = await t.read();
        expect(again.token).toEqual(t.inv);
        expect(again.secrets.get('openai#default')).toEqual(t.secret);
        expect(again.tenant).toMatchObject({ tenantId: t.id, status: 'active' });
        expect((again.tenant as { policy: object }).policy).toEqual(tenantRecord(t.id, b.region).policy);
        expect((again.tenant as { secretVersions: object }).secretVersions).toEqual({ 'openai#default': { version: 1 } });
        expect(again.erasureKey).toMatchObject({ key: Buffer.alloc(32, 7).toString('base64') });
      });
    });
  });
}
