/**
 * Acceptance 3: wrong tokens fail, with honest codes and clear messages, without echoing the
 * token, and (for format, checksum and region) before any I/O.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoTenantStore } from '../../lambda/adapters/dynamo-tenant-store';
import { KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
import { SecretsManagerPepperSource } from '../../lambda/adapters/secrets-manager-pepper';
import { crc32, base62EncodeBigInt } from '../../lambda/core/crypto-util';
import { createVaultApp } from '../../lambda/core/vault-app';
import { awsClients, recordCommands } from '../support/aws-clients';
import { cellFixture, CellFixture } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import { AdminClient, App, call, cellApps, CellApps, expectApiError, forgedToken, Reply, scanTable, tenantId, VaultClient } from '../support/vault-client';
import { DynamoUsageRecords } from '../../lambda/adapters/dynamo-usage-records';

const EU = 'eu-central-1';
const US = 'us-east-1';

let moto: MotoServer;
let eu: CellFixture;
let us: CellFixture;
let euApps: CellApps;
let usApps: CellApps;
/** The eu vault on its own SDK clients, with every AWS command it sends recorded. */
let countedVault: App;
/** How many AWS commands the counted vault has sent so far. */
let ioCount: () => number;

let aId: string;
let bId: string;
let aToken: string;
let bToken: string;
let aInvoke: string;
let aInvokeId: string;
let usToken: string;
const A_KEY = 'sk-tenant-a-original-key-0123456789';

/** Recomputes the checksum of a token whose head was edited, so only the verifier can reject it. */
function withChecksum(head: string): string {
  return head + base62EncodeBigInt(BigInt(crc32(Buffer.from(head, 'utf8'))), 6);
}

/** Every reply, with the token it carried, must not echo any part of that token. */
function expectNoEcho(res: Reply, token: string): void {
  expect(res.body.includes(token)).toBe(false);
  const secretPart = token.slice(-49);
  if (secretPart.length >= 12) {
    for (let i = 0; i + 12 <= secretPart.length; i += 6) expect(res.body.includes(secretPart.slice(i, i + 12))).toBe(false);
  }
}

const VAULT_ROUTES: readonly [string, string, unknown?][] = [
  ['GET', '/vault/secrets'],
  ['POST', '/vault/secrets', { provider: 'openai', apiKey: 'sk-should-never-be-stored-123' }],
  ['PUT', '/vault/secrets/openai/default', { apiKey: 'sk-should-never-be-stored-456' }],
  ['DELETE', '/vault/secrets/openai/default'],
  ['GET', '/vault/tokens'],
  ['POST', '/vault/tokens', { role: 'tenant-admin' }],
  ['POST', '/vault/tokens/tk_abc/rotate'],
  ['DELETE', '/vault/tokens/tk_abc'],
];

beforeAll(async () => {
  moto = await startMoto();
  [eu, us] = await Promise.all([cellFixture(moto.endpoint, EU, { prefix: 'au-euc1' }), cellFixture(moto.endpoint, US, { prefix: 'au-use1' })]);
  euApps = cellApps(eu);
  usApps = cellApps(us);
  const c = awsClients(moto.endpoint, EU);
  const recorded = [recordCommands(c.ddb), recordCommands(c.kms), recordCommands(c.secrets)];
  ioCount = () => recorded.reduce((n, list) => n + list.length, 0);
  countedVault = createVaultApp({
    config: eu.config,
    store: new DynamoTenantStore(c.ddb, eu.config.tables, eu.audit.trail),
    pepper: new SecretsManagerPepperSource(c.secrets, eu.config.pepperSecretId),
    dataKeys: new KmsDataKeyService(c.kms, eu.config.rootKeyArn),
    usage: new DynamoUsageRecords(c.ddb, eu.config.tables.usage),
    audit: eu.audit,
  });

  const euAdmin = new AdminClient(euApps.admin);
  aId = tenantId('auth-a');
  bId = tenantId('auth-b');
  aToken = (await euAdmin.tenantWithToken(aId)).token;
  bToken = (await euAdmin.tenantWithToken(bId)).token;
  usToken = (await new AdminClient(usApps.admin).tenantWithToken(tenantId('auth-us'))).token;
  const a = new VaultClient(euApps.vault, aToken);
  expect((await a.storeSecret('openai', A_KEY)).status).toBe(201);
  const inv = await a.createToken('invoke');
  aInvoke = inv.json.token;
  aInvokeId = inv.json.tokenId;
});
afterAll(() => moto?.stop());
afterEach(() => {
  expect(euApps.serverErrors).toEqual([]);
  expect(usApps.serverErrors).toEqual([]);
});

describe('unknown tokens', () => {
  it('a well-formed token of the tenant (valid checksum, unknown verifier) is 401 on every vault route', async () => {
    const forged = forgedToken(EU, aId);
    for (const [method, path, body] of VAULT_ROUTES) {
      const res = await call(euApps.vault, method, path, { token: forged, body });
      expectApiError(res, 401, 'invalid_api_key');
      expect(res.json.error.type).toBe('authentication_error');
      expect(res.json.error.message).toMatch(/not valid/);
      expectNoEcho(res, forged);
    }
    expect((await eu.store.listSecrets(aId)).map((s) => s.version)).toEqual([1]);
  });

  it('a well-formed token of a tenant that does not exist is 401', async () => {
    const forged = forgedToken(EU, 'nobody-here');
    const res = await call(euApps.vault, 'GET', '/vault/secrets', { token: forged });
    expectApiError(res, 401, 'invalid_api_key');
    expectNoEcho(res, forged);
  });

  it("a real token with its tenant part changed to another tenant (checksum recomputed) is 401", async () => {
    const random = bToken.slice(-49, -6);
    for (const edited of [withChecksum(`sr_euc1_${aId}_${random}`), withChecksum(`sr_euc1_${bId}_${'0'.repeat(43)}`)]) {
      const res = await call(euApps.vault, 'GET', '/vault/secrets', { token: edited });
      expectApiError(res, 401, 'invalid_api_key');
      expectNoEcho(res, edited);
    }
  });

  it("a token record moved to another tenant in the table does not authenticate for either", async () => {
    const victim = tenantId('auth-moved');
    const t = (await new AdminClient(euApps.admin).tenantWithToken(victim)).token;
    const item = (await scanTable(eu, eu.config.tables.tokens)).find((i) => i.tenantId === victim)!;
    await eu.clients.doc.send(
      new UpdateCommand({ TableName: eu.config.tables.tokens, Key: { verifier: item.verifier }, UpdateExpression: 'SET tenantId = :t', ExpressionAttributeValues: { ':t': aId } }),
    );
    const res = await call(euApps.vault, 'GET', '/vault/secrets', { token: t });
    expectApiError(res, 401, 'invalid_api_key');
    expect(res.body).not.toContain(A_KEY);
  });
});

describe("another tenant's token", () => {
  it("cannot see, rotate or delete this tenant's secrets, nor manage its tokens", async () => {
    const b = new VaultClient(euApps.vault, bToken);
    const listed = await b.listSecrets();
    expect([listed.status, listed.json.data]).toEqual([200, []]);
    expectApiError(await b.rotateSecret('openai', 'default', 'sk-attacker-key-0123456789'), 404, 'secret_not_found');
    expectApiError(await b.deleteSecret('openai', 'default'), 404, 'secret_not_found');
    expectApiError(await b.revokeToken(aInvokeId), 404, 'token_not_found');
    expectApiError(await b.rotateToken(aInvokeId), 404, 'token_not_found');
    const tokens = await b.listTokens();
    expect(tokens.json.data.map((t: { tokenId: string }) => t.tokenId)).not.toContain(aInvokeId);
    // B storing a secret lands in B's vault only.
    expect((await b.storeSecret('openai', 'sk-tenant-b-own-key-0123456789')).status).toBe(201);

    const aSecrets = await eu.store.listSecrets(aId);
    expect(aSecrets.map((s) => [s.provider, s.secret, s.version])).toEqual([['openai', 'default', 1]]);
    expect((await new VaultClient(euApps.vault, aInvoke).call('GET', '/vault/secrets')).status).toBe(403); // still exists
    const bSecrets = await eu.store.listSecrets(bId);
    expect(bSecrets.map((s) => s.tenant)).toEqual([bId]);
    const aList = await new VaultClient(euApps.vault, aToken).listSecrets();
    expect(aList.json.data).toHaveLength(1);
    expect(aList.json.data[0].fingerprint).not.toBe(bSecrets[0].fingerprint);
  });
});

describe('roles', () => {
  it('an invoke token gets 403 on every vault route and changes nothing', async () => {
    const before = await scanTable(eu, eu.config.tables.tokens);
    for (const [method, path, body] of VAULT_ROUTES) {
      const res = await call(euApps.vault, method, path, { token: aInvoke, body });
      expectApiError(res, 403, 'insufficient_role');
      expect(res.json.error.type).toBe('permission_error');
      expect(res.json.error.message).toMatch(/tenant-admin/);
      expectNoEcho(res, aInvoke);
    }
    expect(await scanTable(eu, eu.config.tables.tokens)).toHaveLength(before.length);
    expect((await eu.store.listSecrets(aId)).map((s) => s.version)).toEqual([1]);
  });
});

describe('malformed tokens, checksums and regions are rejected before any I/O', () => {
  const malformed: [string, () => string][] = [
    ['garbage', () => 'not-a-token'],
    ['an OpenAI-style key', () => 'sk-proj-0123456789abcdefghijklmnopqrstuvwxyz'],
    ['a truncated token', () => aToken.slice(0, -10)],
    ['a token with an extra character', () => `${aToken}x`],
    ['an unknown region code', () => withChecksum(`sr_zz9_${aId}_${aToken.slice(-49, -6)}`)],
    ['a wrong prefix', () => `xr${aToken.slice(2)}`],
    ['a non-base62 character', () => `${aToken.slice(0, -20)}-${aToken.slice(-19)}`],
    ['an over-long token', () => `sr_euc1_${'a'.repeat(200)}`],
    ['an upper-case tenant', () => aToken.replace(aId, aId.toUpperCase())],
    ['a random part above 2^256', () => withChecksum(`sr_euc1_${aId}_${'z'.repeat(43)}`)],
  ];

  it.each(malformed)('%s is 401 invalid_api_key with a clear message', async (_label, make) => {
    const token = make();
    const before = ioCount();
    const res = await call(countedVault, 'GET', '/vault/secrets', { token });
    expectApiError(res, 401, 'invalid_api_key');
    expect(res.json.error.message).toMatch(/malformed/);
    expectNoEcho(res, token);
    expect(ioCount()).toBe(before);
  });

  it('a bad checksum is 401 invalid_api_key_checksum and says so', async () => {
    const last = aToken.at(-1)!;
    for (const token of [aToken.slice(0, -1) + (last === 'A' ? 'B' : 'A'), aToken.slice(0, -30) + (aToken.at(-30) === 'Q' ? 'R' : 'Q') + aToken.slice(-29)]) {
      const before = ioCount();
      const res = await call(countedVault, 'POST', '/vault/secrets', { token, body: { provider: 'openai', apiKey: 'sk-never-stored-0123456789' } });
      expectApiError(res, 401, 'invalid_api_key_checksum');
      expect(res.json.error.message).toMatch(/checksum/);
      expectNoEcho(res, token);
      expect(ioCount()).toBe(before);
    }
  });

  it('a token of another region is 421 wrong_region naming the home region, both ways', async () => {
    const before = ioCount();
    for (const [method, path, body] of VAULT_ROUTES) {
      const res = await call(countedVault, method, path, { token: usToken, body });
      expectApiError(res, 421, 'wrong_region');
      expect(res.json.error.home_region).toBe(US);
      expect(res.json.error.message).toContain(US);
      expectNoEcho(res, usToken);
    }
    expect(ioCount()).toBe(before);

    const back = await call(usApps.vault, 'GET', '/vault/secrets', { token: aToken });
    expectApiError(back, 421, 'wrong_region');
    expect(back.json.error).toEqual(expect.objectContaining({ home_region: EU, message: expect.stringContaining(EU) }));
    expectNoEcho(back, aToken);

    // The home cell accepts it.
    expect((await call(usApps.vault, 'GET', '/vault/secrets', { token: usToken })).status).toBe(200);
  });

  it('a wrong-region token with a broken checksum is a checksum error, not a region hint', async () => {
    const broken = usToken.slice(0, -1) + (usToken.at(-1) === 'A' ? 'B' : 'A');
    expectApiError(await call(euApps.vault, 'GET', '/vault/secrets', { token: broken }), 401, 'invalid_api_key_checksum');
  });

  it.each([
    ['no Authorization header', {}, 'missing_api_key'],
    ['an empty bearer', { authorization: 'Bearer ' }, 'invalid_authorization'],
    ['a Basic credential', { authorization: 'Basic dXNlcjpwYXNz' }, 'invalid_authorization'],
    ['a bearer with two words', { authorization: 'Bearer abc def' }, 'invalid_authorization'],
    ['the token without the Bearer scheme', {}, 'invalid_authorization'],
    ['x-api-key instead of Authorization', {}, 'missing_api_key'],
  ] as const)('%s is 401', async (label, headers, code) => {
    const h: Record<string, string> = { ...headers };
    if (label === 'the token without the Bearer scheme') h.authorization = aToken;
    if (label === 'x-api-key instead of Authorization') h['x-api-key'] = aToken;
    const before = ioCount();
    const res = await call(countedVault, 'GET', '/vault/secrets', { headers: h });
    expectApiError(res, 401, code);
    expectNoEcho(res, aToken);
    expect(ioCount()).toBe(before);
  });

  it('the valid token does reach storage (the I/O counter works)', async () => {
    const before = ioCount();
    expect((await call(countedVault, 'GET', '/vault/secrets', { token: aToken })).status).toBe(200);
    expect(ioCount()).toBeGreaterThan(before);
  });
});
