/**
 * The end stage of a request: settle, usage record, metric and log line all happen after the
 * client has its last byte, streaming and not, and a slow or failing settle changes nothing the
 * client receives; a settle that fails is retried, and one that fails for good is reclaimed at
 * the cost its usage record names, so no spend is lost.
 */
import { createServer, request, Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoGovernance } from '../../lambda/adapters/dynamo-governance';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { usageRecordKey } from '../../lambda/core/router/usage-record';
import { nodeSink } from '../../local/gateway';
import { awsClients } from '../support/aws-clients';
import { AwsFaultProxy, holdCalls, isSettle, startAwsFaultProxy } from '../support/aws-fault-proxy';
import { RouterHarness, startRouterHarness } from '../support/router-harness';
import { waitUntil } from '../support/wait';
import { chat, counters, START, TestClock, usageItem, verifierOf } from './governance-support';

let h: RouterHarness;
let proxy: AwsFaultProxy;
/**
 * The settle write is held at the proxy (not delayed by a time) while the test checks that the
 * client already has its last byte and the end stage has not finished: an order, not a race
 * between a 1.5 s delay and the request's own moto calls on a loaded machine.
 */
const holdSettles = () => holdCalls(proxy, isSettle);

beforeAll(async () => {
  h = await startRouterHarness();
  proxy = await startAwsFaultProxy(h.moto.endpoint);
}, 60_000);
afterEach(() => {
  proxy.rule = () => undefined;
});
afterAll(async () => {
  await proxy?.close();
  await h?.close();
});

/** A router whose governance talks to DynamoDB through the fault proxy, on a test clock. */
function governedRouter(clock = new TestClock(START)) {
  const logs: string[] = [];
  const log = { info: (m: string, f?: object) => logs.push(JSON.stringify({ m, ...f })), warn: (m: string, f?: object) => logs.push(JSON.stringify({ m, ...f })), error: (m: string, f?: object) => logs.push(JSON.stringify({ m, ...f })) };
  const governance = new DynamoGovernance(awsClients(proxy.endpoint, h.cell.config.region).ddb, {
    table: h.cell.config.tables.counters,
    usageRecordsTable: h.cell.config.tables.usage,
    now: clock.now,
    sleep: (ms) => new Promise((r) => setTimeout(r, Math.min(ms, 20))),
    log,
  });
  const router = h.makeRouter({ governance, now: clock.now, log });
  return { router, governance, clock, logs };
}

const call = async (router: ReturnType<typeof h.makeRouter>, token: string, body: string) => {
  const sink = new MemorySink();
  const record = await router({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` }, body }, sink);
  return { sink, record };
};

describe.each([
  ['non-streaming', false],
  ['streaming', true],
])('%s', (_name, stream) => {
  test('the client has its last byte while the settle write is held; the spend is settled afterwards', async () => {
    const tenantId = `tail-${stream ? 's' : 'n'}`;
    const { invokeToken } = await h.tenant(tenantId, { policy: { monthlyBudgetUsd: 5 } });
    const g = governedRouter();
    const settle = holdSettles();
    const sink = new MemorySink();
    let returned = false;
    const app = g.router({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: `Bearer ${invokeToken}` }, body: chat('gpt-4o-mini', { stream }) }, sink);
    void app.then(() => (returned = true));
    try {
      // The response is complete while the settle write is held; the app's promise (the end
      // stage) has not resolved.
      await waitUntil(() => settle.held() > 0 && sink.ended, 'the last byte while the settle write is held', 20_000);
      expect(sink.status).toBe(200);
      expect(sink.body).toContain(stream ? 'data: [DONE]' : '"choices"');
      expect(returned).toBe(false);
      // Time passes on the router's clock while the settle is held (within the same minute).
      g.clock.advance(30_000);
    } finally {
      settle.release();
    }
    const record = await app;
    // The recorded latency is the client's (last byte), not the end stage's.
    expect(record!.latencyMs).toBeLessThan(30_000);
    expect(sink.headers['x-request-id']).toBe(record!.requestId);

    const c = await counters(h, tenantId, await verifierOf(h, tenantId), START);
    const cost = Math.round(record!.costUsd! * 1e6);
    expect(cost).toBeGreaterThan(0);
    expect(c.reservations).toEqual([]);
    expect(c.tenantSpend).toMatchObject({ spentMicros: cost, reservedMicros: 0, committedMicros: cost });
  });
});

test('over HTTP (the local server sink), the client reads the whole response while the settle write is still held back', async () => {
  const { invokeToken } = await h.tenant('tail-http', { policy: { monthlyBudgetUsd: 5 } });
  const g = governedRouter();
  let appDoneAt = 0;
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void g.router({ method: 'POST', path: req.url!, headers: req.headers as Record<string, string>, body: Buffer.concat(chunks).toString() }, nodeSink(res)).then(() => {
        appDoneAt = Date.now();
      });
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  try {
    const { port } = server.address() as AddressInfo;
    for (const stream of [false, true]) {
      appDoneAt = 0;
      const settle = holdSettles();
      let clientDone: number;
      try {
        let timer: NodeJS.Timeout | undefined;
        const got = await Promise.race([
          new Promise<{ status: number; body: string; requestId: string }>((ok, fail) => {
            const r = request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: `Bearer ${invokeToken}` } }, (res) => {
              let body = '';
              res.on('data', (c: Buffer) => (body += c.toString()));
              res.on('end', () => ok({ status: res.statusCode!, body, requestId: String(res.headers['x-request-id']) }));
            });
            r.on('error', fail);
            r.end(chat('gpt-4o-mini', { stream }));
          }),
          new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error('the client never got its last byte while the settle write was held')), 20_000))),
        ]).finally(() => clearTimeout(timer));
        clientDone = Date.now();
        expect(got.status).toBe(200);
        expect(got.body).toContain(stream ? 'data: [DONE]' : '"choices"');
        expect(got.requestId).toMatch(/^[0-9a-f-]{36}$/);
        await waitUntil(() => settle.held() > 0, 'the settle write', 20_000);
        expect(appDoneAt).toBe(0); // the end stage is still waiting for the settle write
      } finally {
        settle.release();
      }
      await waitUntil(() => appDoneAt !== 0, 'the end stage to finish once the settle write went through');
      expect(appDoneAt).toBeGreaterThanOrEqual(clientDone);
    }
  } finally {
    server.close();
  }
});

test('a settle whose writes fail twice is retried after the response and records the exact cost', async () => {
  const tenantId = 'tail-retry';
  const { invokeToken } = await h.tenant(tenantId, { policy: { monthlyBudgetUsd: 5 } });
  const g = governedRouter();
  let failures = 0;
  // The SDK client retries once itself (maxAttempts 2): four failed HTTP calls are two failed settles.
  proxy.rule = (c) => (isSettle(c) && failures++ < 4 ? { fail: 500 } : undefined);
  const { sink, record } = await call(g.router, invokeToken, chat('gpt-4o-mini'));
  expect(sink.status).toBe(200);
  expect(failures).toBeGreaterThanOrEqual(5);
  const c = await counters(h, tenantId, await verifierOf(h, tenantId), START);
  const cost = Math.round(record!.costUsd! * 1e6);
  expect(c.reservations).toEqual([]);
  expect(c.tenantSpend).toMatchObject({ spentMicros: cost, reservedMicros: 0, committedMicros: cost });
  expect(c.tokenSpend).toMatchObject({ spentMicros: cost, reservedMicros: 0, committedMicros: cost });
  expect(g.logs.filter((l) => l.includes('settle failed; retrying'))).toHaveLength(2);
});

test('a settle that fails for good leaves the answer untouched, and the reclaim charges the cost on the usage record', async () => {
  const tenantId = 'tail-reclaim';
  const { invokeToken } = await h.tenant(tenantId, { policy: { monthlyBudgetUsd: 5 } });
  const g = governedRouter();
  proxy.rule = (c) => (isSettle(c) ? { fail: 500 } : undefined);
  const { sink, record } = await call(g.router, invokeToken, chat('gpt-4o-mini'));
  expect(sink.status).toBe(200);
  expect(JSON.parse(sink.body).choices[0].message.content).toBeTruthy();
  const cost = Math.round(record!.costUsd! * 1e6);
  expect(cost).toBeGreaterThan(0);
  const verifier = await verifierOf(h, tenantId);
  const held = await counters(h, tenantId, verifier, START);
  expect(held.reservations.map((r) => r.sk)).toEqual([record!.requestId]);
  expect(held.tenantSpend!.spentMicros).toBe(0);
  // The usage record names the cost.
  const stored = await usageItem(h, usageRecordKey(record!).pk, usageRecordKey(record!).sk);
  expect(stored).toMatchObject({ costUsd: record!.costUsd, requestId: record!.requestId });

  // Past the request's deadline and margin the reservation is reclaimed at that cost.
  proxy.rule = () => undefined;
  g.clock.advance(h.cell.config.requestDeadlineMs + g.governance.settings.reservationMarginMs + 1_000);
  expect(await g.governance.reclaimExpired(tenantId)).toBe(1);
  const after = await counters(h, tenantId, verifier, START);
  expect(after.reservations).toEqual([]);
  expect(after.tenantSpend).toMatchObject({ spentMicros: cost, reservedMicros: 0, committedMicros: cost });
  expect(after.tokenSpend).toMatchObject({ spentMicros: cost, reservedMicros: 0, committedMicros: cost });
  expect(g.logs.some((l) => l.includes('reclaimed an expired reservation') && l.includes(`"chargedMicros":${cost}`))).toBe(true);
});
