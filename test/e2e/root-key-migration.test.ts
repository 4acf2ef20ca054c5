/**
 * Root-key migration against moto: a cell moves every sealed row from its old root key (A) to a
 * new one (B) with kms:ReEncrypt. The router opens rows under either key during the migration;
 * the migration sends no Decrypt and sees no plaintext; it survives a crash mid-run and resumes
 * from its last cursor; a second run changes nothing; a concurrent rotation is never overwritten;
 * a tampered row is reported and left alone; every rewrap is in the tenant's authenticated trail.
 */
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { GetCommand, PutCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import { DynamoSealedRowScanner } from '../../lambda/adapters/dynamo-sealed-row-scanner';
import { DynamoTenantStore } from '../../lambda/adapters/dynamo-tenant-store';
import { KmsDataKeyRewrapper } from '../../lambda/adapters/kms-data-key-rewrapper';
import { KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
import { createAdminApp } from '../../lambda/core/admin-app';
import type { SealedSecret } from '../../lambda/core/envelope';
import type { DataKeyRewrapper, EncryptionContext } from '../../lambda/core/ports';
import { createRootKeyMigrationApp } from '../../lambda/core/root-key-migration-app';
import { createVaultApp } from '../../lambda/core/vault-app';
import { awsClients, recordCommands } from '../support/aws-clients';
import { RouterHarness, startRouterHarness } from '../support/router-harness';

const OPERATOR = 'arn:aws:iam::111122223333:role/KeyOperator';
let h: RouterHarness;
let keyA: string;
let keyB: string;
let kms: KMSClient;
let doc: DynamoDBDocumentClient;
const tokens: Record<string, { adminToken: string; invokeToken: string }> = {};
const TENANTS = ['mig-a', 'mig-b', 'mig-s'];

beforeAll(async () => {
  h = await startRouterHarness();
  keyA = h.cell.config.rootKeyArn;
  kms = h.cell.clients.kms;
  doc = DynamoDBDocumentClient.from(h.cell.clients.ddb);
  for (const t of TENANTS) tokens[t] = await h.tenant(t, { mode: t === 'mig-s' ? 'sovereign' : 'managed' });
  keyB = (await kms.send(new CreateKeyCommand({ KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT' }))).KeyMetadata!.Arn!;
}, 120_000);
afterAll(async () => h?.close());

/** The cell after the switch: seals under B, opens under B and (while migrating) A. */
const dataKeysAfterSwitch = (previous: string[] = [keyA]) => new KmsDataKeyService(kms, keyB, { previousKeyArns: previous });

async function chat(tenant: string, dataKeys: KmsDataKeyService, provider = 'gpt-4o-mini') {
  const router = h.makeRouter({ dataKeys });
  const { MemorySink } = await import('../../lambda/core/router/response-sink');
  const sink = new MemorySink();
  await router(
    {
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { authorization: `Bearer ${tokens[tenant].invokeToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ model: provider, messages: [{ role: 'user', content: 'hi' }] }),
      sourceIp: '203.0.113.7',
    },
    sink,
  );
  return { status: sink.status, body: sink.body };
}

async function row(tenant: string, provider: string, name = 'default'): Promise<SealedSecret> {
  const out = await doc.send(new GetCommand({ TableName: h.cell.config.tables.tenants, Key: { pk: `TENANT#${tenant}`, sk: `SECRET#${provider}#${name}` }, ConsistentRead: true }));
  return out.Item as unknown as SealedSecret;
}

/** The migration function's app, on its own KMS client whose commands are recorded. */
function migrationApp(opts: { rewrapper?: (inner: DataKeyRewrapper) => DataKeyRewrapper; store?: DynamoTenantStore['rewrapSecret'] } = {}) {
  const ownKms = awsClients(h.moto.endpoint, h.cell.config.region).kms;
  const commands = recordCommands(ownKms);
  const real = new KmsDataKeyRewrapper(ownKms, keyB, [keyA]);
  const errors: unknown[] = [];
  const app = createRootKeyMigrationApp({
    region: h.cell.config.region,
    rows: new DynamoSealedRowScanner(h.cell.clients.ddb, h.cell.config.tables.tenants),
    store: { rewrapSecret: opts.store ?? ((b, a, e) => h.cell.store.rewrapSecret(b, a, e)), appendCellEvent: (r, e) => h.cell.store.appendCellEvent(r, e) },
    rewrapper: opts.rewrapper ? opts.rewrapper(real) : real,
    sourceKeyArns: [keyA],
    // One page per call, so a run is many calls and a crash falls between cursors.
    batchBudgetMs: 0,
    onError: (err) => errors.push(err),
  });
  const call = async (method: string, path: string, body?: unknown) => {
    const res = await app({ method, path, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), iamCaller: OPERATOR });
    return { status: res.status, json: JSON.parse(res.body) };
  };
  return { call, commands, errors };
}

/** Runs the migration to the end from `cursor`, as the CLI does; returns the summed counts. */
async function runToEnd(m: ReturnType<typeof migrationApp>, cursor?: string) {
  const sum = { calls: 0, scanned: 0, rewrapped: 0, alreadyCurrent: 0, raced: 0, otherKey: 0, failed: 0, failures: [] as unknown[] };
  for (;;) {
    const res = await m.call('POST', '/admin/root-key/migrate', { pageSize: 3, ...(cursor ? { cursor } : {}) });
    if (res.status !== 200) throw new Error(`migrate: ${res.status} ${JSON.stringify(res.json)} ${m.errors.map((e) => String((e as Error).stack)).join(" / ")}`);
    sum.calls++;
    for (const k of ['scanned', 'rewrapped', 'alreadyCurrent', 'raced', 'otherKey', 'failed'] as const) sum[k] += res.json[k];
    sum.failures.push(...res.json.failures);
    if (res.json.done) return sum;
    cursor = res.json.cursor;
  }
}

describe('root-key migration (moto)', () => {
  it('before the switch every row is under A; a router that accepts only B refuses them with a non-retryable error', async () => {
    expect((await row('mig-a', 'openai')).keyArn).toBe(keyA);
    const onlyB = await chat('mig-a', new KmsDataKeyService(kms, keyB));
    expect(onlyB.status).toBe(500);
    expect(JSON.parse(onlyB.body).error.code).toBe('key_access_denied');
  });

  it('during the migration the router opens rows under A and B, and the vault seals new ones under B', async () => {
    const vault = createVaultApp({ config: h.cell.config, store: h.cell.store, pepper: h.cell.pepper, dataKeys: dataKeysAfterSwitch(), usage: h.cell.usage, audit: h.cell.audit });
    for (let i = 0; i < 4; i++) {
      const res = await vault({
        method: 'POST',
        path: '/vault/secrets',
        headers: { authorization: `Bearer ${tokens['mig-b'].adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({ provider: 'openai', name: `extra-${i}`, apiKey: `sk-extra-${i}-0123456789` }),
      });
      expect(res.status).toBe(201);
    }
    expect((await row('mig-b', 'openai', 'extra-0')).keyArn).toBe(keyB);
    for (const t of TENANTS) expect((await chat(t, dataKeysAfterSwitch())).status).toBe(200);
  });

  it('status counts rows per key', async () => {
    const m = migrationApp();
    const res = await m.call('GET', '/admin/root-key/status');
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ currentKeyArn: keyB, current: 4, previous: { [keyA]: 12 }, other: 0, unreadable: 0, complete: false });
  });

  it('a crash mid-run loses nothing: resuming from the last cursor finishes, with ReEncrypt only (no Decrypt, no plaintext)', async () => {
    let rewraps = 0;
    const crashing = migrationApp({
      store: async (before, after, audit) => {
        // The process dies after its 5th write, in the middle of a page.
        if (++rewraps > 5) throw new Error('simulated crash');
        return h.cell.store.rewrapSecret(before, after, audit);
      },
    });
    let cursor: string | undefined;
    let crashed = false;
    for (let i = 0; i < 20 && !crashed; i++) {
      const res = await crashing.call('POST', '/admin/root-key/migrate', { pageSize: 3, ...(cursor ? { cursor } : {}) });
      if (res.status !== 200) {
        expect(res.status).toBe(500);
        expect(res.json.error.code).toBe('internal_error');
        crashed = true;
      } else cursor = res.json.cursor;
    }
    expect(crashed).toBe(true);
    // Part of the rows moved, part not: the router still opens all of them.
    const between = migrationApp();
    const mid = (await between.call('GET', '/admin/root-key/status')).json;
    expect(mid.previous[keyA]).toBeGreaterThan(0);
    expect(mid.current).toBeGreaterThan(4);
    for (const t of TENANTS) expect((await chat(t, dataKeysAfterSwitch())).status).toBe(200);

    const resumed = migrationApp();
    const sum = await runToEnd(resumed, cursor);
    expect(sum.failed).toBe(0);
    expect(sum.raced).toBe(0);
    expect(resumed.commands.filter((c) => c !== 'ReEncryptCommand')).toEqual([]);
    expect(resumed.commands.length).toBe(sum.rewrapped);
    const after = (await resumed.call('GET', '/admin/root-key/status')).json;
    expect(after).toMatchObject({ current: 16, previous: { [keyA]: 0 }, complete: true });
    expect(crashing.commands.every((c) => c === 'ReEncryptCommand')).toBe(true);
  });

  it('after the migration a router that accepts only B opens every row, managed and sovereign; each trail verifies', async () => {
    for (const t of TENANTS) {
      const res = await chat(t, new KmsDataKeyService(kms, keyB));
      expect(res.status).toBe(200);
      expect((await row(t, 'openai')).keyArn).toBe(keyB);
    }
    const admin = createAdminApp({ config: h.cell.config, store: h.cell.store, pepper: h.cell.pepper, audit: h.cell.audit });
    for (const t of TENANTS) {
      const res = await admin({ method: 'GET', path: `/admin/tenants/${t}/audit`, headers: {}, iamCaller: OPERATOR });
      const body = JSON.parse(res.body);
      expect(body.verification.ok).toBe(true);
      const rewraps = body.data.filter((e: { type: string }) => e.type === 'secret.rewrapped');
      // Each of the tenant's rows under A was rewrapped exactly once, by the operator, with its digest.
      expect(rewraps.length).toBe(t === 'mig-b' ? 4 : 4);
      for (const e of rewraps) {
        expect(e.actor).toBe(`iam:${OPERATOR}`);
        expect(e.details.reason).toBe('root-key-migration');
        expect(JSON.stringify(e)).not.toContain(keyA);
      }
    }
    // The operation itself is in the cell's own authenticated trail, ending with the finishing batch.
    const cell = JSON.parse((await admin({ method: 'GET', path: '/admin/cell/audit', headers: {}, iamCaller: OPERATOR })).body);
    expect(cell.verification.ok).toBe(true);
    const batches = cell.data.filter((e: { type: string }) => e.type === 'root-key.migration');
    expect(batches.length).toBeGreaterThan(1);
    // Batches that answered are recorded; the rows the crashed batch moved before dying (at most
    // one page of 3) are in their tenants' trails above, not in a batch record.
    const recorded = batches.reduce((n: number, e: { details: { rewrapped: number } }) => n + e.details.rewrapped, 0);
    expect(recorded).toBeLessThanOrEqual(12);
    expect(recorded).toBeGreaterThanOrEqual(12 - 3);
    expect(batches.at(-1)).toMatchObject({ actor: `iam:${OPERATOR}`, details: { done: true, targetKeyArn: keyB, sourceKeyArns: keyA } });
  });

  it('running it again changes nothing (idempotent)', async () => {
    const again = migrationApp();
    const sum = await runToEnd(again);
    expect(sum).toMatchObject({ scanned: 16, rewrapped: 0, alreadyCurrent: 16, failed: 0 });
    expect(again.commands).toEqual([]);
  });

  it('a concurrent rotation wins: the rewrap of the row it replaced is not written', async () => {
    // A fresh row under A (written as the old vault would have, through the store).
    const tenant = 'mig-race';
    tokens[tenant] = await h.tenant(tenant);
    const vault = createVaultApp({ config: h.cell.config, store: h.cell.store, pepper: h.cell.pepper, dataKeys: dataKeysAfterSwitch(), usage: h.cell.usage, audit: h.cell.audit });
    let rotated = false;
    const m = migrationApp({
      rewrapper: (inner) => ({
        targetKeyArn: inner.targetKeyArn,
        async rewrap(wrapped: Buffer, context: EncryptionContext, from: string) {
          const out = await inner.rewrap(wrapped, context, from);
          if (context.tenant === tenant && context.provider === 'openai' && !rotated) {
            rotated = true;
            const res = await vault({
              method: 'PUT',
              path: '/vault/secrets/openai/default',
              headers: { authorization: `Bearer ${tokens[tenant].adminToken}`, 'content-type': 'application/json' },
              body: JSON.stringify({ apiKey: 'sk-openai-fake-0123456789abcdef' }),
            });
            expect(res.status).toBe(200);
          }
          return out;
        },
      }),
    });
    const sum = await runToEnd(m);
    expect(rotated).toBe(true);
    expect(sum.raced).toBe(1);
    const r = await row(tenant, 'openai');
    expect(r.version).toBe(2);
    expect(r.keyArn).toBe(keyB);
    expect((await chat(tenant, new KmsDataKeyService(kms, keyB))).status).toBe(200);
  });

  it('a tampered row (wrapped key of another tenant) is reported, never rewritten, and the rest proceeds', async () => {
    const tenant = 'mig-tamper';
    tokens[tenant] = await h.tenant(tenant);
    const victim = await row(tenant, 'anthropic');
    const donor = await row(tenant, 'openai');
    expect(victim.keyArn).toBe(keyA);
    const tampered = { ...victim, wrappedKey: donor.wrappedKey };
    await doc.send(new PutCommand({ TableName: h.cell.config.tables.tenants, Item: { pk: `TENANT#${tenant}`, sk: 'SECRET#anthropic#default', ...tampered } }));
    const m = migrationApp();
    const sum = await runToEnd(m);
    expect(sum.failures).toEqual([{ tenant, provider: 'anthropic', secret: 'default', code: 'invalid_ciphertext' }]);
    expect((await row(tenant, 'anthropic')).wrappedKey).toBe(donor.wrappedKey);
    expect((await row(tenant, 'anthropic')).keyArn).toBe(keyA);
    expect((await row(tenant, 'openai')).keyArn).toBe(keyB);
    expect(m.errors).toEqual([]);
  });

  it('refuses a forged cursor, an unsigned caller and a cell without a previous key', async () => {
    const m = migrationApp();
    expect((await m.call('POST', '/admin/root-key/migrate', { cursor: 'not-a-cursor' })).json.error.code).toBe('invalid_cursor');
    expect((await m.call('POST', '/admin/root-key/migrate', { pageSize: 10_000 })).status).toBe(400);
    const app = createRootKeyMigrationApp({
      region: h.cell.config.region,
      rows: new DynamoSealedRowScanner(h.cell.clients.ddb, h.cell.config.tables.tenants),
      store: h.cell.store,
      rewrapper: new KmsDataKeyRewrapper(kms, keyB, []),
      sourceKeyArns: [],
      batchBudgetMs: 0,
    });
    const unsigned = await app({ method: 'POST', path: '/admin/root-key/migrate', headers: {}, body: '{}' });
    expect(unsigned.status).toBe(403);
    const none = await app({ method: 'POST', path: '/admin/root-key/migrate', headers: { 'content-type': 'application/json' }, body: '{}', iamCaller: OPERATOR });
    expect(JSON.parse(none.body).error.code).toBe('no_previous_root_key');
  });

  it('the data-key services refuse a previous key of another region, and an unknown key on the record', async () => {
    const otherRegion = keyA.replace(`:${h.cell.config.region}:`, ':us-east-1:');
    expect(() => new KmsDataKeyService(kms, keyB, { previousKeyArns: [otherRegion] })).toThrow(/keys never leave their region/);
    expect(() => new KmsDataKeyRewrapper(kms, keyB, [otherRegion])).toThrow(/keys never leave their region/);
    const r = await row('mig-a', 'openai');
    const svc = new KmsDataKeyService(kms, keyB, { previousKeyArns: [keyA] });
    const ctx = { app: 'sovereign-router', region: r.region, tenant: r.tenant, provider: r.provider, secret: r.secret, version: String(r.version) };
    await expect(svc.decryptDataKey(Buffer.from(r.wrappedKey, 'base64'), ctx, otherRegion)).rejects.toMatchObject({ reason: 'denied' });
    const rewrapper = new KmsDataKeyRewrapper(kms, keyB, [keyA]);
    // A blob under B presented as A's: ReEncrypt pins the source key and fails.
    await expect(rewrapper.rewrap(Buffer.from(r.wrappedKey, 'base64'), ctx, keyA)).rejects.toMatchObject({ name: 'KeyServiceError' });
    await expect(rewrapper.rewrap(Buffer.from(r.wrappedKey, 'base64'), ctx, keyB)).rejects.toMatchObject({ reason: 'denied' });
  });
});
