/**
 * Budgets and rate limits under concurrency, on moto's DynamoDB: hundreds of requests at once
 * against a small budget. Settled spend never exceeds the budget; every request either succeeds
 * or gets a clear denial; nothing hangs, nothing fails with a 5xx, nothing stays reserved.
 */
import { ApiError } from '../../lambda/core/http';
import { planAdmission } from '../../lambda/core/governance/admission';
import type { Admission } from '../../lambda/core/router/governance';
import { RouterHarness, startRouterHarness } from '../support/router-harness';
import { admissionRequests, chat, counters, freshCountersTable, governanceRouter, serializeDynamoDb, START, TestClock, verifierOf } from './governance-support';

let h: RouterHarness;
beforeAll(async () => {
  h = await startRouterHarness();
  serializeDynamoDb(h);
});
afterAll(() => h?.close());

/** Fails the test instead of hanging on a request that never ends. */
function withinMs<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]);
}

const BODY = chat('gpt-4o', { max_tokens: 200 });
/**
 * A hang guard, not a speed goal: the router test takes about 20 s on a quiet 2-vCPU machine
 * (every DynamoDB call goes to moto one at a time), so 60 s (also jest's default test timeout)
 * left a loaded CI runner 3x. The tests get TEST_MS so this guard fires first, with its message.
 */
const HANG_MS = 150_000;
const TEST_MS = 180_000;

test('200 concurrent reservations whose real cost equals the reservation: exactly floor(budget / cost) succeed', async () => {
  const N = 200;
  const table = await freshCountersTable(h);
  const { governance } = governanceRouter(h, { table });
  await h.tenant('conc-exact', { policy: { monthlyBudgetUsd: 0.1 } });
  const reqs = await admissionRequests(h, N, { tenantId: 'conc-exact', prefix: 'r', startedAt: START, body: BODY, maxTokens: 200 });
  const plan = planAdmission(reqs[0], governance.settings);
  const amount = plan.reserveMicros;
  // The worst case itself, as usage counts: settling it costs exactly the reservation.
  const worstUsage = { inputTokens: Math.ceil(reqs[0].promptTokenEstimate * governance.settings.promptReserveFactor), outputTokens: 200 };

  const outcomes = await withinMs(
    Promise.all(
      reqs.map(async (req) => {
        let admission: Admission;
        try {
          admission = await governance.reserve(req);
        } catch (err) {
          if (err instanceof ApiError && err.status === 429 && err.code === 'budget_exceeded') return 'denied' as const;
          throw err;
        }
        const { costUsd } = await admission.settle(worstUsage, req.targets[0]);
        expect(Math.round(costUsd! * 1e6)).toBe(amount);
        return 'settled' as const;
      }),
    ),
    HANG_MS,
    'the reservations',
  );
  const settled = outcomes.filter((o) => o === 'settled').length;
  expect(settled).toBe(Math.floor(100_000 / amount));
  expect(outcomes.filter((o) => o === 'denied').length).toBe(N - settled);

  const c = await counters(h, 'conc-exact', await verifierOf(h, 'conc-exact'), START, table);
  expect(c.tenantSpend).toMatchObject({ spentMicros: settled * amount, reservedMicros: 0, committedMicros: settled * amount });
  expect(c.tenantSpend!.spentMicros).toBeLessThanOrEqual(100_000);
  expect(c.tokenSpend).toMatchObject({ spentMicros: settled * amount, reservedMicros: 0 });
  expect(c.reservations).toEqual([]);
}, TEST_MS);

test('120 concurrent requests that settle below, at, or release their reservation: spend stays within the budget', async () => {
  const N = 120;
  const table = await freshCountersTable(h);
  const { governance } = governanceRouter(h, { table });
  await h.tenant('conc-mixed', { policy: { monthlyBudgetUsd: 0.1 } });
  const reqs = await admissionRequests(h, N, { tenantId: 'conc-mixed', prefix: 'm', startedAt: START, body: BODY, maxTokens: 200 });
  const costs: number[] = [];
  const outcomes = await withinMs(
    Promise.all(
      reqs.map(async (req, i) => {
        let admission: Admission;
        try {
          admission = await governance.reserve(req);
        } catch (err) {
          if (err instanceof ApiError && err.code === 'budget_exceeded') return 'denied';
          throw err;
        }
        if (i % 5 === 0) {
          await admission.release();
          return 'released';
        }
        const { costUsd } = await admission.settle({ inputTokens: 10 + (i % 90), outputTokens: i % 201 }, req.targets[0]);
        costs.push(Math.round(costUsd! * 1e6));
        return 'settled';
      }),
    ),
    HANG_MS,
    'the reservations',
  );
  expect(outcomes.filter((o) => o === 'settled').length).toBeGreaterThan(10);
  expect(outcomes.filter((o) => o === 'denied').length).toBeGreaterThan(0);
  const spent = costs.reduce((a, b) => a + b, 0);
  const c = await counters(h, 'conc-mixed', await verifierOf(h, 'conc-mixed'), START, table);
  expect(c.tenantSpend).toMatchObject({ spentMicros: spent, reservedMicros: 0, committedMicros: spent });
  expect(spent).toBeLessThanOrEqual(100_000);
  expect(c.reservations).toEqual([]);
}, TEST_MS);

test('RPM under concurrency: of 80 simultaneous requests exactly the limit are admitted', async () => {
  const clock = new TestClock(START + 86_400_000);
  const table = await freshCountersTable(h);
  const { governance } = governanceRouter(h, { clock, table });
  await h.tenant('conc-rpm', { policy: { rpm: 17 } });
  const reqs = await admissionRequests(h, 80, { tenantId: 'conc-rpm', prefix: 'q', startedAt: clock.t, body: BODY, maxTokens: 10 });
  const results = await Promise.all(
    reqs.map((req) =>
      governance.reserve(req).then(
        (a) => a.settle({ inputTokens: 1, outputTokens: 1 }, req.targets[0]).then(() => 'ok'),
        (err: ApiError) => `${err.status}:${err.code}:${err.details.limit_rpm}`,
      ),
    ),
  );
  expect(results.filter((r) => r === 'ok')).toHaveLength(17);
  expect(new Set(results.filter((r) => r !== 'ok'))).toEqual(new Set(['429:rate_limit_exceeded:17']));
  const c = await counters(h, 'conc-rpm', await verifierOf(h, 'conc-rpm'), clock.t, table);
  expect(c.tenantRate).toMatchObject({ requests: 17, tokens: 34 });
}, TEST_MS);

test('200 concurrent requests through the router against a small budget: 200 or budget_exceeded, no 5xx, no hang, no provider call for a denial', async () => {
  const N = 200;
  // Output-only pricing and max_tokens equal to the fake's answer (3 words): every admitted call
  // costs exactly its reservation, $0.03, so exactly floor($1 / $0.03) = 33 fit and then nothing.
  const table = await freshCountersTable(h);
  const g = governanceRouter(h, { table, governance: { prices: { models: { openai: { 'gpt-4o-mini': { input: 0, output: 10_000 } } } } } });
  const { invokeToken } = await h.tenant('conc-router', { policy: { monthlyBudgetUsd: 1 } });
  const body = chat('gpt-4o-mini', { max_tokens: 3 });
  const provider = h.fakes.requests.length;
  const kms = h.kmsCalls.length;
  const started = Date.now();
  const results = await withinMs(
    Promise.all(Array.from({ length: N }, () => g.call({ path: '/v1/chat/completions', body }, invokeToken))),
    HANG_MS,
    'the router requests',
  );
  const elapsed = Date.now() - started;

  const ok = results.filter((r) => r.status === 200);
  const denied = results.filter((r) => r.status === 429);
  expect(ok.length + denied.length).toBe(N);
  for (const d of denied) {
    expect(d.json.error).toMatchObject({ code: 'budget_exceeded', limit_usd: 1, scope: 'tenant' });
    expect(d.record?.decision).toBe('denied:budget_exceeded');
  }
  for (const r of ok) {
    expect(r.record).toMatchObject({ decision: 'ok', costUsd: 0.03, outputTokens: 3 });
  }
  expect(ok.length).toBe(33);

  const spent = ok.reduce((sum, r) => sum + Math.round(r.record!.costUsd! * 1e6), 0);
  const c = await counters(h, 'conc-router', await verifierOf(h, 'conc-router'), START, table);
  expect(c.tenantSpend).toMatchObject({ spentMicros: spent, reservedMicros: 0, committedMicros: spent });
  expect(spent).toBe(990_000);
  expect(c.reservations).toEqual([]);
  // Only admitted requests reached a provider; a denial costs at most the KMS call of a lost race.
  expect(h.fakes.requests.length - provider).toBe(ok.length);
  const kmsCalls = h.kmsCalls.length - kms;
  expect(kmsCalls).toBeGreaterThanOrEqual(ok.length);
  expect(kmsCalls).toBeLessThanOrEqual(N);

  // Now the spend itself leaves no room: the next request is denied before KMS.
  const kmsBefore = h.kmsCalls.length;
  const late = await g.call({ path: '/v1/chat/completions', body }, invokeToken);
  expect(late.status).toBe(429);
  expect(h.kmsCalls.length).toBe(kmsBefore);
  console.log(
    `governance via router: ${N} concurrent requests in ${elapsed} ms: ${ok.length} ok, ${denied.length} budget_exceeded ` +
      `(${kmsCalls - ok.length} of them after a KMS call), spent $${spent / 1e6} of $1`,
  );
}, TEST_MS);
