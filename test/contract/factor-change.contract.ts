/**
 * Issue 10, points 2 and 3: tenant-factor rotation and managed <-> sovereign conversion, run through
 * the admin, vault and router apps on one backend's ports (the AWS adapters on moto and the
 * embedded adapters run it unchanged). A tenant with secrets and tokens keeps being served before,
 * during (after a crash in the middle) and after each change; every token keeps working; rows from
 * before a change are refused; every step is in the tenant's verified audit trail.
 */
import { readAuditVerification } from '../../lambda/core/audit-read';
import { createAdminApp } from '../../lambda/core/admin-app';
import { type SealedSecret } from '../../lambda/core/envelope';
import type { HttpRequest } from '../../lambda/core/http';
import type { DataKeyService, EncryptionContext, GeneratedDataKey } from '../../lambda/core/ports';
import { createRouterApp } from '../../lambda/core/router/router-app';
import type { ProviderClient, ProviderRequest } from '../../lambda/core/router/provider-port';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { runFactorChange } from '../../lambda/core/lifecycle/factor-change';
import type { TenantRecord } from '../../lambda/core/tenant-model';
import { createVaultApp } from '../../lambda/core/vault-app';
import { BackendFactory, ContractBackend, freshTenantId } from './backend';

const KEYS: Record<string, string> = { openai: 'sk-openai-factor-0123456789abcdef', mistral: 'mistral-factor-0123456789abcdef' };
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined, debug: () => undefined };

/** A provider that answers every chat completion and records the key it was called with. */
function recordingProvider(): ProviderClient & { keys: string[] } {
  const keys: string[] = [];
  return {
    keys,
    async send(req: ProviderRequest) {
      keys.push(req.apiKey);
      const body = JSON.stringify({
        id: 'chatcmpl-1',
        object: 'chat.completion',
        created: 1,
        model: req.target.model,
        choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
      });
      return { status: 200, headers: new Headers({ 'content-type': 'application/json' }), body: new Response(body).body };
    },
  };
}

/** Data keys that fail (a crash) on the n-th GenerateDataKey from now on, when armed. */
class CrashingDataKeys implements DataKeyService {
  crashAt: number | undefined;
  private generated = 0;
  constructor(private readonly inner: DataKeyService) {}
  async generateDataKey(context: EncryptionContext): Promise<GeneratedDataKey> {
    if (this.crashAt !== undefined && ++this.generated >= this.crashAt) throw new Error('simulated crash');
    return this.inner.generateDataKey(context);
  }
  decryptDataKey(wrapped: Buffer, context: EncryptionContext, keyArn: string): Promise<Buffer> {
    return this.inner.decryptDataKey(wrapped, context, keyArn);
  }
}

export function factorChangeContract(name: string, factory: BackendFactory): void {
  describe(`factor rotation and mode conversion: ${name}`, () => {
    let b: ContractBackend;
    let admin: (req: HttpRequest) => Promise<{ status: number; body: string }>;
    let vaultApp: (req: HttpRequest) => Promise<{ status: number; body: string }>;
    let router: ReturnType<typeof createRouterApp>;
    let provider: ReturnType<typeof recordingProvider>;
    let lifecycleKeys: CrashingDataKeys;

    beforeAll(() => {
      b = factory();
      const config = {
        region: b.region,
        maxRequestBytes: 1024 * 1024,
        requestDeadlineMs: 10_000,
        providers: { openai: { kind: 'openai' as const, baseUrl: 'http://127.0.0.1:9' }, mistral: { kind: 'mistral' as const, baseUrl: 'http://127.0.0.1:9' } },
      };
      lifecycleKeys = new CrashingDataKeys(b.dataKeys);
      admin = createAdminApp({ config, store: b.store, pepper: b.pepper, audit: b.audit, keyLifecycle: lifecycleKeys });
      vaultApp = createVaultApp({ config, store: b.store, pepper: b.pepper, dataKeys: b.dataKeys, audit: b.audit, usage: { query: async () => ({ records: [] }) } as never });
      provider = recordingProvider();
      router = createRouterApp({ config, store: b.routerStore, pepper: b.pepper, dataKeys: b.dataKeys, providers: provider, log: silent as never });
    });

    const json = (body: string) => JSON.parse(body) as Record<string, any>;
    const call = async (app: typeof admin, method: string, path: string, body?: unknown, token?: string) => {
      const res = await app({
        method,
        path,
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
        iamCaller: 'arn:aws:iam::111122223333:role/Operator',
      });
      return { status: res.status, json: json(res.body) };
    };
    /** One chat completion through the router; the key the provider saw, or the error. */
    const invoke = async (token: string, model = 'gpt-4o-mini'): Promise<{ status: number; key?: string; code?: string }> => {
      const sink = new MemorySink();
      const before = provider.keys.length;
      await router(
        { method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }), sourceIp: '203.0.113.7' },
        sink,
      );
      const body = json(sink.body);
      return { status: sink.status!, key: provider.keys.length > before ? provider.keys[provider.keys.length - 1] : undefined, code: body.error?.code };
    };

    /** A tenant with two secrets, a second tenant-admin token and two invoke tokens. */
    async function tenant(mode: 'managed' | 'sovereign') {
      const id = freshTenantId('fc');
      const created = await call(admin, 'POST', '/admin/tenants', { tenantId: id, mode });
      expect(created.status).toBe(201);
      const adminToken = created.json.token as string;
      for (const [p, apiKey] of Object.entries(KEYS)) expect((await call(vaultApp, 'POST', '/vault/secrets', { provider: p, apiKey }, adminToken)).status).toBe(201);
      const mk = async (role: string) => {
        const r = await call(vaultApp, 'POST', '/vault/tokens', { role }, adminToken);
        expect(r.status).toBe(201);
        return { token: r.json.token as string, tokenId: r.json.tokenId as string };
      };
      return { id, adminToken, admin2: await mk('tenant-admin'), invokeA: await mk('invoke'), invokeB: await mk('invoke') };
    }
    const tenantOf = async (id: string) => (await b.store.getTenant(id)) as TenantRecord;
    const rowsOf = async (id: string) => new Map((await b.store.listSecrets(id)).map((s) => [`${s.provider}#${s.secret}`, s] as const));
    const expectServed = async (token: string) => {
      expect(await invoke(token)).toMatchObject({ status: 200, key: KEYS.openai });
      expect(await invoke(token, 'mistral-small-latest')).toMatchObject({ status: 200, key: KEYS.mistral });
    };
    const expectTrailOk = async (id: string) => {
      const { verification: v } = await readAuditVerification(b.store, b.audit, await tenantOf(id));
      expect(v.findings).toEqual([]);
      expect(v.ok).toBe(true);
    };
    /** Puts a pre-change row back (what a table writer or a restore from backup does). */
    const writeBack = (row: SealedSecret) => b.raw.putSecretRow(row.tenant, row.provider, row.secret, { ...row });

    it('rotates a sovereign tenant factor: every secret resealed, every token kept, old rows refused, audited', async () => {
      const t = await tenant('sovereign');
      const before = await rowsOf(t.id);
      const metaBefore = await tenantOf(t.id);
      await expectServed(t.invokeA.token);

      const res = await call(admin, 'POST', `/admin/tenants/${t.id}/factor/rotate`, { token: t.adminToken });
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ tenantId: t.id, kind: 'rotate', fromGeneration: 1, toGeneration: 2, mode: 'sovereign', resumed: false, secretsResealed: 2, tokensRewrapped: 3 });
      // The token that ran it got its box at the start, the three others in the wrap stage.
      expect(res.json.tokensPromoted).toBe(4);

      const meta = await tenantOf(t.id);
      expect(meta.factorGeneration).toBe(2);
      expect(meta.factorChange).toBeUndefined();
      for (const [slot, row] of await rowsOf(t.id)) {
        expect(row.version).toBe(before.get(slot)!.version + 1);
        expect(row.wrappedKey).not.toBe(before.get(slot)!.wrappedKey);
        expect(row.fingerprint).toBe(before.get(slot)!.fingerprint); // same provider key
        expect(meta.secretVersions![slot]).toMatchObject({ version: row.version, generation: 2 });
        expect(meta.secretVersions![slot].salt).not.toBe(metaBefore.secretVersions![slot].salt);
      }
      for (const tk of await b.store.listTokens(t.id)) {
        expect(tk.wrappedFactor).toMatchObject({ scheme: 'X25519-HKDF-SHA256-AES256GCM', generation: 2 });
        expect(tk.pendingFactor).toBeUndefined();
        expect(tk.factorKey).toMatchObject({ generation: 2 });
      }
      // Every token still works: both invoke tokens on the router, both admin tokens on the vault.
      await expectServed(t.invokeA.token);
      await expectServed(t.invokeB.token);
      expect((await call(vaultApp, 'GET', '/vault/secrets', undefined, t.admin2.token)).status).toBe(200);
      // Sealing and issuing under generation 2 work (new secret, new token that is served).
      expect((await call(vaultApp, 'PUT', '/vault/secrets/openai/default', { apiKey: KEYS.openai }, t.admin2.token)).status).toBe(200);
      const fresh = await call(vaultApp, 'POST', '/vault/tokens', { role: 'invoke' }, t.admin2.token);
      expect(fresh.status).toBe(201);
      await expectServed(fresh.json.token);

      // A pre-rotation row written back is refused before any provider call (META names another version).
      await writeBack(before.get('mistral#default')!);
      expect(await invoke(t.invokeA.token, 'mistral-small-latest')).toEqual({ status: 500, code: 'secret_integrity_failure' });

      const types = (await b.store.listAudit(t.id)).map((e) => e.type);
      expect(types).toEqual(expect.arrayContaining(['tenant.factor_change_started', 'secret.resealed', 'tenant.factor_rotated']));
      expect(types.filter((x) => x === 'secret.resealed')).toHaveLength(2);
    });

    it('resumes after a crash in the middle; the router serves rows of both generations meanwhile; other writes wait', async () => {
      const t = await tenant('sovereign');
      lifecycleKeys.crashAt = 2; // the first reseal lands, the second crashes
      const crashed = await call(admin, 'POST', `/admin/tenants/${t.id}/factor/rotate`, { token: t.adminToken });
      lifecycleKeys.crashAt = undefined;
      expect(crashed.status).toBe(500);
      expect(JSON.stringify(crashed.json)).not.toContain('sk-');

      const mid = await tenantOf(t.id);
      expect(mid.factorChange).toMatchObject({ kind: 'rotate', fromGeneration: 1, toGeneration: 2 });
      const gens = Object.values(mid.secretVersions!).map((e) => e.generation ?? 1).sort();
      expect(gens).toEqual([1, 2]);
      // Both rows open (one per generation), with every token.
      await expectServed(t.invokeA.token);
      await expectServed(t.invokeB.token);
      // No other secret or token write lands during the change.
      const put = await call(vaultApp, 'PUT', '/vault/secrets/openai/default', { apiKey: KEYS.openai }, t.adminToken);
      expect(put.status).toBe(409);
      expect((await call(vaultApp, 'POST', '/vault/tokens', { role: 'invoke' }, t.adminToken)).status).toBe(409);
      // A different kind cannot start over it; a token without the new factor cannot resume it...
      expect((await call(admin, 'POST', `/admin/tenants/${t.id}/convert`, { to: 'managed', token: t.adminToken })).json.error.code).toBe('factor_change_in_progress');
      // ...revoking a token is still possible (and it then gets nothing).
      expect((await call(vaultApp, 'DELETE', `/vault/tokens/${t.invokeB.tokenId}`, undefined, t.adminToken)).status).toBe(200);

      const resumed = await call(admin, 'POST', `/admin/tenants/${t.id}/factor/rotate`, { token: t.admin2.token });
      expect(resumed.status).toBe(200);
      expect(resumed.json).toMatchObject({ resumed: true, fromGeneration: 1, toGeneration: 2, secretsResealed: 1, tokensRewrapped: 0 });
      expect((await tenantOf(t.id)).factorChange).toBeUndefined();
      await expectServed(t.invokeA.token);
      expect(await invoke(t.invokeB.token)).toMatchObject({ status: 401 });
      await expectTrailOk(t.id);
    });

    it('converts managed -> sovereign -> managed with secrets and tokens; served after each; pre-conversion rows refused', async () => {
      const t = await tenant('managed');
      const managedRows = await rowsOf(t.id);
      await expectServed(t.invokeA.token);

      const toSov = await call(admin, 'POST', `/admin/tenants/${t.id}/convert`, { to: 'sovereign', token: t.adminToken });
      expect(toSov.status).toBe(200);
      expect(toSov.json).toMatchObject({ kind: 'to-sovereign', fromGeneration: 0, toGeneration: 1, mode: 'sovereign', secretsResealed: 2 });
      const sov = await tenantOf(t.id);
      expect(sov.mode).toBe('sovereign');
      for (const row of (await rowsOf(t.id)).values()) expect(row.sovereign).toBe(true);
      await expectServed(t.invokeA.token);
      await expectServed(t.invokeB.token);
      // The managed row from before is refused: META names a sovereign version.
      const sovRows = await rowsOf(t.id);
      await writeBack(managedRows.get('openai#default')!);
      expect(await invoke(t.invokeA.token)).toEqual({ status: 500, code: 'secret_integrity_failure' });
      await writeBack(sovRows.get('openai#default')!);
      await expectServed(t.invokeA.token);

      const toMan = await call(admin, 'POST', `/admin/tenants/${t.id}/convert`, { to: 'managed', token: t.admin2.token });
      expect(toMan.status).toBe(200);
      expect(toMan.json).toMatchObject({ kind: 'to-managed', fromGeneration: 1, toGeneration: 0, mode: 'managed', secretsResealed: 2 });
      expect((await tenantOf(t.id)).mode).toBe('managed');
      for (const row of (await rowsOf(t.id)).values()) expect(row.sovereign).toBe(false);
      for (const tk of await b.store.listTokens(t.id)) expect(tk.wrappedFactor).toBeUndefined();
      await expectServed(t.invokeA.token);
      await expectServed(t.invokeB.token);
      // The sovereign row from before is refused too, and so is the very first managed row.
      const managedAgain = await rowsOf(t.id);
      await writeBack(sovRows.get('mistral#default')!);
      expect(await invoke(t.invokeA.token, 'mistral-small-latest')).toEqual({ status: 500, code: 'secret_integrity_failure' });
      await writeBack(managedAgain.get('mistral#default')!);
      await writeBack(managedRows.get('openai#default')!);
      expect(await invoke(t.invokeA.token)).toEqual({ status: 500, code: 'secret_integrity_failure' });

      // And back to sovereign once more, at a generation never used before.
      const again = await call(admin, 'POST', `/admin/tenants/${t.id}/convert`, { to: 'sovereign', token: t.adminToken });
      expect(again.status).toBe(409); // the openai row is the rolled-back one: refused, named, nothing changed
      expect(again.json.error.code).toBe('secret_not_current');
      expect((await tenantOf(t.id)).factorChange).toMatchObject({ kind: 'to-sovereign', toGeneration: 2 });
      expect((await call(vaultApp, 'DELETE', '/vault/secrets/openai/default', undefined, t.adminToken)).status).toBe(200);
      const resumed = await call(admin, 'POST', `/admin/tenants/${t.id}/convert`, { to: 'sovereign', token: t.adminToken });
      expect(resumed.json).toMatchObject({ resumed: true, toGeneration: 2, mode: 'sovereign' });
      expect(await invoke(t.invokeB.token, 'mistral-small-latest')).toMatchObject({ status: 200, key: KEYS.mistral });
      const types = (await b.store.listAudit(t.id)).map((e) => e.type);
      expect(types.filter((x) => x === 'tenant.converted')).toHaveLength(3);
    });

    it('refuses what does not apply: wrong kind for the mode, invoke or foreign tokens, malformed input; nothing changes', async () => {
      const m = await tenant('managed');
      const s = await tenant('sovereign');
      const codeOf = async (path: string, body: unknown) => {
        const r = await call(admin, 'POST', path, body);
        return [r.status, r.json.error?.code];
      };
      expect(await codeOf(`/admin/tenants/${m.id}/factor/rotate`, { token: m.adminToken })).toEqual([409, 'factor_change_not_applicable']);
      expect(await codeOf(`/admin/tenants/${m.id}/convert`, { to: 'managed', token: m.adminToken })).toEqual([409, 'factor_change_not_applicable']);
      expect(await codeOf(`/admin/tenants/${s.id}/convert`, { to: 'sovereign', token: s.adminToken })).toEqual([409, 'factor_change_not_applicable']);
      expect(await codeOf(`/admin/tenants/${s.id}/factor/rotate`, { token: s.invokeA.token })).toEqual([403, 'insufficient_role']);
      expect(await codeOf(`/admin/tenants/${s.id}/factor/rotate`, { token: m.adminToken })).toEqual([403, 'wrong_tenant']);
      expect(await codeOf(`/admin/tenants/${s.id}/factor/rotate`, { token: 'sr_x' })).toEqual([401, 'invalid_api_key']);
      expect(await codeOf(`/admin/tenants/${s.id}/convert`, { to: 'nowhere', token: s.adminToken })).toEqual([400, 'invalid_request']);
      expect(await codeOf(`/admin/tenants/${s.id}/factor/rotate`, { token: s.adminToken, extra: 1 })).toEqual([400, 'invalid_request']);
      expect(await codeOf(`/admin/tenants/nobody-here/factor/rotate`, { token: s.adminToken })).toEqual([404, 'tenant_not_found']);
      expect((await tenantOf(s.id)).factorGeneration).toBeUndefined();
      expect((await tenantOf(m.id)).mode).toBe('managed');
    });

    it('a token whose public key was replaced in the table gets no new factor: the rotation refuses and names it', async () => {
      const t = await tenant('sovereign');
      const tokens = await b.store.listTokens(t.id);
      const victim = tokens.find((x) => x.tokenId === t.invokeA.tokenId)!;
      // A table writer plants its own public key (valid X25519 point, no tag under F).
      const planted = { publicKey: tokens.find((x) => x.tokenId === t.invokeB.tokenId)!.factorKey!.publicKey, tag: victim.factorKey!.tag, generation: 1 };
      await b.store.updateTokenFactor(t.id, victim.verifier, { factorKey: planted });
      const r = await runFactorChange({ region: b.region, store: b.store, pepper: b.pepper, dataKeys: b.dataKeys }, { tenantId: t.id, kind: 'rotate', token: t.adminToken, actor: 'test' }).catch((e) => e);
      expect(r).toMatchObject({ status: 409, code: 'tokens_without_key' });
      expect(String(r.message)).toContain(t.invokeA.tokenId);
      expect((await tenantOf(t.id)).factorChange).toBeUndefined();
    });
  });
}
