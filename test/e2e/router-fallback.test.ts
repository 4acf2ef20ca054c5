/**
 * Fallback, retries and the circuit breaker through the real router and real HTTP: a route alias
 * with ordered targets; 429/5xx/hangs/refused connections fall back (and the usage record's
 * fallbackChain shows every step); a provider's 4xx is handed back, never retried; all targets
 * failing maps to 429/502/504 in the route's error shape; an open breaker skips the primary.
 */
import { CircuitBreaker } from '../../lambda/core/routing/circuit-breaker';
import { ProviderHttpClient } from '../../lambda/adapters/provider-http';
import type { RouterDeps } from '../../lambda/core/router/router-app';
import { MemorySink } from '../../lambda/core/router/response-sink';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { freePort } from '../support/free-port';
import { shortFirstByteTimeoutFor } from '../support/provider-timeouts';
import { FAKE_PROVIDER_KEYS, RouterHarness, startRouterHarness } from '../support/router-harness';

let h: RouterHarness;
let invoke: string;
const TENANT = 'fallback-co';
const ROUTE = [
  { provider: 'openai', model: 'gpt-4o-mini' },
  { provider: 'anthropic', model: 'claude-haiku-4-5' },
  { provider: 'mistral', model: 'mistral-small-latest' },
];

beforeAll(async () => {
  h = await startRouterHarness();
  ({ invokeToken: invoke } = await h.tenant(TENANT, { policy: { routes: { resilient: ROUTE, duo: ROUTE.slice(0, 2) } } }));
}, 60_000);
afterAll(() => h?.close());
afterEach(() => {
  // A test that failed half-way must not leave behaviors for the next one.
  for (const p of ['openai', 'anthropic', 'mistral'] as const) expect(h.fakes.pending(p)).toBe(0);
});

const chatBody = (model = 'resilient', extra: Record<string, unknown> = {}) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }], ...extra });
const messagesBody = (model = 'resilient') => JSON.stringify({ model, max_tokens: 32, messages: [{ role: 'user', content: 'hello there' }] });

/** A router with instant, recorded sleeps (retry delays) and a fixed jitter draw. */
function router(overrides: Partial<RouterDeps> = {}) {
  const sleeps: number[] = [];
  const app = h.makeRouter({
    breaker: new CircuitBreaker(),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
    ...overrides,
  });
  const call = async (path: string, body: string) => {
    const sink = new MemorySink();
    const before = { openai: h.fakes.openai.requests.length, anthropic: h.fakes.anthropic.requests.length, mistral: h.fakes.mistral.requests.length };
    const record = await app({ method: 'POST', path, headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json' }, body }, sink);
    let json: any;
    try {
      json = JSON.parse(sink.body);
    } catch {
      json = undefined;
    }
    const hits = {
      openai: h.fakes.openai.requests.length - before.openai,
      anthropic: h.fakes.anthropic.requests.length - before.anthropic,
      mistral: h.fakes.mistral.requests.length - before.mistral,
    };
    return { sink, json, record: record as UsageRecord, hits };
  };
  return { app, sleeps, call };
}

const steps = (r: UsageRecord) => r.fallbackChain.map((s) => `${s.provider}:${s.outcome}${s.status ? `:${s.status}` : ''}`);

describe('fallback to the next target', () => {
  test.each([429, 500, 503])('primary answers %i twice → retried once, then the next target serves', async (status) => {
    const r = router();
    h.fakes.script('openai', [
      { kind: 'status', status },
      { kind: 'status', status },
    ]);
    const { sink, json, record, hits } = await r.call('/v1/chat/completions', chatBody());
    expect(sink.status).toBe(200);
    // Served by Anthropic, translated back to the OpenAI format the client speaks.
    expect(json.object).toBe('chat.completion');
    expect(json.choices[0].message.content).toBe('Echo: hello there');
    expect(hits).toEqual({ openai: 2, anthropic: 1, mistral: 0 });
    expect(steps(record)).toEqual([`openai:status:${status}`, `openai:status:${status}`, 'anthropic:ok']);
    expect(record).toMatchObject({ provider: 'anthropic', upstreamModel: 'claude-haiku-4-5', decision: 'ok', status: 200 });
    // 429 carries Retry-After: 1 (the fake's default): honoured, it is under the backoff cap.
    expect(r.sleeps).toEqual([status === 429 ? 1000 : 100]);
  });

  test('a 5xx then success on the same target: one retry, no fallback', async () => {
    const r = router();
    h.fakes.script('openai', [{ kind: 'status', status: 502 }]);
    const { sink, record, hits } = await r.call('/v1/chat/completions', chatBody());
    expect(sink.status).toBe(200);
    expect(hits).toEqual({ openai: 2, anthropic: 0, mistral: 0 });
    expect(steps(record)).toEqual(['openai:status:502', 'openai:ok']);
  });

  test('retry delays are full-jitter backoff drawn from the injected random, inside the deadline', async () => {
    const draws: number[] = [];
    const r = router({
      random: () => {
        draws.push(0.25);
        return 0.25;
      },
    });
    h.fakes.script('openai', [
      { kind: 'status', status: 500 },
      { kind: 'status', status: 500 },
    ]);
    h.fakes.script('anthropic', [{ kind: 'status', status: 500 }]);
    const { record } = await r.call('/v1/chat/completions', chatBody());
    expect(steps(record)).toEqual(['openai:status:500', 'openai:status:500', 'anthropic:status:500', 'anthropic:ok']);
    // attempt 1 → uniform in [0, 200): 0.25 → 50; per target, one retry.
    expect(r.sleeps).toEqual([50, 50]);
    expect(draws.length).toBeGreaterThanOrEqual(2);
  });

  test('a Retry-After longer than the backoff cap skips the retry and falls back at once', async () => {
    const r = router();
    h.fakes.script('openai', [{ kind: 'status', status: 429, headers: { 'retry-after': '30' } }]);
    const { sink, record, hits } = await r.call('/v1/chat/completions', chatBody());
    expect(sink.status).toBe(200);
    expect(hits).toEqual({ openai: 1, anthropic: 1, mistral: 0 });
    expect(steps(record)).toEqual(['openai:status:429', 'anthropic:ok']);
    expect(r.sleeps).toEqual([]);
  });

  test('no retry sleep reaches the request deadline: a long Retry-After near it means fall back now', async () => {
    const sleeps: Array<{ ms: number; left: number }> = [];
    let started = 0;
    const make = (deadlineMs: number) =>
      h.makeRouter({
        config: { ...h.cell.config, requestDeadlineMs: deadlineMs },
        breaker: new CircuitBreaker(),
        random: () => 0.99,
        sleep: async (ms) => {
          sleeps.push({ ms, left: started + deadlineMs - Date.now() });
        },
      });
    const run = async (app: ReturnType<typeof make>) => {
      const sink = new MemorySink();
      started = Date.now();
      const record = await app({ method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json' }, body: chatBody('duo') }, sink);
      return { sink, record: record as UsageRecord };
    };
    // Retry-After 1.9 s (under the 2 s cap) with a 1.5 s deadline: waiting is useless.
    h.fakes.script('openai', [{ kind: 'status', status: 429, headers: { 'retry-after': '1.9' } }]);
    const short = await run(make(1_500));
    expect(short.sink.status).toBe(200);
    expect(steps(short.record)).toEqual(['openai:status:429', 'anthropic:ok']);
    expect(sleeps).toEqual([]);
    // With room left, the same answer is waited out (once) and retried.
    h.fakes.script('openai', [{ kind: 'status', status: 429, headers: { 'retry-after': '1.9' } }]);
    const roomy = await run(make(10_000));
    expect(steps(roomy.record)).toEqual(['openai:status:429', 'openai:ok']);
    expect(sleeps.map((s) => s.ms)).toEqual([1900]);
    for (const s of sleeps) expect(s.ms).toBeLessThan(s.left);
  });

  test('a hang past the first-byte timeout counts as a timeout and falls back', async () => {
    // The 300 ms timeout is OpenAI's (it hangs); Anthropic's answer is waited for as long as it takes.
    const r = router({ providers: shortFirstByteTimeoutFor(['openai'], 300) });
    h.fakes.script('openai', [{ kind: 'hang' }, { kind: 'hang' }]);
    const t0 = Date.now();
    const { sink, record, hits } = await r.call('/v1/chat/completions', chatBody());
    expect(sink.status).toBe(200);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(600);
    expect(hits).toEqual({ openai: 2, anthropic: 1, mistral: 0 });
    expect(steps(record)).toEqual(['openai:timeout', 'openai:timeout', 'anthropic:ok']);
    expect(record.fallbackChain[0].latencyMs).toBeGreaterThanOrEqual(290);
  });

  test('a slow first byte under the timeout is simply waited for', async () => {
    // 300 ms is slow and well under the timeout: a margin a loaded runner's pauses cannot eat.
    const r = router({ providers: new ProviderHttpClient({ firstByteTimeoutMs: 3_000 }) });
    h.fakes.script('openai', [{ kind: 'delay', ms: 300 }]);
    const { sink, record } = await r.call('/v1/chat/completions', chatBody());
    expect(sink.status).toBe(200);
    expect(steps(record)).toEqual(['openai:ok']);
  });

  test('connection refused (a closed 127.0.0.1 port) falls back', async () => {
    const port = await freePort();
    const providers = { ...h.cell.config.providers, openai: { kind: 'openai' as const, baseUrl: `http://127.0.0.1:${port}` } };
    const r = router({ config: { ...h.cell.config, providers } });
    const { sink, json, record, hits } = await r.call('/v1/chat/completions', chatBody());
    expect(sink.status).toBe(200);
    expect(json.choices[0].message.content).toBe('Echo: hello there');
    expect(hits).toEqual({ openai: 0, anthropic: 1, mistral: 0 });
    expect(steps(record)).toEqual(['openai:connection', 'openai:connection', 'anthropic:ok']);
  });

  test('the request deadline bounds the whole chain: hangs everywhere → 504', async () => {
    // A 2 s deadline (700 ms left the reads and the Decrypt before the call, moto on a loaded runner,
    // too little): still far below the 5 s first-byte timeout, which would otherwise end the hang.
    const r = router({ config: { ...h.cell.config, requestDeadlineMs: 2_000 }, providers: new ProviderHttpClient({ firstByteTimeoutMs: 5_000 }) });
    h.fakes.script('openai', [{ kind: 'hang' }]);
    const t0 = Date.now();
    const { sink, json, record, hits } = await r.call('/v1/chat/completions', chatBody('duo'));
    const took = Date.now() - t0;
    expect(sink.status).toBe(504);
    expect(json.error).toMatchObject({ code: 'upstream_unavailable', type: 'server_error' });
    expect(took).toBeLessThan(4_500);
    expect(hits.openai).toBe(1);
    expect(record.fallbackChain.at(-1)?.outcome).toMatch(/^(timeout|deadline)$/);
    expect(record.status).toBe(504);
  });
});

describe('client errors are handed back, never retried or fallen back', () => {
  test.each([400, 404, 422])('primary %i → that status with the provider\'s message, only one call', async (status) => {
    const r = router();
    h.fakes.script('openai', [{ kind: 'status', status, body: { error: { message: `Invalid value for 'temperature' (${status})`, type: 'invalid_request_error' } } }]);
    const { sink, json, record, hits } = await r.call('/v1/chat/completions', chatBody());
    expect(sink.status).toBe(status);
    expect(json).toEqual({ error: { message: expect.stringContaining(`Invalid value for 'temperature' (${status})`), type: expect.any(String), code: 'upstream_rejected_request' } });
    expect(json.error.message).toContain('openai');
    expect(hits).toEqual({ openai: 1, anthropic: 0, mistral: 0 });
    expect(steps(record)).toEqual([`openai:client_error:${status}`]);
    expect(record).toMatchObject({ status, decision: 'client_error', provider: 'openai' });
    expect(r.sleeps).toEqual([]);
  });

  test('on /v1/messages the provider\'s 400 comes back in the Anthropic shape', async () => {
    const r = router();
    h.fakes.script('openai', [{ kind: 'status', status: 400, body: { error: { message: 'messages: bad role' } } }]);
    const { sink, json, hits } = await r.call('/v1/messages', messagesBody());
    expect(sink.status).toBe(400);
    expect(json).toEqual({ type: 'error', error: { type: 'invalid_request_error', message: expect.stringContaining('messages: bad role'), code: 'upstream_rejected_request' } });
    expect(hits).toEqual({ openai: 1, anthropic: 0, mistral: 0 });
  });

  test('a provider 401 is not fallen back and never echoes the stored key', async () => {
    const r = router();
    h.fakes.setKey('openai', 'sk-some-other-key-the-fake-wants');
    try {
      const { sink, json, record, hits } = await r.call('/v1/chat/completions', chatBody());
      expect(sink.status).toBe(502);
      expect(json.error.code).toBe('provider_rejected_key');
      expect(json.error.message).toMatch(/openai rejected the stored API key/);
      expect(json.error.message).toContain('/vault/secrets/openai/default');
      expect(hits).toEqual({ openai: 1, anthropic: 0, mistral: 0 });
      expect(steps(record)).toEqual(['openai:client_error:401']);
      const key = FAKE_PROVIDER_KEYS.openai;
      for (let i = 0; i + 8 <= key.length; i++) expect(sink.body).not.toContain(key.slice(i, i + 8));
    } finally {
      h.fakes.setKey('openai', FAKE_PROVIDER_KEYS.openai);
    }
  });

  test('a provider 400 that quotes the key (whole or in pieces) is redacted', async () => {
    const r = router();
    const key = FAKE_PROVIDER_KEYS.openai;
    h.fakes.script('openai', [{ kind: 'status', status: 400, body: { error: { message: `key ${key} / prefix ${key.slice(0, 10)}*** / suffix ***${key.slice(-9)} is invalid for this org` } } }]);
    const { sink, json } = await r.call('/v1/chat/completions', chatBody());
    expect(sink.status).toBe(400);
    expect(json.error.message).toContain('[redacted]');
    for (let i = 0; i + 8 <= key.length; i++) expect(sink.body).not.toContain(key.slice(i, i + 8));
  });
});

describe('every target failing', () => {
  test('all 5xx → 502 in the OpenAI error shape, chain lists every attempt', async () => {
    const r = router();
    for (const p of ['openai', 'anthropic', 'mistral'] as const) h.fakes.script(p, [{ kind: 'status', status: 500 }, { kind: 'status', status: 503 }]);
    const { sink, json, record, hits } = await r.call('/v1/chat/completions', chatBody());
    expect(sink.status).toBe(502);
    expect(json).toEqual({ error: { message: expect.stringContaining('No provider could serve the request'), type: 'server_error', code: 'upstream_unavailable' } });
    expect(hits).toEqual({ openai: 2, anthropic: 2, mistral: 2 });
    expect(steps(record)).toEqual([
      'openai:status:500',
      'openai:status:503',
      'anthropic:status:500',
      'anthropic:status:503',
      'mistral:status:500',
      'mistral:status:503',
    ]);
    expect(record).toMatchObject({ status: 502, decision: 'failed:upstream_unavailable' });
    expect(record.provider).toBeUndefined();
  });

  test('all 429 → 429 rate_limit_error; in the Anthropic shape on /v1/messages', async () => {
    const r = router();
    for (const p of ['openai', 'anthropic'] as const) h.fakes.script(p, [{ kind: 'status', status: 429 }, { kind: 'status', status: 429 }]);
    const a = await r.call('/v1/chat/completions', chatBody('duo'));
    expect(a.sink.status).toBe(429);
    expect(a.json.error).toMatchObject({ type: 'rate_limit_error', code: 'upstream_unavailable' });
    for (const p of ['openai', 'anthropic'] as const) h.fakes.script(p, [{ kind: 'status', status: 429 }, { kind: 'status', status: 429 }]);
    const b = await r.call('/v1/messages', messagesBody('duo'));
    expect(b.sink.status).toBe(429);
    // The fakes' 429s say Retry-After: 1; the client is told the same, in the header and the body.
    expect(b.json).toEqual({ type: 'error', error: { type: 'rate_limit_error', message: expect.any(String), code: 'upstream_unavailable', retry_after_seconds: 1 } });
    expect(b.sink.headers['retry-after']).toBe('1');
  });

  test('all 5xx on /v1/messages → 502 in the Anthropic shape', async () => {
    const r = router();
    for (const p of ['openai', 'anthropic'] as const) h.fakes.script(p, [{ kind: 'status', status: 500 }, { kind: 'status', status: 500 }]);
    const { sink, json } = await r.call('/v1/messages', messagesBody('duo'));
    expect(sink.status).toBe(502);
    expect(json).toEqual({ type: 'error', error: { type: 'api_error', message: expect.stringContaining('No provider could serve the request'), code: 'upstream_unavailable' } });
  });

  test('timeouts everywhere → 504', async () => {
    const r = router({ providers: new ProviderHttpClient({ firstByteTimeoutMs: 200 }) });
    for (const p of ['openai', 'anthropic'] as const) h.fakes.script(p, [{ kind: 'hang' }, { kind: 'hang' }]);
    const { sink, json, record } = await r.call('/v1/chat/completions', chatBody('duo'));
    expect(sink.status).toBe(504);
    expect(json.error.code).toBe('upstream_unavailable');
    expect(steps(record)).toEqual(['openai:timeout', 'openai:timeout', 'anthropic:timeout', 'anthropic:timeout']);
  });
});

describe('circuit breaker', () => {
  test('opens after repeated failures; the primary is then skipped without being contacted', async () => {
    let clock = 1_000_000;
    const breaker = new CircuitBreaker({ failureThreshold: 2, coolDownMs: 10_000, now: () => clock });
    const r = router({ breaker });
    h.fakes.script('openai', [
      { kind: 'status', status: 500 },
      { kind: 'status', status: 500 },
    ]);
    const first = await r.call('/v1/chat/completions', chatBody());
    expect(first.sink.status).toBe(200);
    expect(steps(first.record)).toEqual(['openai:status:500', 'openai:status:500', 'anthropic:ok']);

    const second = await r.call('/v1/chat/completions', chatBody());
    expect(second.sink.status).toBe(200);
    expect(second.hits).toEqual({ openai: 0, anthropic: 1, mistral: 0 });
    expect(second.record.fallbackChain[0]).toEqual({ provider: 'openai', model: 'gpt-4o-mini', outcome: 'breaker_open', latencyMs: 0 });
    expect(steps(second.record)).toEqual(['openai:breaker_open', 'anthropic:ok']);

    // The circuit is per endpoint: a direct request for another OpenAI model is refused too.
    const direct = await r.call('/v1/chat/completions', chatBody('gpt-4o'));
    expect(direct.sink.status).toBe(502);
    expect(direct.hits.openai).toBe(0);
    expect(steps(direct.record)).toEqual(['openai:breaker_open']);

    // After the cool-down, one trial goes through; success closes the circuit.
    clock += 10_000;
    const trial = await r.call('/v1/chat/completions', chatBody());
    expect(trial.hits).toEqual({ openai: 1, anthropic: 0, mistral: 0 });
    expect(steps(trial.record)).toEqual(['openai:ok']);
    const after = await r.call('/v1/chat/completions', chatBody());
    expect(steps(after.record)).toEqual(['openai:ok']);
  });

  test('a failed half-open trial re-opens the circuit', async () => {
    let clock = 5_000_000;
    const breaker = new CircuitBreaker({ failureThreshold: 1, coolDownMs: 1_000, now: () => clock });
    const r = router({ breaker });
    h.fakes.script('openai', [{ kind: 'status', status: 503 }]);
    expect(steps((await r.call('/v1/chat/completions', chatBody())).record)).toEqual(['openai:status:503', 'anthropic:ok']);
    clock += 1_000;
    h.fakes.script('openai', [{ kind: 'status', status: 503 }]);
    const trial = await r.call('/v1/chat/completions', chatBody());
    expect(trial.hits.openai).toBe(1);
    expect(steps(trial.record)).toEqual(['openai:status:503', 'anthropic:ok']);
    const skipped = await r.call('/v1/chat/completions', chatBody());
    expect(skipped.hits.openai).toBe(0);
    expect(steps(skipped.record)[0]).toBe('openai:breaker_open');
  });

  test('provider 4xx answers do not count against the breaker', async () => {
    const breaker = new CircuitBreaker({ failureThreshold: 1, coolDownMs: 60_000 });
    const r = router({ breaker });
    h.fakes.script('openai', [{ kind: 'status', status: 400 }]);
    expect((await r.call('/v1/chat/completions', chatBody())).sink.status).toBe(400);
    const next = await r.call('/v1/chat/completions', chatBody());
    expect(steps(next.record)).toEqual(['openai:ok']);
  });
});
