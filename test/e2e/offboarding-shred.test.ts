/**
 * Crypto-shredding (issue 10, point 5). A dump of every backed-up table and an on-demand backup
 * are taken before a tenant is offboarded; after the offboarding they are restored (the erasure-key
 * table has no copy by design: no PITR, no backups). Nothing opens the tenant's secrets any more:
 * not the router, not the vault, not a direct openSecret with KMS Decrypt, the live token and the
 * tenant factor. Offboarding resumes after a crash at any step and is recorded once.
 */
import { randomBytes } from 'node:crypto';
import { CreateBackupCommand, RestoreTableFromBackupCommand } from '@aws-sdk/client-dynamodb';
import { BatchWriteCommand, GetCommand, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoTenantStore } from '../../lambda/adapters/dynamo-tenant-store';
import { ProviderHttpClient } from '../../lambda/adapters/provider-http';
import { createAdminApp } from '../../lambda/core/admin-app';
import { encryptionContextOf } from '../../lambda/core/canonical';
import { jsonLogger } from '../../lambda/core/logger';
import { openSecret, type SealedSecret, SealedSecretError } from '../../lambda/core/envelope';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { createRouterApp } from '../../lambda/core/router/router-app';
import { unwrapTenantFactor, type WrappedFactor } from '../../lambda/core/tenant-factor';
import { computeVerifier } from '../../lambda/core/token';
import { routerDeps } from '../../lambda/handlers/router-wiring';
import { awsClients } from '../support/aws-clients';
import { AwsFaultProxy, startAwsFaultProxy } from '../support/aws-fault-proxy';
import { FAKE_PROVIDER_KEYS, RouterHarness, startRouterHarness } from '../support/router-harness';
import { identity, rejectionOf } from '../support/vault-client';

const REGION = 'eu-central-1';
/** The tables a backup or PITR copy holds: every table but the erasure keys. */
const BACKED_UP = ['tenants', 'tokens', 'counters', 'usage', 'audit'] as const;
type Item = Record<string, unknown>;
type Dump = Record<(typeof BACKED_UP)[number], Item[]>;

let h: RouterHarness;
beforeAll(async () => {
  h = await startRouterHarness({ region: REGION });
}, 120_000);
afterAll(() => h?.close());

const chat = { path: '/v1/chat/completions', body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) };

async function scanAll(table: string): Promise<Item[]> {
  const items: Item[] = [];
  let start: Item | undefined;
  do {
    const out = await h.cell.clients.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true }));
    items.push(...((out.Items ?? []) as Item[]));
    start = out.LastEvaluatedKey as Item | undefined;
  } while (start);
  return items;
}

/** Every backed-up table, item by item (what a PITR restore or an export would give back). */
async function dumpBackedUp(): Promise<Dump> {
  const t = h.cell.config.tables;
  return Object.fromEntries(await Promise.all(BACKED_UP.map(async (k) => [k, await scanAll(t[k])]))) as Dump;
}

/** Writes a dump back over the live tables: the tables are as they were before the offboarding. */
async function restoreInPlace(dump: Dump): Promise<void> {
  const t = h.cell.config.tables;
  for (const k of BACKED_UP) {
    for (let i = 0; i < dump[k].length; i += 25) {
      const batch = dump[k].slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
      await h.cell.clients.doc.send(new BatchWriteCommand({ RequestItems: { [t[k]]: batch } }));
    }
  }
}

async function erasureItem(tenantId: string): Promise<Item | undefined> {
  return (await h.cell.clients.doc.send(new GetCommand({ TableName: h.cell.config.tables.erasure, Key: { tenantId }, ConsistentRead: true }))).Item;
}

/** Opens a dumped row directly: the production KMS adapter (Decrypt granted) and whatever else is given. */
function openDirect(row: Item, extra: { erasureKey?: Buffer; tenantFactor?: Buffer; versionSalt?: Buffer }, seen: string[]): Promise<string> {
  const expected = identity(REGION, String(row.tenant), String(row.provider), String(row.secret), Number(row.version));
  return openSecret({ record: row as unknown as SealedSecret, expected, dataKeys: h.cell.dataKeys, ...extra, use: (p) => (seen.push(p.toString('utf8')), p.toString('utf8')) });
}

function expectShredded(err: Error, reasons: string[]): void {
  expect(err).toBeInstanceOf(SealedSecretError);
  expect(reasons).toContain((err as SealedSecretError).reason);
}

describe('a dump and a backup taken before offboarding open nothing after it', () => {
  it.each(['managed', 'sovereign'] as const)('%s tenant: router, vault and direct openSecret with KMS Decrypt all fail; a bystander is untouched', async (mode) => {
    const id = `shred-${mode.slice(0, 3)}`;
    const bystander = `keep-${mode.slice(0, 3)}`;
    const { adminToken, invokeToken } = await h.tenant(id, { mode });
    const other = await h.tenant(bystander, { mode: 'managed' });
    expect((await h.call(chat, invokeToken)).sink.status).toBe(200);
    const eBefore = await erasureItem(id);
    expect(eBefore).toMatchObject({ tenantId: id, key: expect.any(String) });

    // The backups: a full dump of the backed-up tables, and an on-demand backup of each.
    const dump = await dumpBackedUp();
    const rows = dump.tenants.filter((i) => i.pk === `TENANT#${id}` && String(i.sk).startsWith('SECRET#'));
    expect(rows.length).toBeGreaterThanOrEqual(4);
    expect(rows.every((r) => r.formatVersion === 2)).toBe(true);
    const backups = await Promise.all(
      BACKED_UP.map(async (k) => {
        const out = await h.cell.clients.ddb.send(new CreateBackupCommand({ TableName: h.cell.config.tables[k], BackupName: `pre-offboard-${id}-${k}` }));
        return [k, out.BackupDetails!.BackupArn!] as const;
      }),
    );

    const off = await h.admin('DELETE', `/admin/tenants/${id}`);
    expect([off.status, off.json]).toEqual([
      200,
      { offboarded: true, tenantId: id, secretsDestroyed: rows.length, tokensRevoked: 2, erasureKeyDestroyed: true, legacySecretsNotShredded: 0 },
    ]);
    expect(await erasureItem(id)).toBeUndefined();

    // 1. PITR-like: the tables rolled back to the dump (tenant active again, tokens and rows back).
    await restoreInPlace(dump);
    expect((await h.cell.store.getTenant(id))?.status).toBe('active');
    const kmsBefore = h.kmsCalls.filter((c) => c === 'DecryptCommand').length;
    const upstreamBefore = h.fakes.openai.requests.length;
    const res = await h.call(chat, invokeToken);
    expect([res.sink.status, res.json.error.code]).toEqual([500, 'secret_integrity_failure']);
    // Refused before KMS and before any provider: no key left the store.
    expect(h.kmsCalls.filter((c) => c === 'DecryptCommand').length).toBe(kmsBefore);
    expect(h.fakes.openai.requests.length).toBe(upstreamBefore);
    for (const k of Object.values(FAKE_PROVIDER_KEYS)) expect(res.sink.body).not.toContain(k);

    // 2. A new erasure key for the restored tenant (what the vault makes on its next seal; the
    //    restored META says `active`) does not bring the old rows back.
    const eNew = await h.cell.store.ensureErasureKey(id, randomBytes(32));
    expect(eNew.toString('base64')).not.toBe(eBefore?.key);
    expect((await h.call(chat, invokeToken)).json.error.code).toBe('secret_integrity_failure');
    // The vault cannot open anything (GenerateDataKey only); what it shows of the restored rows is metadata.
    const listed = await h.vault(adminToken, 'GET', '/vault/secrets');
    expect(listed.status).toBe(200);
    for (const k of Object.values(FAKE_PROVIDER_KEYS)) expect(JSON.stringify(listed.json)).not.toContain(k);

    // 3. Direct: KMS Decrypt does release each data key (the attacker really has that)...
    for (const r of rows) {
      const dk = await h.cell.dataKeys.decryptDataKey(Buffer.from(String(r.wrappedKey), 'base64'), encryptionContextOf(identity(REGION, id, String(r.provider), String(r.secret), Number(r.version))), String(r.keyArn));
      expect(dk).toHaveLength(32);
      dk.fill(0);
    }
    // ...with the live token, F and META's salts (sovereign), yet no erasure key opens a row.
    let sovereign: { tenantFactor?: Buffer } = {};
    if (mode === 'sovereign') {
      const verifier = computeVerifier(await h.cell.pepper.getPepper(), adminToken).toString('hex');
      const rec = dump.tokens.find((t) => t.verifier === verifier)!;
      sovereign = { tenantFactor: unwrapTenantFactor(rec.wrappedFactor as WrappedFactor, { token: adminToken, region: REGION, tenant: id, tokenId: String(rec.tokenId) }) };
    }
    const meta = dump.tenants.find((i) => i.pk === `TENANT#${id}` && i.sk === 'META')!;
    const saltOf = (r: Item): Buffer | undefined => {
      const s = (meta.secretVersions as Record<string, { salt?: string }>)[`${String(r.provider)}#${String(r.secret)}`]?.salt;
      return mode === 'sovereign' && s ? Buffer.from(s, 'base64') : undefined;
    };
    const otherE = Buffer.from(String((await erasureItem(bystander))?.key), 'base64');
    const seen: string[] = [];
    for (const r of rows) {
      const base = { ...sovereign, versionSalt: saltOf(r) };
      expectShredded(await rejectionOf(openDirect(r, base, seen)), ['erasure_key']);
      for (const guess of [eNew, otherE, Buffer.alloc(32), Buffer.from(String(r.wrappedKey), 'base64').subarray(0, 32)]) {
        expectShredded(await rejectionOf(openDirect(r, { ...base, erasureKey: guess }, seen)), ['integrity']);
      }
      // Relabelled as a v1 row (which needs no erasure key): a different key, it does not open.
      expectShredded(await rejectionOf(openDirect({ ...r, formatVersion: 1, algorithm: 'SR1-HKDF-SHA256-AES256GCM' }, base, seen)), ['integrity']);
    }
    expect(seen).toEqual([]);

    // 4. On-demand backups restored into new tables, and a router pointed at them.
    const restored: Record<string, string> = {};
    for (const [k, arn] of backups) {
      const name = `${h.cell.config.tables[k]}-restored-${id}`;
      await h.cell.clients.ddb.send(new RestoreTableFromBackupCommand({ TargetTableName: name, BackupArn: arn }));
      restored[k] = name;
    }
    const config = { ...h.cell.config, tables: { ...h.cell.config.tables, ...restored } };
    const fromBackup = createRouterApp(
      routerDeps({
        config,
        ddb: h.cell.clients.ddb,
        pepper: h.cell.pepper,
        dataKeys: h.cell.dataKeys,
        providers: new ProviderHttpClient({ firstByteTimeoutMs: 2_000 }),
        log: jsonLogger('router', () => undefined),
        emitMetric: () => undefined,
      }),
    );
    const sink = new MemorySink();
    await fromBackup({ method: 'POST', path: chat.path, headers: { authorization: `Bearer ${invokeToken}`, 'content-type': 'application/json' }, body: chat.body, sourceIp: '203.0.113.7' }, sink);
    expect([sink.status, JSON.parse(sink.body).error.code]).toEqual([500, 'secret_integrity_failure']);
    // The same restored tables still serve the bystander, whose erasure key lives on.
    const sink2 = new MemorySink();
    await fromBackup({ method: 'POST', path: chat.path, headers: { authorization: `Bearer ${other.invokeToken}`, 'content-type': 'application/json' }, body: chat.body, sourceIp: '203.0.113.7' }, sink2);
    expect(sink2.status).toBe(200);
    expect((await h.call(chat, other.invokeToken)).sink.status).toBe(200);
  });

  it("swapped erasure-key items: one tenant's key opens nothing of another's, and a misfiled item is refused", async () => {
    const a = await h.tenant('swap-a');
    const b = await h.tenant('swap-b');
    const [ea, eb] = [await erasureItem('swap-a'), await erasureItem('swap-b')];
    const put = (tenantId: string, item: Item) => h.cell.clients.doc.send(new BatchWriteCommand({ RequestItems: { [h.cell.config.tables.erasure]: [{ PutRequest: { Item: { ...item, tenantId } } }] } }));
    // A's key value under B's item: B's rows were derived from B's key, so GCM fails.
    await put('swap-b', { ...eb, key: ea?.key });
    expect((await h.call(chat, b.invokeToken)).json.error.code).toBe('secret_integrity_failure');
    // Both swapped: neither opens.
    await put('swap-a', { ...ea, key: eb?.key });
    expect((await h.call(chat, a.invokeToken)).json.error.code).toBe('secret_integrity_failure');
    // Put back: both open again (nothing else was touched).
    await put('swap-a', ea!);
    await put('swap-b', eb!);
    expect((await h.call(chat, a.invokeToken)).sink.status).toBe(200);
    expect((await h.call(chat, b.invokeToken)).sink.status).toBe(200);
    // A malformed item is refused like a bad row, never used.
    await put('swap-a', { ...ea, key: 'AAAA' });
    expect((await h.call(chat, a.invokeToken)).json.error.code).toBe('secret_integrity_failure');
    await put('swap-a', ea!);
  });
});

describe('offboarding resumes after a crash at any step, and is recorded once', () => {
  let proxy: AwsFaultProxy;
  beforeAll(async () => {
    proxy = await startAwsFaultProxy(h.moto.endpoint);
  });
  afterAll(() => proxy?.close());

  /** Offboards through an admin app whose DynamoDB calls go through the fault proxy. */
  function offboardThroughProxy(id: string) {
    const store = new DynamoTenantStore(awsClients(proxy.endpoint, REGION).ddb, h.cell.config.tables, h.cell.audit.trail);
    const app = createAdminApp({ config: h.cell.config, store, pepper: h.cell.pepper, audit: h.cell.audit });
    return app({ method: 'DELETE', path: `/admin/tenants/${id}`, headers: {}, iamCaller: 'arn:aws:iam::111122223333:role/Operator' });
  }

  const fail = { fail: 400, type: 'com.amazonaws.dynamodb.v20120810#ValidationException' } as const;
  const steps: [string, (c: { target: string; body: string }) => boolean, { erasureGone: boolean }][] = [
    ['before the erasure key is destroyed', (c) => c.target.endsWith('.DeleteItem') && c.body.includes('ErasureKeys'), { erasureGone: false }],
    ['after the erasure key, before the tokens and rows', (c) => c.target.endsWith('.BatchWriteItem'), { erasureGone: true }],
    ['after the rows, before the final record', (c) => c.target.endsWith('.TransactWriteItems'), { erasureGone: true }],
  ];

  it.each(steps)('crash %s: the tenant is frozen, a re-run finishes it, one audit event', async (_step, matches, expected) => {
    const id = `crash-${steps.findIndex((s) => s[1] === matches)}`;
    const { invokeToken } = await h.tenant(id);
    proxy.rule = (c) => (matches(c) ? fail : undefined);
    const first = await offboardThroughProxy(id);
    expect(first.status).toBe(500);
    proxy.rule = () => undefined;

    // Frozen: no token works; the erasure key is gone exactly when the step said so.
    expect((await h.cell.store.getTenant(id))?.status).toBe('offboarding');
    expect((await h.call(chat, invokeToken)).sink.status).toBe(401);
    expect((await erasureItem(id)) === undefined).toBe(expected.erasureGone);

    // The re-run finishes the job.
    const rerun = await h.admin('DELETE', `/admin/tenants/${id}`);
    expect(rerun.status).toBe(200);
    expect(rerun.json).toMatchObject({ offboarded: true, erasureKeyDestroyed: true });
    expect(await erasureItem(id)).toBeUndefined();
    expect((await h.cell.store.getTenant(id))?.status).toBe('offboarded');
    expect(await h.cell.store.listSecrets(id)).toEqual([]);
    expect(await h.cell.store.listTokens(id)).toEqual([]);

    // Idempotent: a third run changes nothing and records nothing.
    expect((await h.admin('DELETE', `/admin/tenants/${id}`)).json.error.code).toBe('tenant_offboarded');
    const audit = await h.admin('GET', `/admin/tenants/${id}/audit`);
    expect(audit.json.verification.ok).toBe(true);
    expect(audit.json.data.filter((e: { type: string }) => e.type === 'tenant.offboarded')).toHaveLength(1);
  });
});
