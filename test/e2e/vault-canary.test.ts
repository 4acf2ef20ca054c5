/**
 * Acceptance 6: canary provider keys (`sk-CANARY-<random>`) go through every flow, happy and
 * failing, and then must not appear (in clear, base64 or hex) in any log line, response body,
 * error, or stored attribute of any of the four tables.
 */
import { randomBytes } from 'node:crypto';
import { KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
import { DynamoTenantStore } from '../../lambda/adapters/dynamo-tenant-store';
import { createAdminApp } from '../../lambda/core/admin-app';
import { type HttpRequest, withRequestId } from '../../lambda/core/http';
import { errorFields, jsonLogger } from '../../lambda/core/logger';
import { unwrapTenantFactor, WrappedFactor } from '../../lambda/core/tenant-factor';
import { computeVerifier } from '../../lambda/core/token';
import { createVaultApp } from '../../lambda/core/vault-app';
import { canaryForms, canaryHits, captureOutput, makeCanary, OutputCapture, renderAll } from '../support/canary';
import { cellFixture, CellFixture, TEST_PROVIDERS } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import { AdminClient, App, call, identity, openToString, rawTableText, recordedVersion, rejectionOf, scanTable, tenantId, VaultClient } from '../support/vault-client';

const EU = 'eu-central-1';
const US = 'us-east-1';
const PROVIDERS = { ...TEST_PROVIDERS, 'acme-llm': { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:9' } };
const MAX = 8192;

let moto: MotoServer;
let eu: CellFixture;
let us: CellFixture;
let capture: OutputCapture;

/** Everything observable, gathered while the flows run. */
const bodies: string[] = [];
const errors: unknown[] = [];
const logLines: string[] = [];
const canaries: string[] = [];

function canary(tag: string): string {
  const c = makeCanary(tag);
  canaries.push(c);
  return c;
}

/** An app whose replies are recorded; its unexpected errors are logged as the handlers log them. */
function observed(f: CellFixture, kind: 'vault' | 'admin', overrides: Partial<Parameters<typeof createVaultApp>[0]> = {}): App {
  const log = jsonLogger(kind, (l) => {
    logLines.push(l);
    process.stdout.write(`${l}\n`);
  });
  const onError = (err: unknown): void => {
    errors.push(err);
    log.error('unexpected error', errorFields(err));
  };
  const app =
    kind === 'vault'
      ? createVaultApp({ config: f.config, store: f.store, pepper: f.pepper, dataKeys: f.dataKeys, usage: f.usage, audit: f.audit, onError, ...overrides })
      : createAdminApp({ config: f.config, store: f.store, pepper: f.pepper, audit: f.audit, onError });
  // As the handlers do: the request-id header on every response and one line per request.
  return async (req: HttpRequest) => {
    const { requestId, res } = withRequestId(req, await app(req));
    bodies.push(JSON.stringify(res.headers), res.body);
    log.info('request', { requestId, method: req.method, path: req.path, status: res.status, latencyMs: 0 });
    return res;
  };
}

let euVault: App;
let euAdmin: AdminClient;

beforeAll(async () => {
  moto = await startMoto();
  [eu, us] = await Promise.all([
    cellFixture(moto.endpoint, EU, { prefix: 'cn-euc1', providers: PROVIDERS, maxRequestBytes: MAX }),
    cellFixture(moto.endpoint, US, { prefix: 'cn-use1' }),
  ]);
  euVault = observed(eu, 'vault');
  euAdmin = new AdminClient(observed(eu, 'admin'));
  capture = captureOutput();
});
afterAll(async () => {
  capture?.restore();
  await moto?.stop();
});

describe('the canary check itself', () => {
  it('finds a canary in clear, base64 (any alignment), base64url and hex', () => {
    const c = makeCanary('probe');
    for (const prefix of ['', 'a', 'ab', 'abc']) {
      const buf = Buffer.from(`${prefix}${c}!?`);
      for (const text of [buf.toString('utf8'), buf.toString('base64'), buf.toString('base64url'), buf.toString('hex')]) {
        expect(canaryHits(`xx ${text} yy`, [c]).length).toBeGreaterThan(0);
      }
    }
    expect(canaryHits(`${makeCanary('other')} ${Buffer.from('sk-CANARY-').toString('base64')}`, [c])).toEqual([]);
    expect(canaryForms(c).every((form) => form.length >= 8)).toBe(true);
  });

  it('captures stdout, stderr and console while the flows run', () => {
    process.stdout.write('probe-stdout\n');
    console.log('probe-console-log');
    console.error('probe-console-error');
    expect(capture.text()).toMatch(/probe-stdout[\s\S]*probe-console-log[\s\S]*probe-console-error/);
  });
});

describe('flows with canary keys', () => {
  it('managed tenant: store, list, rotate, duplicate, delete, offboard', async () => {
    const id = tenantId('canary-m');
    const { token } = await euAdmin.tenantWithToken(id);
    const v = new VaultClient(euVault, token);
    const c1 = canary('m1');
    expect((await v.storeSecret('openai', c1)).status).toBe(201);
    expect((await v.storeSecret('acme-llm', canary('compat'))).status).toBe(201);
    expect((await v.storeSecret('mistral', canary('mistral'), 'eu')).status).toBe(201);
    expect((await v.listSecrets()).status).toBe(200);
    expect((await euAdmin.getTenant(id)).status).toBe(200);
    expect((await v.storeSecret('openai', c1)).status).toBe(409);
    const c2 = canary('m2');
    expect((await v.rotateSecret('openai', 'default', c2)).status).toBe(200);
    expect(await openToString(await eu.store.getSecret(id, 'openai', 'default'), identity(EU, id, 'openai', 'default', 2), eu.dataKeys, undefined, undefined, await eu.store.getErasureKey(id))).toBe(c2);
    expect((await v.deleteSecret('mistral', 'eu')).status).toBe(200);
    expect((await euAdmin.audit(id)).status).toBe(200);
    expect((await euAdmin.offboard(id)).status).toBe(200);
    expect((await v.storeSecret('openai', canary('after-offboard'))).status).toBe(401);
  });

  it('sovereign tenant: store, rotate, tokens, open with the live token', async () => {
    const id = tenantId('canary-s');
    const { token } = await euAdmin.tenantWithToken(id, 'sovereign');
    const v = new VaultClient(euVault, token);
    expect((await v.storeSecret('anthropic', canary('s1'))).status).toBe(201);
    const c = canary('s2');
    expect((await v.rotateSecret('anthropic', 'default', c)).status).toBe(200);
    const second = (await v.createToken('tenant-admin', { label: 'second' })).json;
    const rotated = (await v.rotateToken(second.tokenId)).json;
    expect((await new VaultClient(euVault, rotated.token).storeSecret('openai', canary('s3'))).status).toBe(201);
    expect((await v.revokeToken(rotated.tokenId)).status).toBe(200);

    const verifier = computeVerifier(await eu.pepper.getPepper(), token).toString('hex');
    const rec = (await scanTable(eu, eu.config.tables.tokens)).find((t) => t.verifier === verifier)!;
    const F = unwrapTenantFactor(rec.wrappedFactor as WrappedFactor, { token, region: EU, tenant: id, tokenId: String(rec.tokenId) });
    const record = await eu.store.getSecret(id, 'anthropic', 'default');
    const salt = (await recordedVersion(eu, id, 'anthropic'))?.salt;
    const E = await eu.store.getErasureKey(id);
    expect(await openToString(record, identity(EU, id, 'anthropic', 'default', 2), eu.dataKeys, F, salt, E)).toBe(c);
    // Failing opens carry no plaintext in their errors.
    errors.push(await rejectionOf(openToString(record, identity(EU, id, 'anthropic', 'default', 2), eu.dataKeys, randomBytes(32), salt, E)));
    errors.push(await rejectionOf(openToString({ ...record, sovereign: false }, identity(EU, id, 'anthropic', 'default', 2), eu.dataKeys, undefined, undefined, E)));
  });

  it('error paths with the canary in the request', async () => {
    const id = tenantId('canary-e');
    const { token } = await euAdmin.tenantWithToken(id);
    const v = new VaultClient(euVault, token);
    const invoke = (await v.createToken('invoke')).json.token as string;
    const usToken = (await new AdminClient(observed(us, 'admin')).tenantWithToken(tenantId('canary-us'))).token;
    const revoked = (await v.createToken('tenant-admin')).json;
    expect((await v.revokeToken(revoked.tokenId)).status).toBe(200);

    const c = canary('err');
    const json = { 'content-type': 'application/json' };
    const expectations: [string, Promise<{ status: number }>, number][] = [
      ['truncated JSON', call(euVault, 'POST', '/vault/secrets', { token, body: `{"provider":"openai","apiKey":"${c}"`, headers: json }), 400],
      ['JSON with a stray character', call(euVault, 'POST', '/vault/secrets', { token, body: `{"provider":"openai","apiKey":"${c}"}x`, headers: json }), 400],
      ['oversize body', call(euVault, 'POST', '/vault/secrets', { token, body: JSON.stringify({ provider: 'openai', apiKey: c, pad: 'x'.repeat(MAX) }), headers: json }), 413],
      ['wrong content type', call(euVault, 'POST', '/vault/secrets', { token, body: JSON.stringify({ provider: 'openai', apiKey: c }), headers: { 'content-type': 'text/plain' } }), 415],
      ['unknown field holding it', v.call('POST', '/vault/secrets', { body: { provider: 'openai', apiKey: 'sk-fine-0123456789', key: c } }), 400],
      ['it with a space', v.call('POST', '/vault/secrets', { body: { provider: 'openai', apiKey: `${c} x` } }), 400],
      ['it too long', v.call('POST', '/vault/secrets', { body: { provider: 'openai', apiKey: c.repeat(40) } }), 400],
      ['it in an array', v.call('POST', '/vault/secrets', { body: { provider: 'openai', apiKey: [c] } }), 400],
      ['it as the provider (fields swapped)', v.call('POST', '/vault/secrets', { body: { provider: c, apiKey: 'anthropic' } }), 400],
      ['it as the name', v.call('POST', '/vault/secrets', { body: { provider: 'openai', name: c, apiKey: 'sk-fine-0123456789' } }), 400],
      ['an unknown provider', v.storeSecret('cohere', c), 400],
      ['rotation of a missing secret', v.rotateSecret('openai', 'missing', c), 404],
      ['rotation with a bad body', v.call('PUT', '/vault/secrets/openai/default', { body: { apiKey: c, provider: 'openai' } }), 400],
      ['it as a token label', v.call('POST', '/vault/tokens', { body: { role: 'invoke', label: `${c} \u00e9` } }), 400],
      ['it as the bearer token', call(euVault, 'POST', '/vault/secrets', { token: c, body: { provider: 'openai', apiKey: c } }), 401],
      ['it in x-api-key', call(euVault, 'GET', '/vault/secrets', { headers: { 'x-api-key': c } }), 401],
      ['it in a malformed Authorization header', call(euVault, 'GET', '/vault/secrets', { headers: { authorization: `Token ${c}` } }), 401],
      ['an invoke token', new VaultClient(euVault, invoke).storeSecret('openai', c), 403],
      ['a revoked token', new VaultClient(euVault, revoked.token).storeSecret('openai', c), 401],
      ['a token of another region', new VaultClient(euVault, usToken).storeSecret('openai', c), 421],
      ['a wrong method', v.call('PATCH', '/vault/secrets', { body: { provider: 'openai', apiKey: c } }), 405],
      ['admin: it in a tenant body', euAdmin.call('POST', '/admin/tenants', { body: { tenantId: 'canary-x', apiKey: c } }), 400],
      ['admin: it as a tenant label', euAdmin.call('POST', '/admin/tenants', { body: { tenantId: tenantId('canary-l'), label: `${c}\n` } }), 400],
    ];
    for (const [label, promise, status] of expectations) expect({ label, status: (await promise).status }).toEqual({ label, status });
  });

  it('a KMS failure and a storage failure while storing a canary are 5xx without the canary', async () => {
    const id = tenantId('canary-f');
    const { token } = await euAdmin.tenantWithToken(id);
    const deadKey = new KmsDataKeyService(eu.clients.kms, `arn:aws:kms:${EU}:123456789012:key/00000000-0000-4000-8000-000000000000`);
    const kmsDown = observed(eu, 'vault', { dataKeys: deadKey });
    const c1 = canary('kms');
    const r1 = await call(kmsDown, 'POST', '/vault/secrets', { token, body: { provider: 'openai', apiKey: c1 } });
    expect([r1.status, r1.json.error.code]).toEqual([503, 'key_service_unavailable']);

    // The sealed record goes to a table that does not exist: the SDK error reaches onError.
    const broken = new DynamoTenantStore(eu.clients.ddb, { ...eu.config.tables, tenants: 'no-such-table' }, eu.audit.trail);
    const store = new Proxy(eu.store, {
      get: (target, prop, receiver) => (prop === 'putSecret' ? broken.putSecret.bind(broken) : Reflect.get(target, prop, receiver)),
    });
    const ddbDown = observed(eu, 'vault', { store });
    const r2 = await call(ddbDown, 'POST', '/vault/secrets', { token, body: { provider: 'openai', apiKey: canary('ddb') } });
    expect([r2.status, r2.json.error.code]).toEqual([500, 'internal_error']);
    expect(errors.length).toBeGreaterThanOrEqual(2);
    expect(logLines.some((l) => l.includes('unexpected error') && l.includes('KeyServiceError'))).toBe(true);
  });
});

describe('after the flows', () => {
  beforeAll(() => capture.restore());

  it('no log line, console call or stdout/stderr write holds a canary', () => {
    expect(capture.lines.length).toBeGreaterThan(20);
    expect(logLines.length).toBeGreaterThan(20);
    expect(canaryHits([capture.text(), ...logLines].join('\n'), canaries)).toEqual([]);
    const requestLines = logLines.map((l) => JSON.parse(l)).filter((l) => l.message === 'request');
    expect(requestLines.length).toBeGreaterThan(20);
    expect(requestLines.every((l) => /^[0-9a-f-]{36}$/.test(l.requestId))).toBe(true);
  });

  it('no response body or header holds a canary', () => {
    expect(bodies.length).toBeGreaterThan(50);
    expect(canaryHits(bodies.join('\n'), canaries)).toEqual([]);
  });

  it('no error (message, stack, properties, cause) holds a canary', () => {
    expect(errors.length).toBeGreaterThan(2);
    expect(canaryHits(errors.map(renderAll).join('\n'), canaries)).toEqual([]);
  });

  it('no stored attribute of any table, in either cell, holds a canary in clear, base64 or hex', async () => {
    const text = (await rawTableText(eu)) + (await rawTableText(us));
    expect(text.length).toBeGreaterThan(1000);
    expect(canaryHits(text, canaries)).toEqual([]);
    // And the sealed rows are there: the canaries were stored, only never in the clear.
    const sealed = (await scanTable(eu, eu.config.tables.tenants)).filter((i) => String(i.sk).startsWith('SECRET#'));
    expect(sealed.length).toBeGreaterThanOrEqual(2);
  });
});
