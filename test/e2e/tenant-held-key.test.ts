/**
 * Tenant-held keys (bring your own key) against moto. A second KMS key stands for the key in the
 * tenant's own account (moto serves one account; the IAM side, cross-account key policy included,
 * is proven in test/infra/iam-tenant-held-key.test.ts). moto enforces neither key state nor key
 * policies, so a loopback proxy in front of it answers as KMS does for a disabled key
 * (DisabledException) or a key policy that no longer names the cell (AccessDeniedException).
 */
import { CreateKeyCommand } from '@aws-sdk/client-kms';
import { DynamoDBDocumentClient, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
import type { SealedSecret } from '../../lambda/core/envelope';
import type { HttpRequest } from '../../lambda/core/http';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { createVaultApp } from '../../lambda/core/vault-app';
import { runFactorChange } from '../../lambda/core/lifecycle/factor-change';
import { awsClients } from '../support/aws-clients';
import { AwsFaultProxy, startAwsFaultProxy } from '../support/aws-fault-proxy';
import { canaryHits, makeCanary } from '../support/canary';
import { RouterHarness, startRouterHarness } from '../support/router-harness';

let h: RouterHarness;
let proxy: AwsFaultProxy;
let tenantKey: string;
let dataKeys: KmsDataKeyService;
let doc: DynamoDBDocumentClient;
const disabled = new Set<string>();
const revoked = new Set<string>();
const CANARY = makeCanary('BYOK');
const bodies: string[] = [];
let byok: { adminToken: string; invokeToken: string };
let plain: { adminToken: string; invokeToken: string };

beforeAll(async () => {
  h = await startRouterHarness();
  proxy = await startAwsFaultProxy(h.moto.endpoint);
  // KMS as it behaves for the tenant's key: a disabled key or a revoked policy refuses every use.
  proxy.rule = (call) => {
    if (!call.target.startsWith('TrentService.')) return undefined;
    const keyId = (JSON.parse(call.body || '{}') as { KeyId?: string }).KeyId ?? '';
    if (disabled.has(keyId)) return { fail: 400, type: 'DisabledException' };
    if (revoked.has(keyId)) return { fail: 400, type: 'AccessDeniedException' };
    return undefined;
  };
  const kms = awsClients(proxy.endpoint, h.cell.config.region).kms;
  dataKeys = new KmsDataKeyService(kms, h.cell.config.rootKeyArn);
  tenantKey = (await h.cell.clients.kms.send(new CreateKeyCommand({ Description: "the tenant's own key" }))).KeyMetadata!.Arn!;
  doc = DynamoDBDocumentClient.from(h.cell.clients.ddb);
  h.fakes.setKey('openai', CANARY);
  byok = await h.tenant('byok-a', { policy: { tenantKeyArn: tenantKey }, keys: { openai: CANARY } });
  plain = await h.tenant('byok-b', { keys: { openai: CANARY } });
}, 120_000);
afterAll(async () => {
  await proxy?.close();
  await h?.close();
});

const vault = () => createVaultApp({ config: h.cell.config, store: h.cell.store, pepper: h.cell.pepper, dataKeys, usage: h.cell.usage, audit: h.cell.audit });

async function chat(token: string) {
  const router = h.makeRouter({ dataKeys });
  const sink = new MemorySink();
  const req: HttpRequest = {
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    sourceIp: '203.0.113.7',
  };
  await router(req, sink);
  bodies.push(sink.body);
  return { status: sink.status, headers: sink.headers ?? {}, body: sink.body, json: JSON.parse(sink.body || 'null') };
}

async function row(tenant: string, provider: string): Promise<SealedSecret> {
  const out = await doc.send(new GetCommand({ TableName: h.cell.config.tables.tenants, Key: { pk: `TENANT#${tenant}`, sk: `SECRET#${provider}#default` }, ConsistentRead: true }));
  return out.Item as unknown as SealedSecret;
}

async function storeSecret(token: string, provider: string, apiKey: string, name = 'default') {
  const res = await vault()({
    method: 'POST',
    path: '/vault/secrets',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ provider, apiKey, name }),
  });
  bodies.push(res.body);
  return { status: res.status, headers: res.headers, json: JSON.parse(res.body) };
}

describe('tenant-held keys (moto)', () => {
  it("the tenant's secrets are sealed under its own key; the other tenant's under the cell key; both open", async () => {
    expect((await row('byok-a', 'openai')).keyArn).toBe(tenantKey);
    expect((await storeSecret(byok.adminToken, 'openai', CANARY, 'own')).status).toBe(201);
    const own = (await doc.send(new GetCommand({ TableName: h.cell.config.tables.tenants, Key: { pk: 'TENANT#byok-a', sk: 'SECRET#openai#own' } }))).Item as SealedSecret;
    expect(own.keyArn).toBe(tenantKey);
    expect((await row('byok-b', 'openai')).keyArn).toBe(h.cell.config.rootKeyArn);
    // Route byok-a's openai to the secret under its own key.
    const put = await h.admin('PUT', '/admin/tenants/byok-a/policy', { policy: { tenantKeyArn: tenantKey, routes: { 'gpt-4o-mini': [{ provider: 'openai', model: 'gpt-4o-mini', secret: 'own' }] } } });
    expect(put.status).toBe(200);
    // Registering (or moving) a tenant's key is an authenticated audit event naming the key.
    const audit = await h.admin('GET', '/admin/tenants/byok-a/audit');
    expect(audit.json.verification.ok).toBe(true);
    expect(audit.json.data.filter((e: { type: string }) => e.type === 'policy.updated').at(-1).details.tenantKeyArn).toBe(tenantKey);
    expect((await chat(byok.invokeToken)).status).toBe(200);
    expect(proxy.calls.some((c) => c.target === 'TrentService.Decrypt' && c.body.includes(tenantKey))).toBe(true);
    expect((await chat(plain.invokeToken)).status).toBe(200);
  });

  it('registration refuses a key of another region, an alias and a multi-Region key', async () => {
    const otherRegion = tenantKey.replace(`:${h.cell.config.region}:`, ':us-east-1:');
    for (const bad of [otherRegion, tenantKey.replace(/key\/.*/, 'alias/mine'), tenantKey.replace(/key\/.*/, 'key/mrk-0123456789abcdef0123456789abcdef')]) {
      const res = await h.admin('PUT', '/admin/tenants/byok-b/policy', { policy: { tenantKeyArn: bad } });
      expect(res.status).toBe(400);
      expect(res.json.error.code).toBe('invalid_tenant_key');
    }
    const created = await h.admin('POST', '/admin/tenants', { tenantId: 'byok-far', policy: { tenantKeyArn: otherRegion } });
    expect(created.status).toBe(400);
  });

  it('a tenant that holds its own key cannot enable the response cache (a cached answer would outlive a revocation)', async () => {
    const both = await h.admin('PUT', '/admin/tenants/byok-a/policy', { policy: { tenantKeyArn: tenantKey, cache: { ttlSeconds: 60 } } });
    expect(both.status).toBe(400);
    expect(JSON.stringify(both.json)).toContain('tenantKeyArn');
    const created = await h.admin('POST', '/admin/tenants', { tenantId: 'byok-cached', policy: { tenantKeyArn: tenantKey, cache: { ttlSeconds: 60 } } });
    expect(created.status).toBe(400);
    // The tenant's policy is unchanged: its key still seals and opens its secrets.
    expect((await h.admin('GET', '/admin/tenants/byok-a')).json.policy).toMatchObject({ tenantKeyArn: tenantKey });
    expect((await h.admin('GET', '/admin/tenants/byok-a')).json.policy.cache).toBeUndefined();
  });

  it("the key cannot be moved or removed while the tenant has secrets (they would stop opening); the policy stays as it was", async () => {
    const other = (await h.cell.clients.kms.send(new CreateKeyCommand({ Description: 'a second key of the tenant' }))).KeyMetadata!.Arn!;
    for (const policy of [{ tenantKeyArn: other }, {}]) {
      const res = await h.admin('PUT', '/admin/tenants/byok-a/policy', { policy });
      expect([res.status, res.json.error.code]).toEqual([409, 'tenant_key_in_use']);
    }
    expect((await h.admin('GET', '/admin/tenants/byok-a')).json.policy.tenantKeyArn).toBe(tenantKey);
    expect((await chat(byok.invokeToken)).status).toBe(200);
    // A tenant with no secrets may register a key.
    expect((await h.admin('POST', '/admin/tenants', { tenantId: 'byok-empty', mode: 'managed', policy: {} })).status).toBe(201);
    expect((await h.admin('PUT', '/admin/tenants/byok-empty/policy', { policy: { tenantKeyArn: other } })).status).toBe(200);
  });

  it('a sovereign tenant that holds its own key: a factor rotation or conversion is refused before anything is written', async () => {
    const sov = await h.tenant('byok-sov', { mode: 'sovereign', policy: { tenantKeyArn: tenantKey }, keys: { openai: CANARY } });
    for (const kind of ['rotate', 'to-managed'] as const) {
      await expect(
        runFactorChange({ region: h.cell.config.region, store: h.cell.store, pepper: h.cell.pepper, dataKeys }, { tenantId: 'byok-sov', kind, token: sov.adminToken, actor: 'iam:test' }),
      ).rejects.toMatchObject({ status: 409, code: 'tenant_key_not_supported' });
    }
    expect((await h.cell.store.getTenant('byok-sov'))?.factorChange).toBeUndefined();
    expect((await chat(sov.invokeToken)).status).toBe(200);
  });

  it("a row of another tenant naming this tenant's key is refused before any KMS call", async () => {
    const victim = await row('byok-b', 'openai');
    const forged = { ...victim, keyArn: tenantKey };
    await doc.send(new PutCommand({ TableName: h.cell.config.tables.tenants, Item: { pk: 'TENANT#byok-b', sk: 'SECRET#openai#default', ...forged } }));
    const before = proxy.calls.length;
    const res = await chat(plain.invokeToken);
    expect(res.status).toBe(500);
    expect(res.json.error.code).toBe('key_access_denied');
    expect(proxy.calls.slice(before).filter((c) => c.target.startsWith('TrentService.'))).toEqual([]);
    await doc.send(new PutCommand({ TableName: h.cell.config.tables.tenants, Item: { pk: 'TENANT#byok-b', sk: 'SECRET#openai#default', ...victim } }));
    expect((await chat(plain.invokeToken)).status).toBe(200);
  });

  it("the service scoped to one tenant refuses another tenant's context", async () => {
    const scoped = dataKeys.forTenant('byok-a', tenantKey);
    const ctx = { app: 'sovereign-router', region: h.cell.config.region, tenant: 'byok-b', provider: 'openai', secret: 'default', version: '1' };
    await expect(scoped.generateDataKey(ctx)).rejects.toMatchObject({ name: 'KeyServiceError', reason: 'denied' });
    const other = await row('byok-a', 'openai');
    await expect(scoped.decryptDataKey(Buffer.from(other.wrappedKey, 'base64'), ctx, tenantKey)).rejects.toMatchObject({ reason: 'denied' });
  });

  it('the tenant disables its key: its requests fail at once, non-retryable, naming no key; other tenants are unaffected', async () => {
    // The tenant disables its key (KMS DisableKey in its account): from now on KMS answers
    // DisabledException to every use, which the proxy plays since moto does not.
    disabled.add(tenantKey);
    const res = await chat(byok.invokeToken);
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe('tenant_key_unavailable');
    expect(res.headers['x-should-retry']).toBe('false');
    expect(res.body).not.toContain(tenantKey);
    expect(res.body).not.toContain('arn:aws');
    const sealing = await storeSecret(byok.adminToken, 'mistral', 'mistral-new-0123456789');
    expect(sealing.status).toBe(403);
    expect(sealing.json.error.code).toBe('tenant_key_unavailable');
    expect((await chat(plain.invokeToken)).status).toBe(200);

    disabled.delete(tenantKey);
    expect((await chat(byok.invokeToken)).status).toBe(200);
  });

  it("the tenant removes the cell from its key policy: requests fail the same way", async () => {
    revoked.add(tenantKey);
    const res = await chat(byok.invokeToken);
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe('tenant_key_unavailable');
    expect(res.headers['x-should-retry']).toBe('false');
    revoked.delete(tenantKey);
    expect((await chat(byok.invokeToken)).status).toBe(200);
  });

  it('the canary never appears in a response, a log line or a metric', () => {
    expect(canaryHits([...bodies, ...h.logs, ...h.metrics].join('\n'), [CANARY])).toEqual([]);
  });
});
