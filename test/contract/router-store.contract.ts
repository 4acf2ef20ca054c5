/**
 * RouterStore contract (the router's one read, and the usage log): what one read returns,
 * missing items, counters read with the request, and usage records appended, never replaced.
 */
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
  });
}
