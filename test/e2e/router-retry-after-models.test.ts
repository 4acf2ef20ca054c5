/**
 * Issue 14.7 through the real router, moto and the fake providers over loopback:
 * - every 429 that knows its wait carries `Retry-After` (governance rate limits, and the providers'
 *   own Retry-After when the router gives up), equal to the body's retry_after_seconds, in both
 *   error shapes; a wait nobody knows is not invented;
 * - GET /v1/models lists what the token may actually call, provider defaults included, with the
 *   provider as owned_by, and every listed model answers.
 */
import { CircuitBreaker } from '../../lambda/core/routing/circuit-breaker';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { RouterHarness, startRouterHarness } from '../support/router-harness';
import { chat, governanceRouter, START, TestClock } from './governance-support';

let h: RouterHarness;
beforeAll(async () => {
  h = await startRouterHarness();
}, 60_000);
afterAll(() => h?.close());
afterEach(() => {
  for (const p of ['openai', 'anthropic', 'mistral'] as const) expect(h.fakes.pending(p)).toBe(0);
});

const messages = (model: string) => JSON.stringify({ model, max_tokens: 16, messages: [{ role: 'user', content: 'hello there' }] });

describe('Retry-After', () => {
  test('an RPM denial: header equals retry_after_seconds, OpenAI and Anthropic shapes', async () => {
    const clock = new TestClock(START); // 5 s into a minute: 55 s to the next window
    const g = governanceRouter(h, { clock });
    const { invokeToken } = await h.tenant('ra-rpm', { policy: { rpm: 1 } });
    expect((await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken)).status).toBe(200);
    const openai = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken);
    expect(openai.status).toBe(429);
    expect(openai.sink.headers['retry-after']).toBe('55');
    expect(openai.json.error).toMatchObject({ type: 'rate_limit_error', code: 'rate_limit_exceeded', retry_after_seconds: 55 });
    const anthropic = await g.call({ path: '/v1/messages', body: messages('claude-haiku-4-5') }, invokeToken);
    expect(anthropic.status).toBe(429);
    expect(anthropic.sink.headers['retry-after']).toBe('55');
    expect(anthropic.json).toMatchObject({ type: 'error', error: { type: 'rate_limit_error', code: 'rate_limit_exceeded', retry_after_seconds: 55 } });
  });

  test('a TPM window that is full carries it; a request larger than the whole TPM limit does not', async () => {
    const g = governanceRouter(h, { clock: new TestClock(START + 120_000) });
    const { invokeToken } = await h.tenant('ra-tpm', { policy: { tpm: 100 } });
    const huge = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_tokens: 5000 }) }, invokeToken);
    expect(huge.status).toBe(429);
    expect(huge.json.error.message).toContain('this request alone');
    expect(huge.sink.headers['retry-after']).toBeUndefined();
    expect(huge.json.error.retry_after_seconds).toBeUndefined();
    let full;
    for (let i = 0; i < 20 && !full; i++) {
      const res = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_tokens: 20 }) }, invokeToken);
      if (res.status !== 200) full = res;
    }
    expect(full?.status).toBe(429);
    expect(full?.json.error).toMatchObject({ code: 'rate_limit_exceeded', limit_tpm: 100, retry_after_seconds: 55 });
    expect(full?.sink.headers['retry-after']).toBe('55');
  });

  test('a spent budget: Retry-After is the end of the month and the SDKs are told not to retry', async () => {
    const clock = new TestClock(START);
    // $1000 per million tokens makes a call cost cents, so $0.5 is gone after a few calls.
    const g = governanceRouter(h, { clock, governance: { prices: { models: { openai: { 'gpt-4o-mini': { input: 1000, output: 1000 } } } } } });
    const { invokeToken } = await h.tenant('ra-budget', { policy: { monthlyBudgetUsd: 0.5 } });
    let denied;
    for (let i = 0; i < 40 && !denied; i++) {
      const res = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_tokens: 20 }) }, invokeToken);
      if (res.status !== 200) denied = res;
    }
    expect(denied?.status).toBe(429);
    const toNextMonth = Math.ceil((Date.UTC(2025, 6, 1) - START) / 1000); // START is in June 2025
    expect(denied?.json.error).toMatchObject({ code: 'budget_exceeded', retry_after_seconds: toNextMonth });
    expect(denied?.sink.headers['retry-after']).toBe(String(toNextMonth));
    expect(denied?.sink.headers['x-should-retry']).toBe('false');
  });

  test('every target answered 429 with Retry-After: the router gives up with the shortest wait, both shapes', async () => {
    const route = [
      { provider: 'openai', model: 'gpt-4o-mini' },
      { provider: 'anthropic', model: 'claude-haiku-4-5' },
    ];
    const { invokeToken } = await h.tenant('ra-upstream', { policy: { routes: { duo: route } } });
    const app = h.makeRouter({ breaker: new CircuitBreaker(), sleep: async () => undefined });
    const call = async (path: string, body: string) => {
      const sink = new MemorySink();
      await app({ method: 'POST', path, headers: { authorization: `Bearer ${invokeToken}`, 'content-type': 'application/json' }, body }, sink);
      return { sink, json: JSON.parse(sink.body) };
    };
    // Waits longer than the backoff cap: the router moves on at once, then gives up.
    const script = () => {
      h.fakes.script('openai', [{ kind: 'status', status: 429, headers: { 'retry-after': '40' } }]);
      h.fakes.script('anthropic', [{ kind: 'status', status: 429, headers: { 'retry-after': '25' } }]);
    };
    script();
    const a = await call('/v1/chat/completions', JSON.stringify({ model: 'duo', messages: [{ role: 'user', content: 'hi' }] }));
    expect(a.sink.status).toBe(429);
    expect(a.sink.headers['retry-after']).toBe('25');
    expect(a.json.error).toMatchObject({ type: 'rate_limit_error', code: 'upstream_unavailable', retry_after_seconds: 25 });
    script();
    const b = await call('/v1/messages', messages('duo'));
    expect(b.sink.status).toBe(429);
    expect(b.sink.headers['retry-after']).toBe('25');
    expect(b.json).toMatchObject({ type: 'error', error: { type: 'rate_limit_error', code: 'upstream_unavailable', retry_after_seconds: 25 } });

    // A 429 on one target and a 500 on the other: a 502 with no wait to announce.
    h.fakes.script('openai', [{ kind: 'status', status: 429, headers: { 'retry-after': '40' } }]);
    h.fakes.script('anthropic', [{ kind: 'status', status: 500 }, { kind: 'status', status: 500 }]);
    const c = await call('/v1/chat/completions', JSON.stringify({ model: 'duo', messages: [{ role: 'user', content: 'hi' }] }));
    expect(c.sink.status).toBe(502);
    expect(c.sink.headers['retry-after']).toBeUndefined();
  });
});

describe('GET /v1/models', () => {
  const models = async (token: string) => {
    const out = await h.call({ method: 'GET', path: '/v1/models' }, token);
    expect(out.sink.status).toBe(200);
    return out.json as { object: string; data: { id: string; object: string; owned_by: string }[] };
  };

  test('a tenant with no policy sees its providers’ default models, owned by each provider, and each answers', async () => {
    const { invokeToken } = await h.tenant('models-default');
    const list = await models(invokeToken);
    expect(list.object).toBe('list');
    const owner = Object.fromEntries(list.data.map((m) => [m.id, m.owned_by]));
    expect(owner).toMatchObject({ 'gpt-4o-mini': 'openai', 'claude-sonnet-4-5': 'anthropic', 'mistral-small-latest': 'mistral', 'text-embedding-3-small': 'openai' });
    for (const id of ['gpt-4o-mini', 'claude-sonnet-4-5', 'mistral-small-latest']) {
      const res = await h.call({ path: '/v1/chat/completions', body: chat(id) }, invokeToken);
      expect([id, res.sink.status, res.record?.provider]).toEqual([id, 200, owner[id]]);
    }
  });

  test('only providers the tenant has a key for; allowlists of tenant and token narrow it', async () => {
    const { invokeToken, adminToken } = await h.tenant('models-narrow', {
      policy: { allowedModels: ['claude-haiku-4-5', 'gpt-4o', 'fast'], routes: { fast: [{ provider: 'anthropic', model: 'claude-haiku-4-5' }] } },
    });
    // Remove the OpenAI key: gpt-4o is allowed but cannot be served.
    expect((await h.vault(adminToken, 'DELETE', '/vault/secrets/openai/default')).status).toBeLessThan(300);
    expect((await models(invokeToken)).data.map((m) => `${m.id}:${m.owned_by}`)).toEqual(['claude-haiku-4-5:anthropic', 'fast:anthropic']);
    const narrow = await h.vault(adminToken, 'POST', '/vault/tokens', { role: 'invoke', label: 'narrow', limits: { allowedModels: ['fast'] } });
    expect(narrow.status).toBe(201);
    expect((await models(narrow.json.token)).data.map((m) => m.id)).toEqual(['fast']);
  });
});
