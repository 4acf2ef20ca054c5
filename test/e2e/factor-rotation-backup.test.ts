/**
 * Issue 10, point 2, the backup claim, on moto (real KMS encryption-context binding, DynamoDB):
 * after a tenant-factor rotation, a table dump taken BEFORE it plus a token revoked BEFORE it plus
 * KMS Decrypt open nothing of what the rotation wrote: no resealed row, no token's new wrap. The
 * attacker is given more than a backup reader has: the old dump, the whole current table, the
 * revoked token and the production KMS adapter.
 *
 * What it cannot undo is stated as a control at the end: the old dump's own rows still open with
 * the revoked token (they hold the provider keys as they were then). Only rotating the provider
 * key at the provider makes those worthless (README, Operations).
 */
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { openSecret, parseSealedSecret, SealedSecretError, type SealedSecret } from '../../lambda/core/envelope';
import { isFactorBox, openFactorBox } from '../../lambda/core/factor-box';
import { runFactorChange } from '../../lambda/core/lifecycle/factor-change';
import { TenantFactorError, unwrapTenantFactor, type WrappedFactor } from '../../lambda/core/tenant-factor';
import type { SecretVersionEntry } from '../../lambda/core/tenant-model';
import { computeVerifier } from '../../lambda/core/token';
import { FAKE_PROVIDER_KEYS, RouterHarness, startRouterHarness } from '../support/router-harness';
import { identity, rejectionOf } from '../support/vault-client';

const REGION = 'eu-central-1';
const TENANT = 'backup-sov';
type Item = Record<string, any>;

let h: RouterHarness;
beforeAll(async () => {
  h = await startRouterHarness();
}, 60_000);
afterAll(async () => {
  await h?.close();
});

async function scan(table: string): Promise<Item[]> {
  const out: Item[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const page = await h.cell.clients.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
    out.push(...((page.Items ?? []) as Item[]));
    start = page.LastEvaluatedKey;
  } while (start);
  return out;
}

/** The tenant's items of the tenants and tokens tables, as a backup holds them. */
async function dump(): Promise<{ meta: Item; rows: Item[]; tokens: Item[] }> {
  const tenants = (await scan(h.cell.config.tables.tenants)).filter((i) => i.pk === `TENANT#${TENANT}`);
  const tokens = (await scan(h.cell.config.tables.tokens)).filter((i) => i.tenantId === TENANT);
  return { meta: tenants.find((i) => i.sk === 'META')!, rows: tenants.filter((i) => String(i.sk).startsWith('SECRET#')), tokens };
}

const chat = (token: string) => h.call({ path: '/v1/chat/completions', body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) }, token);

it('a pre-rotation dump + a token revoked before the rotation + KMS open nothing the rotation wrote', async () => {
  const { adminToken, invokeToken: live } = await h.tenant(TENANT, { mode: 'sovereign' });
  const leaked = await h.vault(adminToken, 'POST', '/vault/tokens', { role: 'invoke', label: 'leaked' });
  expect(leaked.status).toBe(201);
  const revoked = leaked.json.token as string;
  expect((await chat(revoked)).sink.status).toBe(200);

  // 1. The backup, taken while the leaked token is still live.
  const before = await dump();
  // 2. The leak is noticed: the token is revoked, then the factor rotated.
  expect((await h.vault(adminToken, 'DELETE', `/vault/tokens/${leaked.json.tokenId}`)).status).toBe(200);
  const report = await runFactorChange(
    { region: REGION, store: h.cell.store, pepper: h.cell.pepper, dataKeys: h.cell.dataKeys },
    { tenantId: TENANT, kind: 'rotate', token: adminToken, actor: 'iam:arn:aws:iam::111122223333:role/Operator' },
  );
  expect(report).toMatchObject({ fromGeneration: 1, toGeneration: 2, secretsResealed: 4, tokensRewrapped: 1 });
  const after = await dump();
  expect((await chat(live)).sink.status).toBe(200);
  expect((await chat(revoked)).sink.status).toBe(401);

  // The attacker's first step works: the revoked token opens its wrap in the old dump (F_old).
  const leakedItem = before.tokens.find((t) => t.tokenId === leaked.json.tokenId)!;
  const fOld = unwrapTenantFactor(leakedItem.wrappedFactor as WrappedFactor, { token: revoked, region: REGION, tenant: TENANT, tokenId: leakedItem.tokenId });
  expect(fOld).toHaveLength(32);

  // 2a. No token record of the current table opens with the revoked token, under any token id.
  expect(after.tokens.length).toBe(2);
  for (const t of after.tokens) {
    expect(isFactorBox(t.wrappedFactor)).toBe(true);
    for (const tokenId of [t.tokenId, leakedItem.tokenId]) {
      expect(() => openFactorBox(t.wrappedFactor, { token: revoked, region: REGION, tenant: TENANT, tokenId })).toThrow(TenantFactorError);
    }
  }
  // The revoked token's record is not in the current table, so nothing was sealed to its key.
  const verifier = computeVerifier(await h.cell.pepper.getPepper(), revoked).toString('hex');
  expect(after.tokens.map((t) => t.verifier)).not.toContain(verifier);

  // The attacker also reads the live erasure-key table (the tenant is not offboarded): E is no
  // barrier here, so what stops it below is the factor rotation alone.
  const E = (await h.cell.store.getErasureKey(TENANT))!;
  // 2b. No resealed row opens with F_old + KMS, with the new salts (current META) or the old ones.
  const newEntries = after.meta.secretVersions as Record<string, SecretVersionEntry>;
  const oldEntries = before.meta.secretVersions as Record<string, SecretVersionEntry>;
  const seen: string[] = [];
  for (const item of after.rows) {
    const row = parseSealedSecret(item);
    const slot = `${row.provider}#${row.secret}`;
    expect(newEntries[slot]).toMatchObject({ version: row.version, generation: 2 });
    for (const salt of [newEntries[slot].salt!, oldEntries[slot].salt!]) {
      const kmsBefore = h.kmsCalls.length;
      const err = await rejectionOf(
        openSecret({
          record: row,
          expected: identity(REGION, TENANT, row.provider, row.secret, row.version),
          dataKeys: h.cell.dataKeys,
          tenantFactor: Buffer.from(fOld),
          versionSalt: Buffer.from(salt, 'base64'),
          erasureKey: E,
          use: (p) => seen.push(p.toString('utf8')),
        }),
      );
      expect(err).toBeInstanceOf(SealedSecretError);
      expect((err as SealedSecretError).reason).toBe('integrity');
      // KMS released the data key: the refusal is cryptographic, not a policy or a missing item.
      expect(h.kmsCalls.slice(kmsBefore)).toEqual(['DecryptCommand']);
    }
  }
  expect(seen).toEqual([]);
  // No provider key is in either dump in clear.
  const text = JSON.stringify([before, after]);
  for (const key of Object.values(FAKE_PROVIDER_KEYS)) expect(text).not.toContain(key);

  // 3. A pre-rotation row written back is refused by the router (META names generation 2's version).
  const oldOpenai = before.rows.find((r) => r.sk === 'SECRET#openai#default')!;
  const { PutCommand } = await import('@aws-sdk/lib-dynamodb');
  await h.cell.clients.doc.send(new PutCommand({ TableName: h.cell.config.tables.tenants, Item: oldOpenai }));
  const refused = await chat(live);
  expect([refused.sink.status, refused.json.error.code]).toEqual([500, 'secret_integrity_failure']);
  await h.cell.clients.doc.send(new PutCommand({ TableName: h.cell.config.tables.tenants, Item: after.rows.find((r) => r.sk === 'SECRET#openai#default')! }));
  expect((await chat(live)).sink.status).toBe(200);

  // Control, the stated limit: the OLD dump's own rows still open with F_old and the old salts,
  // because they hold the provider keys as they were. Rotating the key at the provider ends that.
  const oldRow = parseSealedSecret(oldOpenai) as SealedSecret;
  const opened = await openSecret({
    record: oldRow,
    expected: identity(REGION, TENANT, 'openai', 'default', oldRow.version),
    dataKeys: h.cell.dataKeys,
    tenantFactor: Buffer.from(fOld),
    versionSalt: Buffer.from(oldEntries['openai#default'].salt!, 'base64'),
    erasureKey: E,
    use: (p) => p.toString('utf8'),
  });
  expect(opened).toBe(FAKE_PROVIDER_KEYS.openai);
  fOld.fill(0);
});
