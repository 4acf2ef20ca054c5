/**
 * Issue 9, point 2: a sealed row restored from an older version never opens through the router.
 * The tenant META records every secret's current version (written in the same transaction as the
 * row) and the router reads it in the same BatchGet, so an old row written back, or a deleted row
 * restored, is refused before any KMS call: no Decrypt, no provider call, the old key never leaves.
 * In sovereign mode the old row cannot be opened at all with the tenant's current state, even by
 * someone holding KMS Decrypt and a live token: its version salt is gone from META.
 */
import { DeleteCommand, GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { openSecret, type SealedSecret, SealedSecretError } from '../../lambda/core/envelope';
import { unwrapTenantFactor, type WrappedFactor } from '../../lambda/core/tenant-factor';
import { computeVerifier } from '../../lambda/core/token';
import { RouterHarness, spyProviders, startRouterHarness } from '../support/router-harness';
import { identity, recordedVersion, rejectionOf } from '../support/vault-client';

const REGION = 'eu-central-1';
const V1 = 'sk-openai-rollback-v1-0123456789abcdef';
const V2 = 'sk-openai-rollback-v2-0123456789abcdef';

let h: RouterHarness;

beforeAll(async () => {
  h = await startRouterHarness();
}, 60_000);
afterAll(async () => {
  await h?.close();
});

type Row = Record<string, unknown>;

const rowKey = (tenant: string, provider: string, name = 'default') => ({ pk: `TENANT#${tenant}`, sk: `SECRET#${provider}#${name}` });

async function readRow(tenant: string, provider: string): Promise<Row> {
  const out = await h.cell.clients.doc.send(new GetCommand({ TableName: h.cell.config.tables.tenants, Key: rowKey(tenant, provider), ConsistentRead: true }));
  if (!out.Item) throw new Error('row missing');
  return out.Item;
}

/** What a writer to the tenants table (no KMS rights) can do: put an item back as it was. */
async function writeBack(row: Row): Promise<void> {
  await h.cell.clients.doc.send(new PutCommand({ TableName: h.cell.config.tables.tenants, Item: row }));
}

const chat = (model = 'gpt-4o-mini') => ({ path: '/v1/chat/completions', body: JSON.stringify({ model, messages: [{ role: 'user', content: 'hi' }] }) });

/** A router whose provider calls and KMS/DynamoDB commands are counted per call. */
function countedRouter() {
  const spy = spyProviders(h);
  const app = h.makeRouter({ providers: spy.client });
  return {
    sends: spy.sends,
    async call(token: string, model?: string) {
      const kmsBefore = h.kmsCalls.length;
      const ddbBefore = h.ddbCalls.length;
      const seenBefore = h.fakes.openai.requests.length;
      const { MemorySink } = await import('../../lambda/core/router/response-sink');
      const sink = new MemorySink();
      const req = chat(model);
      const record = await app({ method: 'POST', path: req.path, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: req.body }, sink);
      return {
        sink,
        json: JSON.parse(sink.body),
        record,
        kms: h.kmsCalls.slice(kmsBefore),
        ddb: h.ddbCalls.slice(ddbBefore),
        upstream: h.fakes.openai.requests.slice(seenBefore),
      };
    },
  };
}

function expectRefused(res: Awaited<ReturnType<ReturnType<typeof countedRouter>['call']>>): void {
  expect(res.sink.status).toBe(500);
  expect(res.json.error).toMatchObject({ code: 'secret_integrity_failure', type: 'server_error', request_id: res.record!.requestId });
  expect(res.sink.headers['x-should-retry']).toBe('false');
  // Refused before KMS and before any provider: the old key never left the table.
  expect(res.kms).toEqual([]);
  expect(res.upstream).toEqual([]);
  expect(res.sink.body).not.toContain(V1);
  expect(res.sink.body).not.toContain(V2);
  expect(res.record?.decision).toBe('failed:secret_integrity_failure');
}

describe.each(['managed', 'sovereign'] as const)('%s tenant', (mode) => {
  const tenant = `rollback-${mode.slice(0, 3)}`;
  let adminToken: string;
  let invoke: string;
  let v1Row: Row;

  beforeAll(async () => {
    h.fakes.setKey('openai', V1);
    ({ adminToken, invokeToken: invoke } = await h.tenant(tenant, { mode, keys: { openai: V1 } }));
    v1Row = await readRow(tenant, 'openai');
    const router = countedRouter();
    expect((await router.call(invoke)).sink.status).toBe(200);

    // The tenant rotates its openai key (version 2); the provider revokes version 1.
    const rot = await h.vault(adminToken, 'PUT', '/vault/secrets/openai/default', { apiKey: V2 });
    expect([rot.status, rot.json.version]).toEqual([200, 2]);
    h.fakes.setKey('openai', V2);
    expect(await recordedVersion(h.cell, tenant, 'openai')).toMatchObject({ version: 2 });
  });

  afterEach(() => h.fakes.setKey('openai', V2));

  it('version 2 is served; version 1 written back is refused with no KMS call and no provider call', async () => {
    const router = countedRouter();
    const ok = await router.call(invoke);
    expect(ok.sink.status).toBe(200);
    expect(ok.upstream.map((r) => r.headers.authorization)).toEqual([`Bearer ${V2}`]);

    const v2Row = await readRow(tenant, 'openai');
    await writeBack(v1Row);
    // Accept the old key upstream as well, so only the router can stop it.
    h.fakes.setKey('openai', V1);
    const res = await router.call(invoke);
    expectRefused(res);
    expect(router.sends).toHaveLength(1);
    // The refusal is logged with its reason only.
    const line = h.logs.map((l) => JSON.parse(l)).find((l) => l.message === 'stored record refused' && l.requestId === res.record!.requestId);
    expect(line).toMatchObject({ code: 'secret_integrity_failure', reason: 'not_current' });
    expect(h.logs.join('\n')).not.toContain(V1);

    // Requests that do not need the openai row are unaffected.
    const other = await h.call({ path: '/v1/messages', body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 20, messages: [{ role: 'user', content: 'hi' }] }) }, invoke);
    expect(other.sink.status).toBe(200);

    await writeBack(v2Row);
    h.fakes.setKey('openai', V2);
    expect((await router.call(invoke)).sink.status).toBe(200);
  });

  it('a deleted secret whose row is restored is refused (META has no entry)', async () => {
    const before = await readRow(tenant, 'openai');
    const del = await h.vault(adminToken, 'DELETE', '/vault/secrets/openai/default');
    expect(del.status).toBe(200);
    expect(await recordedVersion(h.cell, tenant, 'openai')).toBeUndefined();
    const router = countedRouter();
    const gone = await router.call(invoke);
    expect([gone.sink.status, gone.json.error.code]).toEqual([400, 'no_provider_secret']);

    await writeBack(before);
    expectRefused(await router.call(invoke));

    // Storing it again through the vault (delete the stray row first) makes it usable again.
    await h.cell.clients.doc.send(new DeleteCommand({ TableName: h.cell.config.tables.tenants, Key: rowKey(tenant, 'openai') }));
    expect((await h.vault(adminToken, 'POST', '/vault/secrets', { provider: 'openai', apiKey: V2 })).status).toBe(201);
    expect((await router.call(invoke)).sink.status).toBe(200);
  });

  it('a rotation after a rollback moves past both versions and heals the slot', async () => {
    const current = await recordedVersion(h.cell, tenant, 'openai');
    await writeBack(v1Row);
    const rot = await h.vault(adminToken, 'PUT', '/vault/secrets/openai/default', { apiKey: V2 });
    expect(rot.status).toBe(200);
    expect(rot.json.version).toBe(current!.version + 1);
    const router = countedRouter();
    const res = await router.call(invoke);
    expect(res.sink.status).toBe(200);
    expect(res.upstream.map((r) => r.headers.authorization)).toEqual([`Bearer ${V2}`]);
  });
});

describe('sovereign: the old row cannot be opened with the current state, even with KMS Decrypt and a live token', () => {
  const tenant = 'rollback-crypto';

  it('version 1 fails authentication with META salt of version 2; only its own, superseded salt opens it', async () => {
    h.fakes.setKey('openai', V1);
    const { adminToken } = await h.tenant(tenant, { mode: 'sovereign', keys: { openai: V1 } });
    const v1Row = await readRow(tenant, 'openai');
    const v1Salt = (await recordedVersion(h.cell, tenant, 'openai'))!.salt!;
    expect(v1Salt).toHaveLength(32);
    // The salt is in META only, never in the row.
    expect(JSON.stringify(v1Row)).not.toContain(v1Salt.toString('base64'));
    expect((await h.vault(adminToken, 'PUT', '/vault/secrets/openai/default', { apiKey: V2 })).status).toBe(200);
    const now = (await recordedVersion(h.cell, tenant, 'openai'))!;
    expect(now.version).toBe(2);
    expect(now.salt!.equals(v1Salt)).toBe(false);

    // The attacker: a live tenant-admin token (so F), KMS Decrypt through the production adapter,
    // the whole current table, and the version 1 row from a backup.
    const verifier = computeVerifier(await h.cell.pepper.getPepper(), adminToken).toString('hex');
    const tokenItem = (await h.cell.clients.doc.send(new GetCommand({ TableName: h.cell.config.tables.tokens, Key: { verifier } }))).Item!;
    const F = unwrapTenantFactor(tokenItem.wrappedFactor as WrappedFactor, { token: adminToken, region: REGION, tenant, tokenId: String(tokenItem.tokenId) });
    const E = await h.cell.store.getErasureKey(tenant);
    const kmsBefore = h.kmsCalls.length;
    const seen: string[] = [];
    const open = (salt: Buffer) =>
      openSecret({
        record: v1Row as unknown as SealedSecret,
        expected: identity(REGION, tenant, 'openai', 'default', 1),
        dataKeys: h.cell.dataKeys,
        tenantFactor: Buffer.from(F),
        versionSalt: salt,
        // The live erasure-key table too: this attacker lacks only the superseded salt.
        erasureKey: E,
        use: (p) => {
          const s = p.toString('utf8');
          seen.push(s);
          return s;
        },
      });
    const err = await rejectionOf(open(now.salt!));
    expect(err).toBeInstanceOf(SealedSecretError);
    expect((err as SealedSecretError).reason).toBe('integrity');
    // KMS did release the data key: the refusal is cryptographic, not a policy.
    expect(h.kmsCalls.slice(kmsBefore)).toEqual(['DecryptCommand']);
    expect(seen).toEqual([]);
    // Control: with the salt META held before the rotation (gone from the table now) it opens.
    expect(await open(v1Salt)).toBe(V1);
    F.fill(0);
  });
});
