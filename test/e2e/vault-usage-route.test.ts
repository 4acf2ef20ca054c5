/**
 * GET /vault/usage, /vault/policy and /vault/audit end to end: requests through the governed router
 * on moto, then the tenant-admin routes the console and the CLI read. Tenant isolation, roles,
 * pagination, the CLI export (CSV and JSON over HTTP) and the canary are checked on real responses.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { createServer, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApiClient } from '../../cli/api-client';
import { run } from '../../cli/main';
import { CSV_COLUMNS, fetchAllUsage } from '../../cli/usage-export';
import type { HttpRequest } from '../../lambda/core/http';
import { createVaultApp } from '../../lambda/core/vault-app';
import { canaryForms, makeCanary } from '../support/canary';
import { FAKE_PROVIDER_KEYS, RouterHarness, startRouterHarness } from '../support/router-harness';
import { chat, governanceRouter, serializeDynamoDb } from './governance-support';

let h: RouterHarness;
let server: Server;
let url: string;
const responses: string[] = [];
const canary = makeCanary('usage');
let vault: ReturnType<typeof createVaultApp>;
let a: { adminToken: string; invokeToken: string };
let b: { adminToken: string; invokeToken: string };
const PERIOD = { from: '2025-06-01', to: '2025-07-01' };

async function get(token: string | undefined, path: string, query: Record<string, string> = {}): Promise<{ status: number; json: any }> {
  const req: HttpRequest = { method: 'GET', path, query, headers: token ? { authorization: `Bearer ${token}` } : {} };
  const res = await vault(req);
  responses.push(JSON.stringify(res.headers), res.body);
  return { status: res.status, json: JSON.parse(res.body) };
}

beforeAll(async () => {
  h = await startRouterHarness();
  serializeDynamoDb(h);
  vault = createVaultApp({ config: h.cell.config, store: h.cell.store, pepper: h.cell.pepper, dataKeys: h.cell.dataKeys, usage: h.cell.usage, audit: h.cell.audit });
  h.fakes.setKey('openai', canary);
  h.fakes.setKey('anthropic', canary);
  a = await h.tenant('uq-a', { policy: { allowedModels: ['gpt-4o-mini', 'claude-sonnet-4-5'] }, keys: { openai: canary, anthropic: canary } });
  b = await h.tenant('uq-b');
  const g = governanceRouter(h);
  const calls = [
    chat('gpt-4o-mini'),
    chat('gpt-4o-mini', { stream: true, stream_options: { include_usage: true } }),
    chat('claude-sonnet-4-5', { stream: true, stream_options: { include_usage: true } }),
    chat('gpt-4o'), // not in the allowlist: denied
    chat('gpt-4o-mini'),
  ];
  for (const body of calls) {
    await g.call({ path: '/v1/chat/completions', body }, a.invokeToken);
    g.clock.advance(60_000);
  }
  h.fakes.setKey('openai', FAKE_PROVIDER_KEYS.openai);
  await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, b.invokeToken);

  // The CLI talks HTTP: a loopback server in front of the same vault app.
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const [path, search] = (req.url ?? '/').split('?', 2);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') headers[k] = v;
      void vault({ method: req.method ?? 'GET', path, query: Object.fromEntries(new URLSearchParams(search ?? '')), headers, body: chunks.length ? Buffer.concat(chunks).toString() : undefined }).then((out) => {
        responses.push(out.body);
        res.writeHead(out.status, out.headers);
        res.end(out.body);
      });
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((ok) => server?.close(ok));
  await h?.close();
});

test('a tenant admin reads its requests: cost, tokens, latency, TTFT, provider, chain and denial reason', async () => {
  const res = await get(a.adminToken, '/vault/usage', PERIOD);
  expect(res.status).toBe(200);
  const rows = res.json.data;
  expect(rows).toHaveLength(5);
  expect(rows.map((r: any) => r.tenantId)).toEqual(Array(5).fill('uq-a'));
  expect(rows.map((r: any) => r.outcome)).toEqual(['ok', 'ok', 'ok', 'denied', 'ok']);
  expect(rows.map((r: any) => r.at)).toEqual([...rows.map((r: any) => r.at)].sort());
  const [plain, streamed, translated, denied] = rows;
  expect(plain).toMatchObject({ model: 'gpt-4o-mini', provider: 'openai', secret: 'default', status: 200, stream: false });
  expect(plain.costUsd).toBeGreaterThan(0);
  expect(plain.inputTokens).toBeGreaterThan(0);
  expect(plain.latencyMs).toBeGreaterThanOrEqual(0);
  expect(plain.fallbackChain).toEqual([expect.objectContaining({ provider: 'openai', model: 'gpt-4o-mini', outcome: 'ok' })]);
  expect(streamed.timeToFirstTokenMs).toEqual(expect.any(Number));
  expect(translated).toMatchObject({ provider: 'anthropic', model: 'claude-sonnet-4-5' });
  expect(denied).toMatchObject({ decision: 'denied:model_not_allowed', denialReason: 'model_not_allowed', status: 403 });
  expect(res.json.next_cursor).toBeNull();
});

test('filters by outcome, model and token', async () => {
  expect((await get(a.adminToken, '/vault/usage', { ...PERIOD, outcome: 'denied' })).json.data.map((r: any) => r.denialReason)).toEqual(['model_not_allowed']);
  expect((await get(a.adminToken, '/vault/usage', { ...PERIOD, model: 'claude-sonnet-4-5' })).json.data).toHaveLength(1);
  const tokenId = (await get(a.adminToken, '/vault/usage', PERIOD)).json.data[0].tokenId;
  expect((await get(a.adminToken, '/vault/usage', { ...PERIOD, token: tokenId })).json.data).toHaveLength(5);
  expect((await get(a.adminToken, '/vault/usage', { ...PERIOD, token: 'tk_nobody' })).json.data).toHaveLength(0);
});

test('pages: limit and cursor cover every record once', async () => {
  const seen: string[] = [];
  let cursor: string | undefined;
  do {
    const res = await get(a.adminToken, '/vault/usage', { ...PERIOD, limit: '2', ...(cursor ? { cursor } : {}) });
    expect(res.status).toBe(200);
    expect(res.json.data.length).toBeLessThanOrEqual(2);
    seen.push(...res.json.data.map((r: any) => r.requestId));
    cursor = res.json.next_cursor ?? undefined;
  } while (cursor);
  expect(seen).toHaveLength(5);
  expect(new Set(seen).size).toBe(5);
});

test("tenants are isolated: B sees only its record, also with A's cursor", async () => {
  const mine = await get(b.adminToken, '/vault/usage', PERIOD);
  expect(mine.json.data.map((r: any) => r.tenantId)).toEqual(['uq-b']);
  const aPage = await get(a.adminToken, '/vault/usage', { ...PERIOD, limit: '1' });
  const withForeignCursor = await get(b.adminToken, '/vault/usage', { ...PERIOD, cursor: aPage.json.next_cursor });
  expect(withForeignCursor.json.data.every((r: any) => r.tenantId === 'uq-b')).toBe(true);
});

test('only tenant-admin tokens read usage, policy and audit', async () => {
  for (const path of ['/vault/usage', '/vault/policy', '/vault/audit']) {
    expect((await get(a.invokeToken, path)).status).toBe(403);
    expect((await get(undefined, path)).status).toBe(401);
    expect((await get('sr_eu_forged', path)).status).toBe(401);
  }
});

test('bad query parameters are a 400 in the OpenAI error shape', async () => {
  const res = await get(a.adminToken, '/vault/usage', { limit: '9999' });
  expect(res.status).toBe(400);
  expect(res.json.error).toMatchObject({ type: 'invalid_request_error', code: 'invalid_request' });
  expect((await get(a.adminToken, '/vault/usage', { cursor: 'Zm9yZ2Vk' })).json.error.code).toBe('invalid_cursor');
});

test('policy and the audit trail with its verification', async () => {
  const policy = await get(a.adminToken, '/vault/policy');
  expect(policy.json).toMatchObject({ tenantId: 'uq-a', region: 'eu-central-1', policy: { allowedModels: ['gpt-4o-mini', 'claude-sonnet-4-5'] }, token: { role: 'tenant-admin' } });
  expect(policy.json.token).not.toHaveProperty('verifier');
  const audit = await get(a.adminToken, '/vault/audit');
  expect(audit.json.verification).toEqual(expect.objectContaining({ ok: true, events: audit.json.total, findings: [], unanchored: [] }));
  expect(audit.json.data.map((e: any) => e.type)).toEqual(expect.arrayContaining(['tenant.created', 'secret.stored', 'token.created']));
});

test('CLI: usage export writes every page as CSV and JSON', async () => {
  const client = new ApiClient({ endpoint: url, token: a.adminToken });
  expect(await fetchAllUsage(client, PERIOD, 2)).toHaveLength(5);
  const dir = mkdtempSync(join(tmpdir(), 'usage-export-'));
  const err: string[] = [];
  const out = { stdout: () => undefined, stderr: (s: string) => err.push(s) };
  const base = ['usage', 'export', '--endpoint', url, '--token', a.adminToken, '--from', PERIOD.from, '--to', PERIOD.to];
  expect(await run([...base, '--format', 'csv', '--out', join(dir, 'u.csv')], out)).toBe(0);
  const lines = readFileSync(join(dir, 'u.csv'), 'utf8').trimEnd().split('\r\n');
  expect(lines[0]).toBe(CSV_COLUMNS.join(','));
  expect(lines).toHaveLength(6);
  expect(lines[4]).toContain(',denied,model_not_allowed,');
  expect(lines[1]).toMatch(/,openai\/gpt-4o-mini:ok(:200)?:\d+ms$/);
  expect(await run([...base, '--outcome', 'denied', '--out', join(dir, 'u.json')], out)).toBe(0);
  expect(JSON.parse(readFileSync(join(dir, 'u.json'), 'utf8')).map((r: any) => r.denialReason)).toEqual(['model_not_allowed']);
  expect(err.join('')).toContain('Wrote 1 usage records');
  expect(await run([...base, '--format', 'xml'], out)).toBe(2);
});

test('canary: no response carries the provider key or any token', async () => {
  const forms = [...canaryForms(canary), a.adminToken, a.invokeToken, b.adminToken, b.invokeToken];
  const all = responses.join('\n');
  expect(responses.length).toBeGreaterThan(20);
  for (const f of forms) expect(all).not.toContain(f);
});
