/**
 * Client disconnect on the local gateway itself (local/gateway.ts, embedded backend, in-process):
 * an SDK that aborts a stream closes its socket, the gateway's close signal cuts the upstream call
 * (the slow fake sees its connection closed), and the tenant's usage shows the request as aborted
 * with nothing left reserved.
 */
import OpenAI from 'openai';
import { jsonLogger } from '../../lambda/core/logger';
import { LocalGateway, startLocalGateway } from '../../local/gateway';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';
import { gatewayJson } from '../support/gateway-http';
import { waitUntil } from '../support/wait';

let fakes: FakeProviders;
let gw: LocalGateway;
let adminToken: string;
let client: OpenAI;
const LONG = Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ');

const http = (method: string, path: string, body?: unknown, token?: string) => gatewayJson(gw.url, method, path, body, token);

beforeAll(async () => {
  fakes = await startFakeProviders();
  gw = await startLocalGateway({ port: 0, providers: { openai: { kind: 'openai', baseUrl: fakes.openai.baseUrl } }, log: jsonLogger('local', () => undefined) });
  adminToken = (await http('POST', '/admin/tenants', { tenantId: 'local-abort', mode: 'managed', policy: { monthlyBudgetUsd: 10 } })).token;
  await http('POST', '/vault/secrets', { provider: 'openai', apiKey: 'sk-fake-openai-key' }, adminToken);
  const invoke = (await http('POST', '/vault/tokens', { role: 'invoke', label: 'app' }, adminToken)).token;
  client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: invoke, maxRetries: 0 });
}, 60_000);
afterAll(async () => {
  await gw?.stop();
  await fakes?.close();
});

async function abortAfter(stream: AsyncIterable<unknown> & { controller: AbortController }, n: number): Promise<number> {
  let seen = 0;
  for await (const _ of stream) {
    if (++seen === n) {
      const at = Date.now();
      stream.controller.abort();
      return at;
    }
  }
  throw new Error('stream ended first');
}

async function abortedAt(before: number): Promise<number> {
  for (let i = 0; i < 500; i++) {
    const r = fakes.openai.requests[before];
    if (r?.abortedAt !== undefined) return r.abortedAt;
    await new Promise((ok) => setTimeout(ok, 10));
  }
  throw new Error('upstream never saw the disconnect');
}

test('chat and Responses streams aborted by the SDK: upstream cut within a second, usage aborted, nothing reserved', async () => {
  const bounds: number[] = [];
  for (const kind of ['chat', 'responses'] as const) {
    const before = fakes.openai.requests.length;
    fakes.script('openai', [{ kind: 'drip', intervalMs: 40 }]);
    const stream =
      kind === 'chat'
        ? await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: LONG }], stream: true })
        : await client.responses.create({ model: 'gpt-4o-mini', input: LONG, stream: true });
    const cut = await abortAfter(stream, 6);
    bounds.push((await abortedAt(before)) - cut);
  }
  console.log(`local gateway: client abort → upstream closed, ms: ${bounds.join(', ')}`);
  for (const b of bounds) expect(b).toBeLessThan(1_000);
  // The end stage runs after the socket closed: wait for both records (about 2 s was short for a
  // loaded runner), then read the tenant's view.
  let rows: any[] = [];
  await waitUntil(async () => {
    rows = (await http('GET', '/vault/usage', undefined, adminToken)).data;
    return rows.filter((r) => r.aborted).length >= 2;
  }, 'both aborted requests to be recorded', 30_000, 20).catch(() => undefined);
  const aborted = rows.filter((r) => r.aborted);
  expect(aborted.map((r) => r.route).sort()).toEqual(['chat', 'responses']);
  for (const r of aborted) {
    expect(r).toMatchObject({ decision: 'client_aborted', usageEstimated: true, provider: 'openai' });
    expect(r.costUsd).toBeGreaterThan(0);
  }
  const usage = await http('GET', '/admin/tenants/local-abort/usage');
  expect(usage.tenant).toMatchObject({ reservedMicros: 0 });
  expect(usage.tenant.spentMicros).toBe(aborted.reduce((s, r) => s + Math.round(r.costUsd * 1e6), 0));
});
