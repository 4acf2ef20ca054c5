/**
 * Issue 9 points 2 (audit part) and 3: a writer to the tables (no KMS, no S3) tampers with a
 * tenant's audit trail or restores an older sealed row; `npx sovereign-router audit verify`
 * (cli/main.ts, over HTTP to the admin app on the cell's KMS audit key and S3 anchors in moto)
 * exits non-zero and names the first bad event. A holder of the audit key (a compromised vault
 * or admin function) who rewrites history is caught by the anchors.
 */
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DeleteCommand, GetCommand, PutCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { run } from '../../cli/main';
import { LocalAuditMac } from '../../lambda/adapters/local-audit-mac';
import { AuditEvent, auditMessage } from '../../lambda/core/audit-chain';
import type { AuditMac } from '../../lambda/core/ports';
import { cellFixture, CellFixture } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import { AdminClient, cellApps, CellApps, VaultClient } from '../support/vault-client';

let moto: MotoServer;
let f: CellFixture;
let apps: CellApps;
let admin: AdminClient;
let server: Server;
let endpoint: string;

beforeAll(async () => {
  moto = await startMoto();
  f = await cellFixture(moto.endpoint, 'eu-central-1', { prefix: 'tamper' });
  apps = cellApps(f);
  admin = new AdminClient(apps.admin);
  // The admin app on loopback, as the local gateway serves it (operator identity given).
  server = createServer((req, res) => {
    void apps.admin({ method: req.method ?? 'GET', path: req.url ?? '/', headers: {}, iamCaller: 'arn:aws:iam::123456789012:role/auditor' }).then((out) => {
      res.writeHead(out.status, out.headers);
      res.end(out.body);
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  server?.close();
  await moto?.stop();
});

/** `npx sovereign-router audit verify --tenant <id>` */
async function auditVerify(id: string, json = false): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await run(['audit', 'verify', '--tenant', id, '--endpoint', endpoint, ...(json ? ['--json'] : [])], {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
  });
  return { code, stdout, stderr };
}

let n = 0;
/** A tenant with six events: created, secret stored, token created, policy, secret rotated, token created. */
async function tenantWithHistory(what: string): Promise<{ id: string; vault: VaultClient }> {
  const id = `tamper-${what}-${++n}`;
  const { token } = await admin.tenantWithToken(id);
  const vault = new VaultClient(apps.vault, token);
  expect((await vault.storeSecret('openai', 'sk-tamper-openai-v1-0123456789')).status).toBe(201);
  expect((await vault.createToken('invoke')).status).toBe(201);
  expect((await admin.putPolicy(id, { rpm: 7 })).status).toBe(200);
  expect((await vault.rotateSecret('openai', 'default', 'sk-tamper-openai-v2-0123456789')).status).toBe(200);
  expect((await vault.createToken('invoke')).status).toBe(201);
  const ok = await auditVerify(id);
  expect(ok).toEqual({ code: 0, stdout: `audit trail of ${id}: ok, 6 events, anchored through #6\n`, stderr: '' });
  return { id, vault };
}

const table = () => f.config.tables.audit;
const events = async (id: string): Promise<AuditEvent[]> =>
  ((await f.clients.doc.send(new QueryCommand({ TableName: table(), KeyConditionExpression: 'tenantId = :t', ExpressionAttributeValues: { ':t': id } }))).Items ?? []) as AuditEvent[];
const putEvent = (e: AuditEvent) => f.clients.doc.send(new PutCommand({ TableName: table(), Item: e }));
const setHead = (id: string, seq: number, mac: string) =>
  f.clients.doc.send(
    new UpdateCommand({
      TableName: f.config.tables.tenants,
      Key: { pk: `TENANT#${id}`, sk: 'META' },
      UpdateExpression: 'SET auditSeq = :s, auditHead = :m',
      ExpressionAttributeValues: { ':s': seq, ':m': mac },
    }),
  );

/** Rewrites events from `from` on: edited by `edit`, relinked and re-MACed with `key` (the attacker's best). */
async function rewriteFrom(id: string, from: number, key: AuditMac, edit: (e: AuditEvent) => AuditEvent): Promise<void> {
  const all = (await events(id)).sort((a, b) => a.seq - b.seq);
  let prevMac = all[from - 2]?.mac ?? '0'.repeat(64);
  for (const original of all.slice(from - 1)) {
    const { mac: _old, ...rest } = { ...(original.seq === from ? edit(original) : original), prevMac };
    const mac = (await key.generate(auditMessage(rest))).toString('hex');
    await putEvent({ ...rest, mac });
    prevMac = mac;
  }
  await setHead(id, all.at(-1)!.seq, prevMac);
}

/** The CLI's verdict: exit 1, and the first line names the first bad event. */
async function expectCaught(id: string, seq: number, code: string, message: RegExp): Promise<void> {
  const res = await auditVerify(id);
  expect(res.code).toBe(1);
  expect(res.stdout).toBe('');
  expect(res.stderr.split('\n')[0]).toMatch(new RegExp(`^audit trail of ${id}: FAILED at event #${seq}: `));
  expect(res.stderr.split('\n')[0]).toMatch(message);
  const json = JSON.parse((await auditVerify(id, true)).stdout);
  expect(json.firstBad).toEqual(expect.objectContaining({ seq, code }));
}

it('a forged event with recomputed hashes (chain relinked and the head moved) is not authentic', async () => {
  const { id } = await tenantWithHistory('forged');
  // Without the audit key, the best a table writer can do is MAC with a key of their own.
  await rewriteFrom(id, 4, LocalAuditMac.inMemory(), (e) => ({ ...e, details: { keys: 'nothing' }, actor: 'iam:someone-else' }));
  await expectCaught(id, 4, 'not_authentic', /event #4 \(policy\.updated\) is not authentic/);
});

it('a dropped last event (head moved back too) is caught by its anchor', async () => {
  const { id } = await tenantWithHistory('droplast');
  const all = await events(id);
  await f.clients.doc.send(new DeleteCommand({ TableName: table(), Key: { tenantId: id, seq: 6 } }));
  await setHead(id, 5, all.find((e) => e.seq === 5)!.mac);
  await expectCaught(id, 6, 'truncated', /event #6 is missing: the trail ends at #5, but an anchor records #6/);
});

it('a dropped middle event is caught, and so is renumbering the rest to close the gap', async () => {
  const { id } = await tenantWithHistory('dropmiddle');
  await f.clients.doc.send(new DeleteCommand({ TableName: table(), Key: { tenantId: id, seq: 3 } }));
  await expectCaught(id, 3, 'missing', /event #3 is missing from the trail/);

  const { id: shifted } = await tenantWithHistory('renumber');
  const all = (await events(shifted)).sort((a, b) => a.seq - b.seq);
  for (const e of all.slice(3)) await putEvent({ ...e, seq: e.seq - 1 });
  await f.clients.doc.send(new DeleteCommand({ TableName: table(), Key: { tenantId: shifted, seq: 6 } }));
  await setHead(shifted, 5, all[5].mac);
  await expectCaught(shifted, 3, 'not_authentic', /event #3 \(policy\.updated\) is not authentic/);
});

it('reordered events are not authentic at the first moved position', async () => {
  const { id } = await tenantWithHistory('reorder');
  const all = (await events(id)).sort((a, b) => a.seq - b.seq);
  await putEvent({ ...all[2], seq: 2 });
  await putEvent({ ...all[1], seq: 3 });
  await expectCaught(id, 2, 'not_authentic', /event #2 \(token\.created\) is not authentic/);
});

it('an event replayed from another tenant is not authentic', async () => {
  const { id: victim } = await tenantWithHistory('victim');
  const { id: other } = await tenantWithHistory('other');
  const theirs = (await events(other)).find((e) => e.seq === 4)!;
  // Same seq, same position, its own MAC: only the tenant in the key differs.
  await putEvent({ ...theirs, tenantId: victim });
  await expectCaught(victim, 4, 'not_authentic', /event #4 \(policy\.updated\) is not authentic/);
});

it.each(['managed', 'sovereign'] as const)('%s tenant: a rolled-back secret row is reported against the event that recorded the current version', async (mode) => {
  const id = `tamper-rollback-${mode}-${++n}`;
  const { token } = await admin.tenantWithToken(id, mode);
  const vault = new VaultClient(apps.vault, token);
  expect((await vault.storeSecret('openai', 'sk-rollback-v1-0123456789')).status).toBe(201);
  const key = { pk: `TENANT#${id}`, sk: 'SECRET#openai#default' };
  const v1 = (await f.clients.doc.send(new GetCommand({ TableName: f.config.tables.tenants, Key: key }))).Item!;
  expect((await vault.rotateSecret('openai', 'default', 'sk-rollback-v2-0123456789')).status).toBe(200);
  expect((await auditVerify(id)).code).toBe(0);
  // The writer restores the version-1 row (e.g. from a backup) over version 2.
  await f.clients.doc.send(new PutCommand({ TableName: f.config.tables.tenants, Item: v1 }));
  await expectCaught(id, 3, 'secret_rolled_back', /secret row openai\/default holds version 1, but event #3 \(secret\.rotated\) recorded version 2/);
});

it('a replaced secret row of the recorded version (another row with version 2) is reported', async () => {
  const id = `tamper-replace-${++n}`;
  const { token } = await admin.tenantWithToken(id);
  const vault = new VaultClient(apps.vault, token);
  expect((await vault.storeSecret('openai', 'sk-replace-v1-0123456789')).status).toBe(201);
  expect((await vault.rotateSecret('openai', 'default', 'sk-replace-v2-0123456789')).status).toBe(200);
  const key = { pk: `TENANT#${id}`, sk: 'SECRET#openai#default' };
  const row = (await f.clients.doc.send(new GetCommand({ TableName: f.config.tables.tenants, Key: key }))).Item!;
  await f.clients.doc.send(new PutCommand({ TableName: f.config.tables.tenants, Item: { ...row, iv: Buffer.alloc(12, 7).toString('base64') } }));
  await expectCaught(id, 3, 'secret_replaced', /secret row openai\/default \(version 2\) is not the row event #3 \(secret\.rotated\) recorded/);
});

it('a holder of the audit key (compromised vault or admin function) cannot rewrite anchored history', async () => {
  const { id } = await tenantWithHistory('keyholder');
  // Valid MACs under the real key, relinked, head moved: only the anchors tell.
  await rewriteFrom(id, 2, f.audit.mac, (e) => ({ ...e, actor: 'token:someone-else' }));
  await expectCaught(id, 2, 'anchor_mismatch', /event #2 \(secret\.stored\) differs from the event anchored at #2/);
});

it('an unknown tenant is a clean error, not a verdict', async () => {
  const res = await auditVerify('no-such-tenant');
  expect(res.code).toBe(1);
  expect(res.stderr).toMatch(/HTTP 404, tenant_not_found/);
});
