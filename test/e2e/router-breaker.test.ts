/**
 * Issue 9, point 7: circuit breaking is kept per provider endpoint and per stored key. Two (three)
 * tenants share one provider endpoint and one router instance (one breaker, as in one Lambda
 * execution environment). Tenant A's key is rate limited (429) over and over, tenant C's key is
 * revoked (401): their own keys' circuits open, and tenant B is served throughout.
 */
import { CircuitBreaker } from '../../lambda/core/routing/circuit-breaker';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { RouterHarness, startRouterHarness } from '../support/router-harness';

const KEY_A = 'sk-openai-tenant-a-rate-limited-000000';
const KEY_B = 'sk-openai-tenant-b-healthy-0000000000';
const KEY_C = 'sk-openai-tenant-c-revoked-0000000000';

let h: RouterHarness;
const invoke: Record<'a' | 'b' | 'c', string> = { a: '', b: '', c: '' };

beforeAll(async () => {
  h = await startRouterHarness();
  invoke.a = (await h.tenant('breaker-a', { keys: { openai: KEY_A } })).invokeToken;
  invoke.b = (await h.tenant('breaker-b', { keys: { openai: KEY_B } })).invokeToken;
  invoke.c = (await h.tenant('breaker-c', { keys: { openai: KEY_C } })).invokeToken;
  h.fakes.setKey('openai', KEY_B);
  h.fakes.setKeyStatus('openai', KEY_A, 429);
  h.fakes.setKeyStatus('openai', KEY_C, 401);
}, 60_000);
afterAll(async () => {
  await h?.close();
});

/** One router instance with its own breaker, shared by every call below (one execution environment). */
const breaker = new CircuitBreaker();
let router: ReturnType<RouterHarness['makeRouter']>;
beforeAll(() => {
  router = h.makeRouter({ breaker, sleep: async () => undefined });
});

async function chat(token: string) {
  const seenBefore = h.fakes.openai.requests.length;
  const sink = new MemorySink();
  const record = await router(
    { method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }) },
    sink,
  );
  const upstream = h.fakes.openai.requests.slice(seenBefore).map((r) => String(r.headers.authorization).replace('Bearer ', ''));
  return { status: sink.status, json: JSON.parse(sink.body), record, upstream };
}

it("tenant A's rate-limited key opens only A's circuit; tenant B on the same provider is served throughout", async () => {
  // Before: B is served.
  expect((await chat(invoke.b)).status).toBe(200);
  // A is rate limited: every attempt gets a 429. Five of them open A's key circuit.
  let attemptsWithA = 0;
  for (let i = 0; attemptsWithA < 5; i++) {
    expect(i).toBeLessThan(5);
    const a = await chat(invoke.a);
    expect(a.status).toBe(429);
    expect(a.upstream.length).toBeGreaterThan(0);
    expect(a.upstream.every((k) => k === KEY_A)).toBe(true);
    attemptsWithA += a.upstream.length;
    // B, in between, on the same endpoint and the same breaker, is still served.
    const b = await chat(invoke.b);
    expect([b.status, b.upstream]).toEqual([200, [KEY_B]]);
  }
  expect(attemptsWithA).toBe(5);
  // A's key circuit is open now: A is answered 429 without a provider call...
  const paused = await chat(invoke.a);
  expect(paused.status).toBe(429);
  expect(paused.upstream).toEqual([]);
  expect(paused.json.error.message).toContain('stored key paused');
  expect(paused.record?.fallbackChain.map((s) => s.outcome)).toEqual(['key_breaker_open']);
  // ...and B is not affected at all.
  for (let i = 0; i < 3; i++) expect(await chat(invoke.b)).toMatchObject({ status: 200, upstream: [KEY_B] });
});

it("tenant C's revoked key (401) counts against C's key only: C keeps its clear error, B keeps working", async () => {
  for (let i = 0; i < 5; i++) {
    const c = await chat(invoke.c);
    expect([c.status, c.json.error.code, c.upstream]).toEqual([502, 'provider_rejected_key', [KEY_C]]);
    expect((await chat(invoke.b)).status).toBe(200);
  }
  // Five rejections: C's key is paused, so the provider stops seeing a revoked key from this gateway.
  const paused = await chat(invoke.c);
  expect(paused.upstream).toEqual([]);
  expect((await chat(invoke.b)).status).toBe(200);
});
