/**
 * Acceptance 1: the control-plane round trip against moto through the real SDK clients. Operators
 * create tenants (managed and sovereign), tenants store / list / rotate / delete provider secrets
 * and manage tokens, operators read and update policy and offboard a tenant; the tables are checked
 * directly and the audit chain is verified.
 */
import { DeleteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { fingerprintKeyOf, fingerprintOf, SealedSecretError } from '../../lambda/core/envelope';
import { computeVerifier, TOKEN_SCAN_PATTERN } from '../../lambda/core/token';
import { createVaultApp } from '../../lambda/core/vault-app';
import { cellFixture, CellFixture, TEST_PROVIDERS } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import {
  AdminClient,
  call,
  cellApps,
  CellApps,
  dumpCell,
  expectApiError,
  identity,
  METADATA_KEYS,
  openToString,
  OPERATOR_ARN,
  rawTableText,
  rejectionOf,
  scanTable,
  secretRows,
  tenantId,
  VaultClient,
} from '../support/vault-client';

const REGION = 'eu-central-1';
const PROVIDERS = { ...TEST_PROVIDERS, 'acme-llm': { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:9' } };
const ALL_PROVIDERS = ['openai', 'anthropic', 'mistral', 'acme-llm'];
const TOKEN_VIEW_KEYS = ['createdAt', 'label', 'limits', 'role', 'tokenId'];

let moto: MotoServer;
let f: CellFixture;
let apps: CellApps;
let admin: AdminClient;

beforeAll(async () => {
  moto = await startMoto();
  f = await cellFixture(moto.endpoint, REGION, { prefix: 'rt-euc1', providers: PROVIDERS });
  apps = cellApps(f);
  admin = new AdminClient(apps.admin);
});
afterAll(() => moto?.stop());
afterEach(() => {
  // No flow of this file may end in a 5xx.
  expect(apps.serverErrors).toEqual([]);
  apps.reset();
});

const vaultFor = (token: string) => new VaultClient(apps.vault, token);

/** The fingerprint the vault shows: keyed with the cell's pepper per (region, tenant, provider). */
async function fingerprint(tenant: string, provider: string, apiKey: string): Promise<string> {
  return fingerprintOf(Buffer.from(apiKey), fingerprintKeyOf(await f.pepper.getPepper(), { region: REGION, tenant, provider }));
}

function providerKey(provider: string, n = 1): string {
  return `sk-${provider}-test-${n}-${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`;
}

describe('tenants', () => {
  it.each(['managed', 'sovereign'] as const)('creates a %s tenant and returns its first tenant-admin token once', async (mode) => {
    const id = tenantId(`new-${mode}`);
    const res = await admin.createTenant(id, { mode, label: 'bootstrap' });
    expect(res.status).toBe(201);
    expect(res.json.tenant).toEqual(
      expect.objectContaining({ tenantId: id, region: REGION, mode, status: 'active', policy: {}, createdAt: expect.any(String) }),
    );
    const token: string = res.json.token;
    expect(token.startsWith(`sr_euc1_${id}_`)).toBe(true);
    expect(TOKEN_SCAN_PATTERN.test(token)).toBe(true);
    expect(res.json.tokenId).toMatch(/^tk_/);
    expect(res.json.notice).toMatch(/only once/);

    // Stored as a verifier only: HMAC(pepper, token), never the token.
    const tokens = (await scanTable(f, f.config.tables.tokens)).filter((t) => t.tenantId === id);
    expect(tokens).toHaveLength(1);
    expect(tokens[0]).toEqual(
      expect.objectContaining({ tokenId: res.json.tokenId, role: 'tenant-admin', label: 'bootstrap', verifier: computeVerifier(await f.pepper.getPepper(), token).toString('hex') }),
    );
    expect(tokens[0].wrappedFactor !== undefined).toBe(mode === 'sovereign');
    expect(await rawTableText(f)).not.toContain(token);

    // Never shown again: not by the tenant view, the token lists or the audit log.
    const views = [await admin.getTenant(id), await admin.listTokens(id), await admin.audit(id), await vaultFor(token).listTokens()];
    for (const v of views) {
      expect(v.status).toBe(200);
      expect(v.body).not.toContain(token);
      expect(v.body).not.toContain(tokens[0].verifier as string);
    }
    const listed = (await vaultFor(token).listTokens()).json.data;
    expect(listed).toEqual([expect.objectContaining({ tokenId: res.json.tokenId, role: 'tenant-admin' })]);
    expect(Object.keys(listed[0]).every((k) => TOKEN_VIEW_KEYS.includes(k))).toBe(true);

    // The token works on the vault.
    expect((await vaultFor(token).listSecrets()).json).toEqual({ object: 'list', data: [] });

    const audit = await admin.audit(id);
    expect(audit.json.verification).toEqual(expect.objectContaining({ ok: true, events: 1, findings: [], unanchored: [] }));
    expect(audit.json.data[0]).toEqual(
      expect.objectContaining({ type: 'tenant.created', actor: `iam:${OPERATOR_ARN}`, seq: 1, details: { mode, firstTokenId: res.json.tokenId } }),
    );
  });

  it('refuses a duplicate tenant id with 409 and leaves the first tenant intact', async () => {
    const id = tenantId('dup');
    const first = await admin.tenantWithToken(id);
    const again = await admin.createTenant(id, { mode: 'sovereign' });
    expectApiError(again, 409, 'tenant_exists');
    expect((await vaultFor(first.token).listSecrets()).status).toBe(200);
    const view = await admin.getTenant(id);
    expect(view.json.mode).toBe('managed');
    expect(view.json.tokens).toHaveLength(1);
  });

  it('returns 404 for an unknown tenant on every admin route', async () => {
    const id = tenantId('ghost');
    for (const res of [
      await admin.getTenant(id),
      await admin.getPolicy(id),
      await admin.putPolicy(id, { rpm: 1 }),
      await admin.listTokens(id),
      await admin.revokeToken(id, 'tk_abc'),
      await admin.offboard(id),
      await admin.audit(id),
    ]) {
      expectApiError(res, 404, 'tenant_not_found');
    }
  });
});

describe('provider secrets', () => {
  it('stores, lists (metadata only), opens, rotates and deletes secrets of every enabled provider', async () => {
    const id = tenantId('secrets');
    const { token } = await admin.tenantWithToken(id);
    const vault = vaultFor(token);
    const keys: Record<string, string> = {};

    for (const provider of ALL_PROVIDERS) {
      keys[provider] = providerKey(provider);
      const res = await vault.storeSecret(provider, keys[provider]);
      expect(res.status).toBe(201);
      expect(res.json).toEqual({
        provider,
        name: 'default',
        version: 1,
        fingerprint: await fingerprint(id, provider, keys[provider]),
        sovereign: false,
        createdAt: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/),
      });
      expect(res.body).not.toContain(keys[provider]);
    }
    keys['openai/backup'] = providerKey('openai', 2);
    expect((await vault.storeSecret('openai', keys['openai/backup'], 'backup')).status).toBe(201);

    // The list is metadata only.
    const list = await vault.listSecrets();
    expect(list.status).toBe(200);
    expect(list.json.object).toBe('list');
    expect(list.json.data.map((s: { provider: string; name: string }) => `${s.provider}/${s.name}`).sort()).toEqual(
      ['acme-llm/default', 'anthropic/default', 'mistral/default', 'openai/backup', 'openai/default'].sort(),
    );
    for (const s of list.json.data) expect(Object.keys(s).every((k) => METADATA_KEYS.includes(k))).toBe(true);
    const rows = secretRows(await dumpCell(f), id);
    expect(rows).toHaveLength(5);
    const adminView = await admin.getTenant(id);
    for (const body of [list.body, adminView.body]) {
      for (const k of Object.values(keys)) expect(body).not.toContain(k);
      for (const row of rows) {
        for (const field of ['ciphertext', 'wrappedKey', 'iv', 'tag', 'keyArn']) expect(body).not.toContain(String(row[field]));
      }
      expect(body).not.toMatch(/ciphertext|wrappedKey|"iv"|"tag"|keyArn|plaintext/);
    }
    expect(adminView.json.secrets).toHaveLength(5);

    // Each stored row is a real sealed secret: the KMS adapter opens it under its identity only.
    for (const row of rows) {
      const provider = String(row.provider);
      const name = String(row.secret);
      const expected = keys[name === 'default' ? provider : `${provider}/${name}`];
      expect(row.version).toBe(1);
      expect(await openToString(row, identity(REGION, id, provider, name, 1), f.dataKeys, undefined, undefined, await f.store.getErasureKey(id))).toBe(expected);
    }

    // Storing the same (provider, name) again is a conflict, not an overwrite.
    expectApiError(await vault.storeSecret('openai', providerKey('openai', 9)), 409, 'conflict');
    expect(await openToString(await f.store.getSecret(id, 'openai', 'default'), identity(REGION, id, 'openai'), f.dataKeys, undefined, undefined, await f.store.getErasureKey(id))).toBe(keys.openai);

    // Rotation: version increments, createdAt kept, the old version is gone from the table.
    const before = (await f.store.getSecret(id, 'openai', 'default'))!;
    const rotatedKey = providerKey('openai', 3);
    const rotated = await vault.rotateSecret('openai', 'default', rotatedKey);
    expect(rotated.status).toBe(200);
    expect(rotated.json).toEqual({
      provider: 'openai',
      name: 'default',
      version: 2,
      fingerprint: await fingerprint(id, 'openai', rotatedKey),
      sovereign: false,
      createdAt: before.createdAt,
      rotatedAt: expect.any(String),
    });
    const afterRows = secretRows(await dumpCell(f), id).filter((r) => r.provider === 'openai' && r.secret === 'default');
    expect(afterRows).toHaveLength(1);
    expect(afterRows[0].version).toBe(2);
    const tableText = await rawTableText(f);
    for (const field of ['ciphertext', 'wrappedKey', 'iv', 'tag'] as const) expect(tableText).not.toContain(before[field]);
    expect(await openToString(afterRows[0], identity(REGION, id, 'openai', 'default', 2), f.dataKeys, undefined, undefined, await f.store.getErasureKey(id))).toBe(rotatedKey);
    const stale = await rejectionOf(openToString(afterRows[0], identity(REGION, id, 'openai', 'default', 1), f.dataKeys, undefined, undefined, await f.store.getErasureKey(id)));
    expect(stale).toBeInstanceOf(SealedSecretError);
    expect((stale as SealedSecretError).reason).toBe('identity_mismatch');

    const third = await vault.rotateSecret('openai', 'default', providerKey('openai', 4));
    expect([third.status, third.json.version]).toEqual([200, 3]);
    for (const provider of ['anthropic', 'mistral', 'acme-llm']) {
      const r = await vault.rotateSecret(provider, 'default', providerKey(provider, 2));
      expect([r.status, r.json.version, r.json.provider]).toEqual([200, 2, provider]);
    }
    expectApiError(await vault.rotateSecret('openai', 'nope', providerKey('openai', 5)), 404, 'secret_not_found');

    // Deletion removes the row; a second delete is a 404.
    const del = await vault.deleteSecret('anthropic', 'default');
    expect([del.status, del.json]).toEqual([200, { deleted: true, provider: 'anthropic', name: 'default' }]);
    expect(secretRows(await dumpCell(f), id).filter((r) => r.provider === 'anthropic')).toEqual([]);
    expect((await vault.listSecrets()).json.data.map((s: { provider: string }) => s.provider)).not.toContain('anthropic');
    expectApiError(await vault.deleteSecret('anthropic', 'default'), 404, 'secret_not_found');
    // Re-storing after deletion starts again at version 1.
    expect((await vault.storeSecret('anthropic', providerKey('anthropic', 7))).json.version).toBe(1);

    const audit = await admin.audit(id);
    expect(audit.json.verification.ok).toBe(true);
    expect(audit.json.data.map((e: { type: string }) => e.type)).toEqual([
      'tenant.created',
      ...ALL_PROVIDERS.map(() => 'secret.stored'),
      'secret.stored',
      'secret.rotated',
      'secret.rotated',
      'secret.rotated',
      'secret.rotated',
      'secret.rotated',
      'secret.deleted',
      'secret.stored',
    ]);
    expect(audit.body).not.toMatch(/sk-[a-z-]+-test-/);
  });

  it('fingerprints are keyed per tenant and provider: one key stored by two tenants, or for two providers, shows unrelated values', async () => {
    const shared = providerKey('shared');
    const fps: string[] = [];
    for (const stem of ['fp-one', 'fp-two']) {
      const id = tenantId(stem);
      const vault = vaultFor((await admin.tenantWithToken(id)).token);
      for (const provider of ['openai', 'acme-llm']) {
        const res = await vault.storeSecret(provider, shared);
        expect(res.status).toBe(201);
        expect(res.json.fingerprint).toMatch(/^hmac:[0-9a-f]{16}$/);
        expect(res.json.fingerprint).toBe(await fingerprint(id, provider, shared));
        fps.push(res.json.fingerprint);
      }
      // Stable within one tenant and provider: re-storing the same key under another name shows the same value.
      expect((await vault.storeSecret('openai', shared, 'again')).json.fingerprint).toBe(fps[fps.length - 2]);
    }
    expect(new Set(fps).size).toBe(4);
  });

  it('refuses a provider that is not enabled in the region', async () => {
    const { token } = await admin.tenantWithToken(tenantId('noprov'));
    const vault = vaultFor(token);
    for (const provider of ['cohere', 'constructor', '__proto__', 'OpenAI']) {
      expectApiError(await vault.storeSecret(provider, providerKey('x')), 400, 'unknown_provider');
    }
    expectApiError(await vault.rotateSecret('cohere', 'default', providerKey('x')), 400, 'unknown_provider');
    expect((await vault.listSecrets()).json.data).toEqual([]);
  });
});

describe('tokens', () => {
  it('creates tokens with roles and limits, lists them without secrets, rotates and revokes them', async () => {
    const id = tenantId('tokens');
    const first = await admin.tenantWithToken(id);
    const vault = vaultFor(first.token);

    const limits = { rpm: 60, tpm: 100_000, maxTokens: 2048, monthlyBudgetUsd: 12.5, allowedModels: ['gpt-4o-mini', 'claude-3-5-haiku'], ipAllowlist: ['10.0.0.0/8', '2001:db8::/32'] };
    const inv = await vault.createToken('invoke', { label: 'ci pipeline', limits });
    expect(inv.status).toBe(201);
    expect(inv.json).toEqual({
      tokenId: expect.stringMatching(/^tk_/),
      role: 'invoke',
      label: 'ci pipeline',
      limits,
      createdAt: expect.any(String),
      token: expect.stringMatching(new RegExp(`^sr_euc1_${id}_`)),
      notice: expect.stringMatching(/only once/),
    });
    const adm2 = await vault.createToken('tenant-admin');
    expect([adm2.status, adm2.json.role, adm2.json.limits, adm2.json.label]).toEqual([201, 'tenant-admin', undefined, undefined]);

    // The second admin token works; the invoke token may not use the vault.
    expect((await vaultFor(adm2.json.token).listSecrets()).status).toBe(200);
    expectApiError(await vaultFor(inv.json.token).listSecrets(), 403, 'insufficient_role', [inv.json.token]);

    // Lists show views only: no token, no verifier, no wrap.
    const stored = (await scanTable(f, f.config.tables.tokens)).filter((t) => t.tenantId === id);
    expect(stored).toHaveLength(3);
    for (const list of [await vault.listTokens(), await admin.listTokens(id)]) {
      expect(list.status).toBe(200);
      expect(list.json.data.map((t: { tokenId: string }) => t.tokenId).sort()).toEqual([first.tokenId, inv.json.tokenId, adm2.json.tokenId].sort());
      for (const t of list.json.data) expect(Object.keys(t).every((k) => TOKEN_VIEW_KEYS.includes(k))).toBe(true);
      for (const secret of [first.token, inv.json.token, adm2.json.token, ...stored.map((s) => String(s.verifier))]) expect(list.body).not.toContain(secret);
    }
    expect((await vault.listTokens()).json.data.find((t: { tokenId: string }) => t.tokenId === inv.json.tokenId).limits).toEqual(limits);

    // Rotation through the vault: new token works with the same role and limits, the old one is gone.
    const rot = await vault.rotateToken(inv.json.tokenId);
    expect(rot.status).toBe(201);
    expect(rot.json).toEqual(expect.objectContaining({ role: 'invoke', label: 'ci pipeline', limits, previousTokenId: inv.json.tokenId }));
    expect(rot.json.token).not.toBe(inv.json.token);
    expectApiError(await vaultFor(inv.json.token).listSecrets(), 401, 'invalid_api_key', [inv.json.token]);
    expectApiError(await vaultFor(rot.json.token).listSecrets(), 403, 'insufficient_role');
    expectApiError(await vault.rotateToken(inv.json.tokenId), 404, 'token_not_found');

    // Revocation by the tenant: the record leaves the table and the token stops working.
    const rev = await vault.revokeToken(rot.json.tokenId);
    expect([rev.status, rev.json]).toEqual([200, { revoked: true, tokenId: rot.json.tokenId }]);
    expect((await scanTable(f, f.config.tables.tokens)).some((t) => t.tokenId === rot.json.tokenId)).toBe(false);
    expectApiError(await vaultFor(rot.json.token).listSecrets(), 401, 'invalid_api_key');
    expectApiError(await vault.revokeToken(rot.json.tokenId), 404, 'token_not_found');

    // Revocation by the operator.
    const byOp = await admin.revokeToken(id, adm2.json.tokenId);
    expect([byOp.status, byOp.json]).toEqual([200, { revoked: true, tokenId: adm2.json.tokenId }]);
    expectApiError(await vaultFor(adm2.json.token).listSecrets(), 401, 'invalid_api_key');
    expectApiError(await admin.revokeToken(id, adm2.json.tokenId), 404, 'token_not_found');

    // The last tenant-admin token cannot be revoked through the vault.
    expectApiError(await vault.revokeToken(first.tokenId), 409, 'last_admin_token');
    expect((await vault.listSecrets()).status).toBe(200);

    // Rotating one's own token: the new one takes over.
    const self = await vault.rotateToken(first.tokenId);
    expect([self.status, self.json.role]).toEqual([201, 'tenant-admin']);
    expectApiError(await vault.listSecrets(), 401, 'invalid_api_key');
    expect((await vaultFor(self.json.token).listTokens()).json.data).toHaveLength(1);

    const audit = await admin.audit(id);
    expect(audit.json.verification.ok).toBe(true);
    expect(audit.json.data.map((e: { type: string }) => e.type)).toEqual([
      'tenant.created',
      'token.created',
      'token.created',
      'token.rotated',
      'token.revoked',
      'token.revoked',
      'token.rotated',
    ]);
    expect(audit.json.data[4].actor).toBe(`token:${first.tokenId}`);
    expect(audit.json.data[5].actor).toBe(`iam:${OPERATOR_ARN}`);
  });

  it("cannot revoke or rotate another tenant's token", async () => {
    const a = await admin.tenantWithToken(tenantId('own-a'));
    const bId = tenantId('own-b');
    const b = await admin.tenantWithToken(bId);
    const extraB = await vaultFor(b.token).createToken('tenant-admin');
    expectApiError(await vaultFor(a.token).revokeToken(extraB.json.tokenId), 404, 'token_not_found');
    expectApiError(await vaultFor(a.token).rotateToken(extraB.json.tokenId), 404, 'token_not_found');
    expectApiError(await admin.revokeToken(tenantId('own-c').slice(0, 20), extraB.json.tokenId), 404);
    expect((await vaultFor(extraB.json.token).listSecrets()).status).toBe(200);
    expect((await vaultFor(b.token).listTokens()).json.data).toHaveLength(2);
  });
});

describe('policy', () => {
  it('reads the policy given at creation and replaces it, recording the change', async () => {
    const id = tenantId('policy');
    const initial = { rpm: 100, allowedModels: ['gpt-4o-mini'] };
    expect((await admin.createTenant(id, { policy: initial })).status).toBe(201);
    expect((await admin.getPolicy(id)).json).toEqual({ policy: initial });

    const policy = {
      rpm: 600,
      tpm: 1_000_000,
      maxTokens: 4096,
      monthlyBudgetUsd: 250,
      ipAllowlist: ['192.0.2.0/24'],
      routes: {
        'fast-chat': [
          { provider: 'openai', model: 'gpt-4o-mini', weight: 3 },
          { provider: 'anthropic', model: 'claude-3-5-haiku-latest' },
        ],
        local: [{ provider: 'acme-llm', model: 'llama-3.1-70b', secret: 'default' }],
      },
    };
    const put = await admin.putPolicy(id, policy);
    expect([put.status, put.json]).toEqual([200, { policy }]);
    expect((await admin.getPolicy(id)).json).toEqual({ policy });
    const view = await admin.getTenant(id);
    expect(view.json.policy).toEqual(policy);
    expect(view.json.updatedAt >= view.json.createdAt).toBe(true);

    // A new policy replaces the old one (not a merge).
    expect((await admin.putPolicy(id, { rpm: 5 })).json).toEqual({ policy: { rpm: 5 } });
    expect((await admin.getPolicy(id)).json).toEqual({ policy: { rpm: 5 } });

    const audit = await admin.audit(id);
    expect(audit.json.verification).toEqual(expect.objectContaining({ ok: true, events: 3, findings: [], unanchored: [] }));
    expect(audit.json.data[1]).toEqual(
      expect.objectContaining({ type: 'policy.updated', actor: `iam:${OPERATOR_ARN}`, details: { keys: 'ipAllowlist,maxTokens,monthlyBudgetUsd,routes,rpm,tpm' } }),
    );
  });
});

describe('offboarding', () => {
  it('destroys sealed secrets and tokens, marks the tenant, stops its tokens and records it in a verifiable chain', async () => {
    for (const mode of ['managed', 'sovereign'] as const) {
      const id = tenantId(`off-${mode}`);
      const first = await admin.tenantWithToken(id, mode);
      const vault = vaultFor(first.token);
      for (const p of ['openai', 'mistral', 'acme-llm']) expect((await vault.storeSecret(p, providerKey(p))).status).toBe(201);
      const inv = (await vault.createToken('invoke', { limits: { rpm: 1 } })).json.token as string;
      const adm2 = (await vault.createToken('tenant-admin')).json.token as string;

      // A bystander tenant must not be touched.
      const otherId = tenantId(`keep-${mode}`);
      const other = await admin.tenantWithToken(otherId, mode);
      const otherKey = providerKey('openai');
      expect((await vaultFor(other.token).storeSecret('openai', otherKey)).status).toBe(201);

      const res = await admin.offboard(id);
      expect([res.status, res.json]).toEqual([200, { offboarded: true, tenantId: id, secretsDestroyed: 3, tokensRevoked: 3, erasureKeyDestroyed: true, legacySecretsNotShredded: 0 }]);

      const dump = await dumpCell(f);
      expect(dump.tenants.filter((i) => i.pk === `TENANT#${id}` && i.sk !== 'META')).toEqual([]);
      expect(dump.tokens.filter((t) => t.tenantId === id)).toEqual([]);
      const meta = dump.tenants.find((i) => i.pk === `TENANT#${id}` && i.sk === 'META')!;
      expect(meta).toEqual(expect.objectContaining({ status: 'offboarded', offboardedAt: expect.any(String), mode }));
      expect(dump.erasure.filter((i) => i.tenantId === id)).toEqual([]);
      expect(dump.erasure.filter((i) => i.tenantId === otherId)).toHaveLength(1);

      for (const t of [first.token, inv, adm2]) {
        expectApiError(await vaultFor(t).listSecrets(), 401, 'invalid_api_key', [t]);
        expectApiError(await vaultFor(t).storeSecret('openai', providerKey('openai')), 401, 'invalid_api_key', [t]);
      }

      const view = await admin.getTenant(id);
      expect(view.json).toEqual(expect.objectContaining({ tenantId: id, status: 'offboarded', offboardedAt: meta.offboardedAt, secrets: [], tokens: [] }));
      const audit = await admin.audit(id);
      expect(audit.json.verification).toEqual(expect.objectContaining({ ok: true, events: 7, findings: [], unanchored: [] }));
      expect(audit.json.data.at(-1)).toEqual(
        expect.objectContaining({ type: 'tenant.offboarded', actor: `iam:${OPERATOR_ARN}`, seq: 7, details: { secretsDestroyed: 3, tokensRevoked: 3, erasureKeyDestroyed: true, legacySecretsNotShredded: 0 } }),
      );
      expect(meta.auditSeq).toBe(7);
      expect(meta.auditHead).toBe(audit.json.data.at(-1).mac);

      // Nothing more can happen to an offboarded tenant; its id stays taken.
      expectApiError(await admin.offboard(id), 409, 'tenant_offboarded');
      expectApiError(await admin.putPolicy(id, { rpm: 1 }), 409, 'tenant_offboarded');
      expectApiError(await admin.revokeToken(id, first.tokenId), 409, 'tenant_offboarded');
      expectApiError(await admin.createTenant(id), 409, 'tenant_exists');
      expect((await admin.getPolicy(id)).status).toBe(200);

      // The bystander is intact.
      expect((await vaultFor(other.token).listSecrets()).json.data).toHaveLength(1);
      const otherRow = (await f.store.getSecret(otherId, 'openai', 'default'))!;
      expect(otherRow.sovereign).toBe(mode === 'sovereign');
      if (mode === 'managed') expect(await openToString(otherRow, identity(REGION, otherId, 'openai'), f.dataKeys, undefined, undefined, await f.store.getErasureKey(otherId))).toBe(otherKey);
      expect((await admin.audit(otherId)).json.verification.ok).toBe(true);
    }
  });

  it.each([
    ['a sealed secret', 'POST', '/vault/secrets', { provider: 'openai', apiKey: 'sk-in-flight-0123456789abcdef' }],
    ['a token', 'POST', '/vault/tokens', { role: 'tenant-admin' }],
  ] as const)('%s whose write was in flight during offboarding does not survive it', async (_what, method, path, body) => {
    const id = tenantId('inflight');
    const { token } = await admin.tenantWithToken(id, 'sovereign');
    // The vault request authenticates and seals while the tenant is active; its store write is
    // held until the offboarding has finished (a slow KMS call or a retry is enough for this).
    let reached!: () => void;
    const atStore = new Promise<void>((r) => (reached = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const store = new Proxy(f.store, {
      get: (target, prop, receiver) => {
        const value = Reflect.get(target, prop, receiver);
        if (prop !== 'putSecret' && prop !== 'putToken') return value;
        return async (...args: unknown[]) => {
          reached();
          await gate;
          return (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        };
      },
    });
    const vault = createVaultApp({ config: f.config, store, pepper: f.pepper, dataKeys: f.dataKeys, usage: f.usage, audit: f.audit });
    const inflight = call(vault, method, path, { token, body });
    await atStore;
    expect((await admin.offboard(id)).status).toBe(200);
    release();
    const res = await inflight;

    const dump = await dumpCell(f);
    const audit = await admin.audit(id);
    expect({
      status: res.status,
      secretRows: dump.tenants.filter((i) => i.pk === `TENANT#${id}` && i.sk !== 'META').length,
      tokenRows: dump.tokens.filter((t) => t.tenantId === id).length,
      lastEvent: audit.json.data.at(-1).type,
    }).toEqual({ status: 409, secretRows: 0, tokenRows: 0, lastEvent: 'tenant.offboarded' });
  });

  it('the audit verifier detects an edited, a deleted and a truncated event', async () => {
    const table = f.config.tables.audit;
    const tenantWithHistory = async (): Promise<string> => {
      const id = tenantId('tamper');
      const { token } = await admin.tenantWithToken(id);
      expect((await vaultFor(token).storeSecret('openai', providerKey('openai'))).status).toBe(201);
      expect((await vaultFor(token).createToken('invoke')).status).toBe(201);
      expect((await admin.putPolicy(id, { rpm: 7 })).status).toBe(200);
      expect((await admin.audit(id)).json.verification).toEqual(expect.objectContaining({ ok: true, events: 4, findings: [], unanchored: [] }));
      return id;
    };

    const edited = await tenantWithHistory();
    await f.clients.doc.send(
      new UpdateCommand({ TableName: table, Key: { tenantId: edited, seq: 2 }, UpdateExpression: 'SET actor = :a', ExpressionAttributeValues: { ':a': 'iam:someone-else' } }),
    );
    expect((await admin.audit(edited)).json.verification).toEqual(expect.objectContaining({ ok: false, events: 4, firstBad: expect.objectContaining({ seq: 2, code: 'not_authentic' }) }));

    const deleted = await tenantWithHistory();
    await f.clients.doc.send(new DeleteCommand({ TableName: table, Key: { tenantId: deleted, seq: 2 } }));
    expect((await admin.audit(deleted)).json.verification).toEqual(expect.objectContaining({ ok: false, events: 3, firstBad: expect.objectContaining({ seq: 2, code: 'missing' }) }));

    const truncated = await tenantWithHistory();
    await f.clients.doc.send(new DeleteCommand({ TableName: table, Key: { tenantId: truncated, seq: 4 } }));
    expect((await admin.audit(truncated)).json.verification).toEqual(
      expect.objectContaining({ ok: false, events: 3, firstBad: expect.objectContaining({ seq: 4, code: 'truncated' }) }),
    );
  });
});
