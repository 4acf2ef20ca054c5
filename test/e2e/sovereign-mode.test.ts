/**
 * Acceptance 4: sovereign mode. With a full DynamoDB dump and full use of the KMS root key
 * (Decrypt allowed, through the production adapter) but no live token, a sovereign tenant's
 * sealed secrets stay closed; with a live token they open. Token creation, rotation and
 * revocation keep the per-token wraps of the tenant factor F consistent.
 */
import { randomBytes } from 'node:crypto';
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { encryptionContextOf } from '../../lambda/core/canonical';
import { SealedSecretError } from '../../lambda/core/envelope';
import { TenantFactorError, unwrapTenantFactor, WrappedFactor } from '../../lambda/core/tenant-factor';
import { computeVerifier } from '../../lambda/core/token';
import { cellFixture, CellFixture } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import {
  AdminClient,
  cellApps,
  CellApps,
  CellDump,
  dumpCell,
  expectApiError,
  forgedToken,
  identity,
  openCurrent,
  openToString,
  rawTableText,
  recordedVersion,
  rejectionOf,
  scanTable,
  secretRows,
  tenantId,
  VaultClient,
} from '../support/vault-client';

const REGION = 'eu-central-1';

let moto: MotoServer;
let f: CellFixture;
let apps: CellApps;
let admin: AdminClient;

beforeAll(async () => {
  moto = await startMoto();
  f = await cellFixture(moto.endpoint, REGION, { prefix: 'sv-euc1' });
  apps = cellApps(f);
  admin = new AdminClient(apps.admin);
});
afterAll(() => moto?.stop());
afterEach(() => {
  expect(apps.serverErrors).toEqual([]);
  apps.reset();
});

const vaultFor = (token: string) => new VaultClient(apps.vault, token);
const key = (tag: string) => `sk-sovereign-${tag}-${randomBytes(12).toString('hex')}`;

/** The token record of a live token, found as the gateway finds it: by verifier. */
async function recordOf(token: string): Promise<Record<string, unknown>> {
  const verifier = computeVerifier(await f.pepper.getPepper(), token).toString('hex');
  const item = (await scanTable(f, f.config.tables.tokens)).find((t) => t.verifier === verifier);
  if (!item) throw new Error('no token record for this token');
  return item;
}

/** F, unwrapped the way the gateway does it: the token record's wrap plus the live token. */
async function factorFrom(token: string, tenant: string): Promise<Buffer> {
  const rec = await recordOf(token);
  return unwrapTenantFactor(rec.wrappedFactor as WrappedFactor, { token, region: REGION, tenant, tokenId: String(rec.tokenId) });
}

async function sovereignTenant(): Promise<{ id: string; token: string; tokenId: string; keys: Record<string, string> }> {
  const id = tenantId('sov');
  const first = await admin.tenantWithToken(id, 'sovereign');
  const keys = { openai: key('openai'), anthropic: key('anthropic') };
  for (const [provider, k] of Object.entries(keys)) {
    const res = await vaultFor(first.token).storeSecret(provider, k);
    expect([res.status, res.json.sovereign]).toEqual([201, true]);
  }
  return { id, ...first, keys };
}

describe('storage plus KMS, without a live token', () => {
  let t: Awaited<ReturnType<typeof sovereignTenant>>;
  let dump: CellDump;
  let rows: Record<string, unknown>[];
  /** The tenant's erasure key, from the dump: this attacker also holds the erasure-key table (read before any offboarding). */
  const E = (): Buffer => Buffer.from(String(dump.erasure.find((x) => x.tenantId === t.id)?.key), 'base64');

  beforeAll(async () => {
    t = await sovereignTenant();
    // An invoke token too, so the dump holds more than one wrap of F.
    expect((await vaultFor(t.token).createToken('invoke')).status).toBe(201);
    dump = await dumpCell(f);
    rows = secretRows(dump, t.id);
  });

  it('the dump holds the sealed rows (marked sovereign) and one wrapped factor per token, never F or a token', async () => {
    expect(rows).toHaveLength(2);
    for (const r of rows) expect(r.sovereign).toBe(true);
    const wraps = dump.tokens.filter((x) => x.tenantId === t.id);
    expect(wraps).toHaveLength(2);
    for (const w of wraps) expect(w.wrappedFactor).toEqual({ iv: expect.any(String), ciphertext: expect.any(String), tag: expect.any(String) });
    expect(JSON.stringify(dump)).not.toContain(t.token);
    const F = await factorFrom(t.token, t.id);
    const text = await rawTableText(f);
    for (const form of [F.toString('base64'), F.toString('hex'), F.toString('base64url')]) expect(text).not.toContain(form);
  });

  it('KMS Decrypt does release the data key: the attacker really has it', async () => {
    for (const r of rows) {
      const id = identity(REGION, t.id, String(r.provider));
      const dk = await f.dataKeys.decryptDataKey(Buffer.from(String(r.wrappedKey), 'base64'), encryptionContextOf(id), String(r.keyArn));
      expect(dk).toHaveLength(32);
    }
  });

  it('openSecret without a factor is refused (mode mismatch), and clearing the flag does not help', async () => {
    for (const r of rows) {
      const id = identity(REGION, t.id, String(r.provider));
      const e1 = await rejectionOf(openToString(r, id, f.dataKeys, undefined, undefined, E()));
      expect([e1 instanceof SealedSecretError, (e1 as SealedSecretError).reason]).toEqual([true, 'mode_mismatch']);
      const e2 = await rejectionOf(openToString({ ...r, sovereign: false }, id, f.dataKeys, undefined, undefined, E()));
      expect([e2 instanceof SealedSecretError, (e2 as SealedSecretError).reason]).toEqual([true, 'integrity']);
    }
  });

  it('random factors and factors made from dump material do not open it', async () => {
    const wraps = dump.tokens.filter((x) => x.tenantId === t.id);
    const candidates: Buffer[] = [
      randomBytes(32),
      randomBytes(32),
      Buffer.alloc(32),
      ...wraps.map((w) => Buffer.from(String(w.verifier), 'hex')),
      ...wraps.map((w) => Buffer.from((w.wrappedFactor as WrappedFactor).ciphertext, 'base64')),
      await f.pepper.getPepper().then((p) => p.subarray(0, 32)),
    ];
    for (const r of rows) {
      const id = identity(REGION, t.id, String(r.provider));
      for (const candidate of candidates) {
        expect(candidate).toHaveLength(32);
        // The attacker has the dump, META's version salt included.
        const salt = (await recordedVersion(f, t.id, String(r.provider)))?.salt;
        const err = await rejectionOf(openToString(r, id, f.dataKeys, candidate, salt, E()));
        expect([err instanceof SealedSecretError, (err as SealedSecretError).reason]).toEqual([true, 'integrity']);
      }
    }
  });

  it('the stored wraps of F do not unwrap without the live token', async () => {
    const wraps = dump.tokens.filter((x) => x.tenantId === t.id);
    for (const w of wraps) {
      const binding = { region: REGION, tenant: t.id, tokenId: String(w.tokenId) };
      for (const guess of [forgedToken(REGION, t.id), forgedToken(REGION, t.id), String(w.verifier), String(w.tokenId), `sr_euc1_${t.id}_`]) {
        expect(() => unwrapTenantFactor(w.wrappedFactor as WrappedFactor, { ...binding, token: guess })).toThrow(TenantFactorError);
      }
      // The pepper does not help either (it only keys the verifier).
      const pepper = (await f.pepper.getPepper()).toString('utf8');
      expect(() => unwrapTenantFactor(w.wrappedFactor as WrappedFactor, { ...binding, token: pepper })).toThrow(TenantFactorError);
    }
  });

  it('with the live token: unwrap F from its record, then the secrets open', async () => {
    const F = await factorFrom(t.token, t.id);
    expect(F).toHaveLength(32);
    for (const r of rows) {
      const salt = (await recordedVersion(f, t.id, String(r.provider)))?.salt;
      expect(await openToString(r, identity(REGION, t.id, String(r.provider)), f.dataKeys, F, salt, E())).toBe(t.keys[String(r.provider)]);
    }
  });

  it("one token's wrap does not open with another token, nor when moved to another token record", async () => {
    const [w1, w2] = dump.tokens.filter((x) => x.tenantId === t.id);
    const first = await recordOf(t.token);
    const other = w1.tokenId === first.tokenId ? w2 : w1;
    // The first token against the other record's wrap, under either token id.
    for (const tokenId of [String(other.tokenId), String(first.tokenId)]) {
      expect(() => unwrapTenantFactor(other.wrappedFactor as WrappedFactor, { token: t.token, region: REGION, tenant: t.id, tokenId })).toThrow(TenantFactorError);
    }
    // The first wrap under its own token but another token id (moved record).
    expect(() =>
      unwrapTenantFactor(first.wrappedFactor as WrappedFactor, { token: t.token, region: REGION, tenant: t.id, tokenId: String(other.tokenId) }),
    ).toThrow(TenantFactorError);
  });
});

describe('tokens of a sovereign tenant', () => {
  it('a tenant-admin token created by a sovereign tenant-admin unwraps the same F and uses the vault', async () => {
    const t = await sovereignTenant();
    const created = await vaultFor(t.token).createToken('tenant-admin', { label: 'second admin' });
    expect(created.status).toBe(201);
    const t2: string = created.json.token;
    const F1 = await factorFrom(t.token, t.id);
    const F2 = await factorFrom(t2, t.id);
    expect(F2.equals(F1)).toBe(true);
    expect((await recordOf(t2)).wrappedFactor).not.toEqual((await recordOf(t.token)).wrappedFactor);

    // A secret sealed through the second token opens with F from the first, and vice versa.
    const k = key('mistral');
    expect((await vaultFor(t2).storeSecret('mistral', k)).status).toBe(201);
    expect(await openCurrent(f, t.id, 'mistral', F1)).toBe(k);
    expect(await openCurrent(f, t.id, 'openai', F2)).toBe(t.keys.openai);

    // Invoke tokens get a wrap too (the data path needs F).
    const inv = (await vaultFor(t2).createToken('invoke', { limits: { rpm: 10 } })).json.token as string;
    expect((await factorFrom(inv, t.id)).equals(F1)).toBe(true);

    // Rotation of a secret keeps it sovereign.
    const k2 = key('openai-v2');
    const rot = await vaultFor(t2).rotateSecret('openai', 'default', k2);
    expect([rot.status, rot.json.version, rot.json.sovereign]).toEqual([200, 2, true]);
    expect((await recordedVersion(f, t.id, 'openai'))?.version).toBe(2);
    expect(await openCurrent(f, t.id, 'openai', F1)).toBe(k2);
  });

  it('rotation gives a new token that works and unwraps F; the old one stops (401) and its record is gone', async () => {
    const t = await sovereignTenant();
    const second = await vaultFor(t.token).createToken('tenant-admin');
    const oldToken: string = second.json.token;
    const oldRecord = await recordOf(oldToken);

    const rot = await vaultFor(t.token).rotateToken(second.json.tokenId);
    expect(rot.status).toBe(201);
    expect(rot.json).toEqual(expect.objectContaining({ role: 'tenant-admin', previousTokenId: second.json.tokenId, tokenId: expect.not.stringMatching(second.json.tokenId) }));
    const newToken: string = rot.json.token;

    expect((await vaultFor(newToken).listSecrets()).status).toBe(200);
    expect((await vaultFor(newToken).storeSecret('mistral', key('m'))).status).toBe(201);
    expect((await factorFrom(newToken, t.id)).equals(await factorFrom(t.token, t.id))).toBe(true);

    const stale = await vaultFor(oldToken).listSecrets();
    expectApiError(stale, 401, 'invalid_api_key', [oldToken]);
    const tokens = await scanTable(f, f.config.tables.tokens);
    expect(tokens.some((x) => x.verifier === oldRecord.verifier || x.tokenId === oldRecord.tokenId)).toBe(false);
    expect(await rawTableText(f)).not.toContain((oldRecord.wrappedFactor as WrappedFactor).ciphertext);

    // Rotating one's own (first) token works the same way.
    const self = await vaultFor(t.token).rotateToken(t.tokenId);
    expect(self.status).toBe(201);
    expectApiError(await vaultFor(t.token).listSecrets(), 401, 'invalid_api_key');
    const F = await factorFrom(self.json.token, t.id);
    expect(await openCurrent(f, t.id, 'anthropic', F)).toBe(t.keys.anthropic);
  });

  it("revocation removes that token's wrap from the table; the last tenant-admin token cannot be revoked (409)", async () => {
    const t = await sovereignTenant();
    const second = await vaultFor(t.token).createToken('tenant-admin');
    const inv = await vaultFor(t.token).createToken('invoke');
    const secondRecord = await recordOf(second.json.token);

    const rev = await vaultFor(t.token).revokeToken(second.json.tokenId);
    expect([rev.status, rev.json]).toEqual([200, { revoked: true, tokenId: second.json.tokenId }]);
    const tokens = (await scanTable(f, f.config.tables.tokens)).filter((x) => x.tenantId === t.id);
    expect(tokens.map((x) => x.tokenId).sort()).toEqual([t.tokenId, inv.json.tokenId].sort());
    expect(await rawTableText(f)).not.toContain((secondRecord.wrappedFactor as WrappedFactor).ciphertext);
    expectApiError(await vaultFor(second.json.token).listSecrets(), 401, 'invalid_api_key');

    // Only one tenant-admin token is left (the invoke token does not count).
    const last = await vaultFor(t.token).revokeToken(t.tokenId);
    expectApiError(last, 409, 'last_admin_token');
    expect(last.json.error.message).toMatch(/last tenant-admin token/);
    expect((await vaultFor(t.token).listSecrets()).status).toBe(200);
    expect((await factorFrom(t.token, t.id)).length).toBe(32);
    // The invoke token can still be revoked.
    expect((await vaultFor(t.token).revokeToken(inv.json.tokenId)).status).toBe(200);
    expectApiError(await vaultFor(t.token).revokeToken(t.tokenId), 409, 'last_admin_token');
  });

  it('two concurrent revocations cannot remove both of the last two tenant-admin tokens', async () => {
    const t = await sovereignTenant();
    const second = await vaultFor(t.token).createToken('tenant-admin');
    const results = await Promise.all([vaultFor(t.token).revokeToken(second.json.tokenId), vaultFor(second.json.token).revokeToken(t.tokenId)]);
    const admins = (await scanTable(f, f.config.tables.tokens)).filter((x) => x.tenantId === t.id && x.role === 'tenant-admin');
    expect({ statuses: results.map((r) => r.status).sort(), adminsLeft: admins.length }).toEqual({ statuses: [200, 409], adminsLeft: 1 });
  });

  it('a token record without a wrap, or with a tampered wrap, cannot use a sovereign vault (403), and nothing is sealed', async () => {
    const t = await sovereignTenant();
    const second = await vaultFor(t.token).createToken('tenant-admin');
    const rec = await recordOf(second.json.token);
    const table = f.config.tables.tokens;

    const wf = rec.wrappedFactor as WrappedFactor;
    const flipped = Buffer.from(wf.ciphertext, 'base64');
    flipped[0] ^= 1;
    await f.clients.doc.send(
      new UpdateCommand({ TableName: table, Key: { verifier: rec.verifier }, UpdateExpression: 'SET wrappedFactor.ciphertext = :c', ExpressionAttributeValues: { ':c': flipped.toString('base64') } }),
    );
    expectApiError(await vaultFor(second.json.token).storeSecret('mistral', key('x')), 403, 'tenant_factor_unavailable', [second.json.token]);
    expectApiError(await vaultFor(second.json.token).createToken('invoke'), 403, 'tenant_factor_unavailable');

    await f.clients.doc.send(new UpdateCommand({ TableName: table, Key: { verifier: rec.verifier }, UpdateExpression: 'REMOVE wrappedFactor' }));
    expectApiError(await vaultFor(second.json.token).storeSecret('mistral', key('x')), 403, 'token_without_factor');
    expectApiError(await vaultFor(second.json.token).rotateSecret('openai', 'default', key('x')), 403, 'token_without_factor');

    expect((await f.store.listSecrets(t.id)).map((s) => `${s.provider}@${s.version}`).sort()).toEqual(['anthropic@1', 'openai@1']);
  });

  it('a managed tenant has no factor: its secrets open with KMS alone (the control)', async () => {
    const id = tenantId('managed');
    const first = await admin.tenantWithToken(id, 'managed');
    const k = key('managed');
    expect((await vaultFor(first.token).storeSecret('openai', k)).json.sovereign).toBe(false);
    expect((await recordOf(first.token)).wrappedFactor).toBeUndefined();
    expect(await openToString(await f.store.getSecret(id, 'openai', 'default'), identity(REGION, id, 'openai'), f.dataKeys, undefined, undefined, await f.store.getErasureKey(id))).toBe(k);
  });
});
