/**
 * Reservations left behind: a request that dies between reserve and settle (its Lambda killed,
 * its promise dropped) holds budget only until its deadline plus a margin; the next request that
 * needs that budget gives it back and goes through. A request that ends normally releases at once.
 */
import { costMicros, PriceBook } from '../../lambda/core/governance/prices';
import { FAKE_PROVIDER_KEYS, RouterHarness, startRouterHarness } from '../support/router-harness';
import { admissionRequest, chat, counters, governanceRouter, serializeDynamoDb, START, TestClock, verifierOf } from './governance-support';

let h: RouterHarness;
beforeAll(async () => {
  h = await startRouterHarness();
  serializeDynamoDb(h);
});
afterAll(() => h?.close());

const BODY = chat('gpt-4o', { max_tokens: 1000 });

const admissionFor = (tenantId: string, requestId: string, startedAt: number) =>
  admissionRequest(h, { tenantId, requestId, startedAt, body: BODY, maxTokens: 1000 });

test('an abandoned reservation blocks its budget until it expires, then the next request reclaims it and succeeds', async () => {
  // Room for one worst-case reservation of BODY (about $0.0104), not two.
  const { invokeToken } = await h.tenant('expiry-a', { policy: { monthlyBudgetUsd: 0.015 } });
  const clock = new TestClock(START);
  const g = governanceRouter(h, { clock });

  // A request reserves, then dies: its Admission is dropped without settle or release.
  const dead = await admissionFor('expiry-a', 'dead-request', clock.t);
  await g.governance.reserve(dead);
  const verifier = await verifierOf(h, 'expiry-a');
  const held = await counters(h, 'expiry-a', verifier, clock.t);
  expect(held.reservations.map((r) => r.sk)).toEqual(['dead-request']);
  const reserved = held.tenantSpend!.reservedMicros as number;
  expect(reserved).toBeGreaterThan(10_000);

  // Before its deadline (plus margin) the reservation may still be live: the next request is denied,
  // after the KMS call the race costs, but without any provider call.
  clock.advance(h.cell.config.requestDeadlineMs);
  const providerBefore = h.fakes.requests.length;
  const denied = await g.call({ path: '/v1/chat/completions', body: BODY }, invokeToken);
  expect(denied.status).toBe(429);
  expect(denied.json.error).toMatchObject({ code: 'budget_exceeded', limit_usd: 0.015, scope: 'tenant' });
  expect(denied.json.error.message).toContain('reserved by requests in flight');
  expect(h.fakes.requests.length).toBe(providerBefore);

  // Past deadline + margin: reclaimed on the way, and the request goes through.
  clock.advance(g.governance.settings.reservationMarginMs + 1_000);
  const ok = await g.call({ path: '/v1/chat/completions', body: BODY }, invokeToken);
  expect(ok.status).toBe(200);
  const after = await counters(h, 'expiry-a', verifier, clock.t);
  expect(after.reservations).toEqual([]);
  const cost = Math.round(ok.record!.costUsd! * 1e6);
  expect(after.tenantSpend).toMatchObject({ spentMicros: cost, reservedMicros: 0, committedMicros: cost });
  expect(after.tokenSpend).toMatchObject({ spentMicros: cost, reservedMicros: 0, committedMicros: cost });
  expect(g.logs.some((l) => l.includes('reclaimed an expired reservation') && l.includes('dead-request'))).toBe(true);
});

test('a request whose provider hangs is released when the router gives up at its deadline', async () => {
  const { invokeToken } = await h.tenant('expiry-b', { policy: { monthlyBudgetUsd: 1 } });
  const g = governanceRouter(h, { router: { config: { ...h.cell.config, requestDeadlineMs: 2_500 } } });
  h.fakes.script('openai', [{ kind: 'hang' }, { kind: 'hang' }, { kind: 'hang' }]);
  const res = await g.call({ path: '/v1/chat/completions', body: BODY }, invokeToken);
  h.fakes.reset();
  for (const [p, key] of Object.entries(FAKE_PROVIDER_KEYS)) h.fakes.setKey(p as 'openai', key);
  expect(res.status).toBe(504);
  const c = await counters(h, 'expiry-b', await verifierOf(h, 'expiry-b'), START);
  expect(c.reservations).toEqual([]);
  expect(c.tenantSpend).toMatchObject({ spentMicros: 0, reservedMicros: 0, committedMicros: 0 });
});

test('a request that settles after its reservation was reclaimed records its cost once, without giving the amount back twice', async () => {
  await h.tenant('expiry-c', { policy: { monthlyBudgetUsd: 1 } });
  const clock = new TestClock(START);
  const g = governanceRouter(h, { clock });
  const req = await admissionFor('expiry-c', 'slow-request', clock.t);
  const admission = await g.governance.reserve(req);
  expect(await g.governance.reclaimExpired('expiry-c')).toBe(0);
  clock.advance(h.cell.config.requestDeadlineMs + g.governance.settings.reservationMarginMs + 1_000);
  expect(await g.governance.reclaimExpired('expiry-c')).toBe(1);
  expect(await g.governance.reclaimExpired('expiry-c')).toBe(0);

  const usage = { inputTokens: 20, outputTokens: 30 };
  const { costUsd } = await admission.settle(usage, req.targets[0]);
  const expected = costMicros(new PriceBook().lookup(req.targets[0]).entry, usage);
  expect(costUsd).toBe(expected / 1e6);
  // Settling twice, or releasing after settling, changes nothing.
  await admission.settle(usage, req.targets[0]);
  await admission.release();
  const c = await counters(h, 'expiry-c', await verifierOf(h, 'expiry-c'), START);
  expect(c.tenantSpend).toMatchObject({ spentMicros: expected, reservedMicros: 0, committedMicros: expected });
  expect(c.tokenSpend).toMatchObject({ spentMicros: expected, reservedMicros: 0, committedMicros: expected });
  expect(g.logs.some((l) => l.includes('settled after the reservation was reclaimed'))).toBe(true);
});
