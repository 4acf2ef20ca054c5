/**
 * TenantStore contract (tenants, tokens, sealed secrets, the audit chain): conditional writes,
 * transactions with their audit event, races, missing items and malformed rows. Every adapter
 * must pass it unchanged.
 */
import { randomBytes } from 'node:crypto';
import { AUDIT_GENESIS, AuditEventInput } from '../../lambda/core/audit-chain';
import { verifyAuditTrail } from '../../lambda/core/audit-verify';
import { SealedSecret, SealedSecretError } from '../../lambda/core/envelope';
import { ConflictError, LastAdminTokenError, SecretWrite } from '../../lambda/core/store';
import type { TenantRecord, TokenRecord, TokenRole } from '../../lambda/core/tenant-model';
import { BackendFactory, ContractBackend, freshTenantId } from './backend';

const NOW = '2026-01-02T03:04:05.000Z';
const event = (type: string): AuditEventInput => ({ type, actor: 'contract-test', details: { n: 1 } });

export function tenantRecord(tenantId: string, region: string): TenantRecord {
  return { tenantId, region, mode: 'managed', status: 'active', policy: {}, createdAt: NOW, updatedAt: NOW, auditSeq: 0, auditHead: AUDIT_GENESIS };
}

export function tokenRecord(tenantId: string, role: TokenRole = 'invoke', tokenId = `tok${randomBytes(6).toString('hex')}`): TokenRecord {
  return { verifier: randomBytes(32).toString('hex'), tokenId, tenantId, role, createdAt: NOW };
}

export function sealedSecret(tenant: string, region: string, keyArn: string, provider = 'openai', secret = 'default', version = 1): SealedSecret {
  return {
    formatVersion: 1,
    algorithm: 'SR1-HKDF-SHA256-AES256GCM',
    keyArn,
    wrappedKey: randomBytes(64).toString('base64'),
    iv: randomBytes(12).toString('base64'),
    ciphertext: randomBytes(40).toString('base64'),
    tag: randomBytes(16).toString('base64'),
    region,
    tenant,
    provider,
    secret,
    version,
    sovereign: false,
    fingerprint: `sha256:${randomBytes(6).toString('hex')}`,
    createdAt: NOW,
  };
}

/** The write the vault makes: the row, and META's entry for its version. */
export const secretWrite = (sealed: SealedSecret, expectedVersion?: number): SecretWrite => ({ sealed, current: { version: sealed.version }, expectedVersion });

export function tenantStoreContract(name: string, factory: BackendFactory): void {
  describe(`TenantStore contract: ${name}`, () => {
    let b: ContractBackend;
    beforeAll(() => {
      b = factory();
    });

    /** A tenant with one tenant-admin token. */
    async function tenant(prefix = 'ts'): Promise<{ id: string; admin: TokenRecord }> {
      const id = freshTenantId(prefix);
      const admin = tokenRecord(id, 'tenant-admin', 'admin0');
      await b.store.createTenant(tenantRecord(id, b.region), admin, event('tenant.created'));
      return { id, admin };
    }

    test('missing items are undefined, empty lists are empty', async () => {
      const id = freshTenantId('none');
      expect(await b.store.getTenant(id)).toBeUndefined();
      expect(await b.store.getToken('f'.repeat(64))).toBeUndefined();
      expect(await b.store.listTokens(id)).toEqual([]);
      expect(await b.store.getSecret(id, 'openai', 'default')).toBeUndefined();
      expect(await b.store.listSecrets(id)).toEqual([]);
      expect(await b.store.listAudit(id)).toEqual([]);
      expect((await b.store.getCounterItems([{ pk: `SPEND#${id}`, sk: '2026-01' }])).size).toBe(0);
    });

    test('createTenant writes tenant, first token and the first audit event together; a second create conflicts and changes nothing', async () => {
      const { id, admin } = await tenant();
      const stored = await b.store.getTenant(id);
      expect(stored).toMatchObject({ tenantId: id, status: 'active', auditSeq: 1 });
      expect(await b.store.getToken(admin.verifier)).toEqual(admin);
      const audit = await b.store.listAudit(id);
      expect(audit.map((e) => [e.seq, e.type])).toEqual([[1, 'tenant.created']]);
      expect(stored!.auditHead).toBe(audit[0].mac);
      await expect(b.store.createTenant(tenantRecord(id, b.region), tokenRecord(id, 'tenant-admin'), event('tenant.created'))).rejects.toBeInstanceOf(ConflictError);
      expect(await b.store.listTokens(id)).toHaveLength(1);
      expect(await b.store.listAudit(id)).toHaveLength(1);
    });

    test('concurrent creates of one tenant: exactly one wins', async () => {
      const id = freshTenantId('race');
      const results = await Promise.allSettled(
        Array.from({ length: 6 }, () => b.store.createTenant(tenantRecord(id, b.region), tokenRecord(id, 'tenant-admin'), event('tenant.created'))),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
      expect(await b.store.listTokens(id)).toHaveLength(1);
    });

    test('tokens: put, list by tenant in id order, duplicate verifier conflicts, limits replaced and cleared', async () => {
      const { id, admin } = await tenant();
      const t2 = tokenRecord(id, 'invoke', 'tokb');
      const t1 = tokenRecord(id, 'invoke', 'toka');
      await b.store.putToken(t2, event('token.created'));
      await b.store.putToken(t1, event('token.created'));
      expect((await b.store.listTokens(id)).map((t) => t.tokenId)).toEqual(['admin0', 'toka', 'tokb']);
      await expect(b.store.putToken({ ...t1, tokenId: 'tokc' }, event('token.created'))).rejects.toBeInstanceOf(ConflictError);
      await expect(b.store.replaceToken({ ...t1, tokenId: 'tokd' }, 'tokb', event('token.rotated'))).rejects.toBeInstanceOf(ConflictError);
      expect(await b.store.getToken(t2.verifier)).toEqual(t2);
      expect(await b.store.updateTokenLimits(id, 'nosuch', { rpm: 5 }, event('token.limits'))).toBeUndefined();
      expect(await b.store.updateTokenLimits(id, 'toka', { rpm: 5 }, event('token.limits'))).toMatchObject({ tokenId: 'toka', limits: { rpm: 5 } });
      expect((await b.store.getToken(t1.verifier))?.limits).toEqual({ rpm: 5 });
      const cleared = await b.store.updateTokenLimits(id, 'toka', {}, event('token.limits'));
      expect(cleared).not.toHaveProperty('limits');
      expect(await b.store.getToken(t1.verifier)).not.toHaveProperty('limits');
      expect(await b.store.getToken(admin.verifier)).toEqual(admin);
      // 1 create + 2 puts + 2 limit changes; the refused put and the missing token recorded nothing.
      expect((await b.store.listAudit(id)).map((e) => e.type)).toEqual(['tenant.created', 'token.created', 'token.created', 'token.limits', 'token.limits']);
    });

    test('deleteToken: missing is false; the last tenant-admin token cannot go; replaceToken swaps atomically', async () => {
      const { id, admin } = await tenant();
      expect(await b.store.deleteToken(id, 'nosuch', event('token.deleted'))).toBe(false);
      await expect(b.store.deleteToken(id, admin.tokenId, event('token.deleted'))).rejects.toBeInstanceOf(LastAdminTokenError);
      const next = tokenRecord(id, 'tenant-admin', 'admin1');
      expect(await b.store.replaceToken(next, 'nosuch', event('token.rotated'))).toBe(false);
      expect(await b.store.replaceToken(next, admin.tokenId, event('token.rotated'))).toBe(true);
      expect(await b.store.getToken(admin.verifier)).toBeUndefined();
      expect((await b.store.listTokens(id)).map((t) => t.tokenId)).toEqual(['admin1']);
      const inv = tokenRecord(id, 'invoke', 'inv1');
      await b.store.putToken(inv, event('token.created'));
      expect(await b.store.deleteToken(id, 'inv1', event('token.deleted'))).toBe(true);
      expect(await b.store.getToken(inv.verifier)).toBeUndefined();
    });

    test('two admins revoking each other at once: exactly one revocation lands, the tenant keeps an admin', async () => {
      const { id, admin } = await tenant();
      const other = tokenRecord(id, 'tenant-admin', 'admin9');
      await b.store.putToken(other, event('token.created'));
      const results = await Promise.allSettled([
        b.store.deleteToken(id, admin.tokenId, event('token.deleted')),
        b.store.deleteToken(id, other.tokenId, event('token.deleted')),
      ]);
      expect(results.filter((r) => r.status === 'fulfilled' && r.value === true)).toHaveLength(1);
      const left = await b.store.listTokens(id);
      expect(left.filter((t) => t.role === 'tenant-admin')).toHaveLength(1);
    });

    test("META records each secret's current version with its row; delete removes both, and counts a row removed behind META's back", async () => {
      const { id } = await tenant();
      const v1 = sealedSecret(id, b.region, b.keyArn);
      await b.store.putSecret({ sealed: v1, current: { version: 1, salt: 'c2FsdA==' }, expectedVersion: undefined }, event('secret.created'));
      expect((await b.store.getTenant(id))?.secretVersions).toEqual({ 'openai#default': { version: 1, salt: 'c2FsdA==' } });
      const v2 = sealedSecret(id, b.region, b.keyArn, 'openai', 'default', 2);
      await b.store.putSecret(secretWrite(v2, 1), event('secret.rotated'));
      expect((await b.store.getTenant(id))?.secretVersions).toEqual({ 'openai#default': { version: 2 } });
      // META and the row must agree on the version they record.
      await expect(b.store.putSecret({ sealed: v2, current: { version: 3 }, expectedVersion: 2 }, event('secret.rotated'))).rejects.toThrow();
      // A create where META has no entry but a stray row exists is refused.
      await b.raw.putSecretRow(id, 'mistral', 'stray', { ...sealedSecret(id, b.region, b.keyArn, 'mistral', 'stray') });
      await expect(b.store.putSecret(secretWrite(sealedSecret(id, b.region, b.keyArn, 'mistral', 'stray')), event('secret.created'))).rejects.toBeInstanceOf(ConflictError);
      // The row disappears behind META's back: deleting still clears the entry and reports it.
      await b.raw.deleteSecretRow(id, 'openai', 'default');
      expect(await b.store.deleteSecret(id, 'openai', 'default', event('secret.deleted'))).toBe(true);
      expect((await b.store.getTenant(id))?.secretVersions).toEqual({});
      expect(await b.store.deleteSecret(id, 'openai', 'default', event('secret.deleted'))).toBe(false);
    });

    test('sealed secrets: create only if absent, rotate only from the expected version, delete only what exists', async () => {
      const { id } = await tenant();
      const v1 = sealedSecret(id, b.region, b.keyArn);
      await b.store.putSecret(secretWrite(v1), event('secret.created'));
      expect(await b.store.getSecret(id, 'openai', 'default')).toEqual(v1);
      await expect(b.store.putSecret(secretWrite(sealedSecret(id, b.region, b.keyArn)), event('secret.created'))).rejects.toBeInstanceOf(ConflictError);
      const v2 = sealedSecret(id, b.region, b.keyArn, 'openai', 'default', 2);
      await expect(b.store.putSecret(secretWrite(v2, 7), event('secret.rotated'))).rejects.toBeInstanceOf(ConflictError);
      await b.store.putSecret(secretWrite(v2, 1), event('secret.rotated'));
      expect(await b.store.getSecret(id, 'openai', 'default')).toEqual(v2);
      await b.store.putSecret(secretWrite(sealedSecret(id, b.region, b.keyArn, 'anthropic', 'team-b')), event('secret.created'));
      expect((await b.store.listSecrets(id)).map((s) => `${s.provider}/${s.secret}`).sort()).toEqual(['anthropic/team-b', 'openai/default']);
      expect(await b.store.deleteSecret(id, 'mistral', 'default', event('secret.deleted'))).toBe(false);
      expect(await b.store.deleteSecret(id, 'anthropic', 'team-b', event('secret.deleted'))).toBe(true);
      expect(await b.store.getSecret(id, 'anthropic', 'team-b')).toBeUndefined();
      expect((await b.store.listAudit(id)).map((e) => e.type)).toEqual(['tenant.created', 'secret.created', 'secret.rotated', 'secret.created', 'secret.deleted']);
    });

    test('rewrapSecret replaces exactly the row it read (key, wrapped key, version), with its audit event', async () => {
      const { id } = await tenant();
      const v1 = sealedSecret(id, b.region, b.keyArn);
      await b.store.putSecret(secretWrite(v1), event('secret.created'));
      const newKey = b.keyArn.replace(/[0-9a-f]{4}$/, 'beef');
      const rewrapped = { ...v1, keyArn: newKey, wrappedKey: randomBytes(64).toString('base64') };
      expect(await b.store.rewrapSecret(v1, rewrapped, event('secret.rewrapped'))).toBe(true);
      expect(await b.store.getSecret(id, 'openai', 'default')).toEqual(rewrapped);
      // The same rewrap again: the row is no longer `before`, nothing is written or recorded.
      expect(await b.store.rewrapSecret(v1, { ...rewrapped, wrappedKey: randomBytes(64).toString('base64') }, event('secret.rewrapped'))).toBe(false);
      expect(await b.store.getSecret(id, 'openai', 'default')).toEqual(rewrapped);
      // A rotation landed between read and write: the rotated row wins.
      const v2 = sealedSecret(id, b.region, b.keyArn, 'openai', 'default', 2);
      await b.store.putSecret(secretWrite(v2, 1), event('secret.rotated'));
      expect(await b.store.rewrapSecret(rewrapped, { ...rewrapped, wrappedKey: randomBytes(64).toString('base64') }, event('secret.rewrapped'))).toBe(false);
      expect(await b.store.getSecret(id, 'openai', 'default')).toEqual(v2);
      // A row written back behind META's back (same version as META, other bytes) is not `before` either.
      const planted = { ...v2, wrappedKey: randomBytes(64).toString('base64') };
      await b.raw.putSecretRow(id, 'openai', 'default', { ...planted });
      expect(await b.store.rewrapSecret(v2, { ...v2, keyArn: newKey }, event('secret.rewrapped'))).toBe(false);
      expect((await b.store.listAudit(id)).map((e) => e.type)).toEqual(['tenant.created', 'secret.created', 'secret.rewrapped', 'secret.rotated']);
    });

    test('concurrent rotations from the same version: exactly one lands', async () => {
      const { id } = await tenant();
      await b.store.putSecret(secretWrite(sealedSecret(id, b.region, b.keyArn)), event('secret.created'));
      const results = await Promise.allSettled(
        Array.from({ length: 5 }, () => b.store.putSecret(secretWrite(sealedSecret(id, b.region, b.keyArn, 'openai', 'default', 2), 1), event('secret.rotated'))),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
    });

    test('changes to a tenant that does not exist are refused', async () => {
      const id = freshTenantId('ghost');
      await expect(b.store.putToken(tokenRecord(id), event('token.created'))).rejects.toBeInstanceOf(ConflictError);
      await expect(b.store.putSecret(secretWrite(sealedSecret(id, b.region, b.keyArn)), event('secret.created'))).rejects.toBeInstanceOf(ConflictError);
      await expect(b.store.updatePolicy(id, { rpm: 1 }, event('policy'))).rejects.toBeInstanceOf(ConflictError);
      expect(await b.store.listTokens(id)).toEqual([]);
    });

    test('updatePolicy returns the stored tenant with its new policy and audit head', async () => {
      const { id } = await tenant();
      const updated = await b.store.updatePolicy(id, { rpm: 7, allowedModels: ['gpt-4o'] }, event('policy.updated'));
      expect(updated).toMatchObject({ tenantId: id, policy: { rpm: 7, allowedModels: ['gpt-4o'] }, auditSeq: 2 });
      expect(await b.store.getTenant(id)).toEqual(updated);
    });

    test('offboarding destroys tokens and secrets, clears META\'s secret versions, records it, and then refuses every change; a second offboarding conflicts', async () => {
      const { id, admin } = await tenant();
      await b.store.putToken(tokenRecord(id), event('token.created'));
      await b.store.putSecret(secretWrite(sealedSecret(id, b.region, b.keyArn)), event('secret.created'));
      const counts = await b.store.offboardTenant(id, (c) => ({ type: 'tenant.offboarded', actor: 'contract-test', details: { ...c } }));
      expect(counts).toEqual({ secrets: 1, tokens: 2, legacySecrets: 1 });
      expect(await b.store.getTenant(id)).toMatchObject({ status: 'offboarded', offboardedAt: expect.any(String), secretVersions: {} });
      expect(await b.store.listTokens(id)).toEqual([]);
      expect(await b.store.getToken(admin.verifier)).toBeUndefined();
      expect(await b.store.listSecrets(id)).toEqual([]);
      await expect(b.store.putSecret(secretWrite(sealedSecret(id, b.region, b.keyArn)), event('secret.created'))).rejects.toBeInstanceOf(ConflictError);
      await expect(b.store.putToken(tokenRecord(id), event('token.created'))).rejects.toBeInstanceOf(ConflictError);
      await expect(b.store.offboardTenant(id, () => event('again'))).rejects.toBeInstanceOf(ConflictError);
      const audit = await b.store.listAudit(id);
      expect(audit.at(-1)).toMatchObject({ type: 'tenant.offboarded', details: { secrets: 1, tokens: 2, legacySecrets: 1 } });
      const off = (await b.store.getTenant(id))!;
      expect((await verifyAuditTrail({ tenantId: id, events: audit, anchors: await b.audit.anchors.list(id), head: { seq: off.auditSeq, mac: off.auditHead }, secrets: [] }, b.audit.mac)).findings).toEqual([]);
    });

    test('erasure key: created once while active, the first writer wins, read back as stored', async () => {
      const { id } = await tenant('ek');
      expect(await b.store.getErasureKey(id)).toBeUndefined();
      const [k1, k2] = [randomBytes(32), randomBytes(32)];
      const both = await Promise.all([b.store.ensureErasureKey(id, k1), b.store.ensureErasureKey(id, k2)]);
      // Whoever won, both callers got the same stored key, and it is one of the two offered.
      expect(both[0]).toEqual(both[1]);
      expect([k1.toString('hex'), k2.toString('hex')]).toContain(both[0].toString('hex'));
      expect(await b.store.getErasureKey(id)).toEqual(both[0]);
      // A later ensure never replaces it.
      expect(await b.store.ensureErasureKey(id, randomBytes(32))).toEqual(both[0]);
      // The returned buffer is the caller's own copy: zeroing it does not touch the stored key.
      both[0].fill(0);
      expect(await b.store.getErasureKey(id)).toEqual(both[1]);
    });

    test('erasure key: none for a missing tenant; a malformed item is refused, not used', async () => {
      await expect(b.store.ensureErasureKey(freshTenantId('eknone'), randomBytes(32))).rejects.toBeInstanceOf(ConflictError);
      const { id } = await tenant('ekbad');
      for (const key of ['short', Buffer.alloc(16).toString('base64'), 'not base64!', 42]) {
        await b.raw.putErasureKeyItem(id, { key, createdAt: NOW });
        await expect(b.store.getErasureKey(id)).rejects.toMatchObject({ name: 'SealedSecretError', reason: 'erasure_key' });
        await expect(b.store.ensureErasureKey(id, randomBytes(32))).rejects.toMatchObject({ reason: 'erasure_key' });
      }
    });

    test('offboarding destroys the erasure key, and none can be created for the tenant afterwards', async () => {
      const { id } = await tenant('ekoff');
      await b.store.ensureErasureKey(id, randomBytes(32));
      await b.store.putSecret(secretWrite(sealedSecret(id, b.region, b.keyArn)), event('secret.created'));
      await b.store.offboardTenant(id, (c) => ({ type: 'tenant.offboarded', actor: 'contract-test', details: { ...c } }));
      expect(await b.store.getErasureKey(id)).toBeUndefined();
      await expect(b.store.ensureErasureKey(id, randomBytes(32))).rejects.toBeInstanceOf(ConflictError);
      expect(await b.store.getErasureKey(id)).toBeUndefined();
      expect((await b.routerStore.loadRequestContext('f'.repeat(64), id, ['openai'], [])).erasureKey).toBeUndefined();
    });

    test('concurrent changes to one tenant keep its audit chain whole: one event per change, no gap, no fork', async () => {
      const { id } = await tenant();
      const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => b.store.putToken(tokenRecord(id, 'invoke', `c${i}`), event('token.created'))));
      const landed = results.filter((r) => r.status === 'fulfilled').length;
      // A store may refuse a change that lost too many races (ConflictError), never record it anyway.
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(ConflictError);
      expect(landed).toBeGreaterThan(0);
      const audit = await b.store.listAudit(id);
      expect(audit.map((e) => e.seq)).toEqual(Array.from({ length: landed + 1 }, (_, i) => i + 1));
      const t = (await b.store.getTenant(id))!;
      const anchors = await b.audit.anchors.list(id);
      expect(await verifyAuditTrail({ tenantId: id, events: audit, anchors, head: { seq: t.auditSeq, mac: t.auditHead } }, b.audit.mac)).toMatchObject({ ok: true, events: landed + 1, unanchored: [] });
      expect(await b.store.listTokens(id)).toHaveLength(landed + 1);
    });

    test('a malformed sealed-secret row is refused when read (SealedSecretError), never returned half-parsed', async () => {
      const { id } = await tenant();
      const good = sealedSecret(id, b.region, b.keyArn, 'mistral', 'default');
      await b.raw.putSecretRow(id, 'mistral', 'default', { ...good, iv: 'not base64!', version: 1 });
      await expect(b.store.getSecret(id, 'mistral', 'default')).rejects.toBeInstanceOf(SealedSecretError);
      await expect(b.store.listSecrets(id)).rejects.toBeInstanceOf(SealedSecretError);
      // The router's read returns rows unparsed (it parses only after authentication).
      expect(await b.routerStore.getSecret(id, 'mistral', 'default')).toMatchObject({ iv: 'not base64!' });
    });
  });
}
