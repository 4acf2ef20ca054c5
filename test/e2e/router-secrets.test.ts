/**
 * Plaintext discipline and canaries through the router. The tenant's provider keys are canaries
 * (`sk-CANARY-...`), each accepted by its fake. Across success, streaming, fallback, upstream
 * 401/400, broken streams, timeouts and total failure:
 * - every data key KMS handed out is zero-filled once the request is over (and before the first
 *   streamed byte reaches the client);
 * - no canary, in clear, base64 or hex, appears in a response, a log or metric line, a usage
 *   record, stdout/stderr, or any item of the cell's four tables;
 * - each fake saw exactly its own canary in its auth header and nothing else of the tenant's.
 */
import { CircuitBreaker } from '../../lambda/core/routing/circuit-breaker';
import type { RouterDeps } from '../../lambda/core/router/router-app';
import { MemorySink } from '../../lambda/core/router/response-sink';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { freePort } from '../support/free-port';
import { canaryHits, captureOutput, makeCanary, OutputCapture } from '../support/canary';
import { dumpTables, parseSse, RouterHarness, SpyDataKeys, startRouterHarness } from '../support/router-harness';
import { shortFirstByteTimeoutFor } from '../support/provider-timeouts';

const TENANT = 'canary-co';
const SOV_TENANT = 'canary-sov';
const CANARY = { openai: makeCanary('O'), anthropic: makeCanary('A'), mistral: makeCanary('M') };
const ALL = Object.values(CANARY);

let h: RouterHarness;
let invoke: string;
let adminToken: string;
let spy: SpyDataKeys;
let sovInvoke: string;
let sovAdmin: string;
let capture: OutputCapture;
const bodies: string[] = [];
const records: UsageRecord[] = [];

beforeAll(async () => {
  h = await startRouterHarness();
  for (const [p, key] of Object.entries(CANARY)) h.fakes.setKey(p as 'openai', key);
  ({ invokeToken: invoke, adminToken } = await h.tenant(TENANT, {
    keys: CANARY,
    policy: {
      routes: {
        resilient: [
          { provider: 'openai', model: 'gpt-4o-mini' },
          { provider: 'anthropic', model: 'claude-haiku-4-5' },
        ],
        trio: [
          { provider: 'openai', model: 'gpt-4o-mini' },
          { provider: 'anthropic', model: 'claude-haiku-4-5' },
          { provider: 'self-hosted', model: 'llama' },
        ],
      },
    },
  }));
  // A sovereign tenant holding the same canaries (each fake accepts one key).
  ({ invokeToken: sovInvoke, adminToken: sovAdmin } = await h.tenant(SOV_TENANT, { mode: 'sovereign', keys: CANARY }));
  spy = new SpyDataKeys(h.cell.dataKeys);
  capture = captureOutput();
}, 60_000);
afterAll(async () => {
  capture?.restore();
  await h?.close();
});
afterEach(() => {
  for (const p of ['openai', 'anthropic', 'mistral'] as const) {
    expect(h.fakes.pending(p)).toBe(0);
    h.fakes.setKey(p, CANARY[p]);
  }
});

/** A router with the spy data keys and instant retries; every response and record is kept. */
function router(overrides: Partial<RouterDeps> = {}) {
  const app = h.makeRouter({ dataKeys: spy, breaker: new CircuitBreaker(), sleep: async () => undefined, ...overrides });
  return async (path: string, body: unknown, opts: { headers?: Record<string, string>; sink?: MemorySink; token?: string } = {}) => {
    const issuedBefore = spy.returned.length;
    const sink = opts.sink ?? new MemorySink();
    const record = await app(
      { method: 'POST', path, headers: { authorization: `Bearer ${opts.token ?? invoke}`, 'content-type': 'application/json', ...opts.headers }, body: JSON.stringify(body) },
      sink,
    );
    bodies.push(sink.body);
    if (record) records.push(record);
    const issued = spy.returned.slice(issuedBefore);
    return { sink, record: record as UsageRecord, issued };
  };
}

const chat = (model: string, extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hello there' }], ...extra });
const msgs = (model: string, extra: Record<string, unknown> = {}) => ({ model, max_tokens: 50, messages: [{ role: 'user', content: 'hello there' }], ...extra });

function expectZeroed(issued: Buffer[], count: number) {
  expect(issued).toHaveLength(count);
  for (const key of issued) {
    expect(key).toHaveLength(32);
    expect(key.every((b) => b === 0)).toBe(true);
  }
}

describe('data keys are zero-filled after every request', () => {
  test('success, non-streaming, each provider', async () => {
    const call = router();
    for (const [path, body] of [
      ['/v1/chat/completions', chat('gpt-4o-mini')],
      ['/v1/messages', msgs('claude-haiku-4-5')],
      ['/v1/messages', msgs('mistral-small-latest')],
      ['/v1/embeddings', { model: 'text-embedding-3-small', input: 'x' }],
      ['/v1/chat/completions', chat('self-hosted/llama')],
      ['/v1/responses', { model: 'gpt-4o-mini', input: 'x' }],
      ['/v1/responses', { model: 'claude-haiku-4-5', input: 'x' }],
    ] as const) {
      const { sink, issued } = await call(path, body);
      expect(sink.status).toBe(200);
      expectZeroed(issued, 1);
    }
  });

  test('streaming: the data key is already zero when the first byte reaches the client', async () => {
    const call = router();
    const zeroAtFirstWrite: boolean[] = [];
    class CheckingSink extends MemorySink {
      override write(c: string): void {
        if (this.chunks.length === 0) zeroAtFirstWrite.push(spy.allZero());
        super.write(c);
      }
    }
    for (const [path, body] of [
      ['/v1/chat/completions', chat('claude-haiku-4-5', { stream: true })],
      ['/v1/messages', msgs('gpt-4o-mini', { stream: true })],
      ['/v1/responses', { model: 'gpt-4o-mini', input: 'x', stream: true }],
      ['/v1/responses', { model: 'claude-haiku-4-5', input: 'x', stream: true }],
    ] as const) {
      const { sink, issued } = await call(path, body, { sink: new CheckingSink() });
      expect(sink.status).toBe(200);
      expectZeroed(issued, 1);
    }
    expect(zeroAtFirstWrite).toEqual([true, true, true, true]);
  });

  test('fallback: one data key per attempt, all zeroed', async () => {
    const call = router();
    h.fakes.script('openai', [
      { kind: 'status', status: 500, body: { error: { message: `upstream trouble near ${CANARY.openai}` } } },
      { kind: 'status', status: 503 },
    ]);
    const { sink, record, issued } = await call('/v1/chat/completions', chat('resilient'));
    expect(sink.status).toBe(200);
    expect(record.fallbackChain.map((s) => s.outcome)).toEqual(['status', 'status', 'ok']);
    expectZeroed(issued, 3);
  });

  test('upstream 401 (the fake expects another key): no fallback, key zeroed, not echoed', async () => {
    const call = router();
    h.fakes.setKey('openai', 'sk-the-fake-wants-this-one-instead');
    const a = await call('/v1/chat/completions', chat('resilient'));
    expect(a.sink.status).toBe(502);
    expectZeroed(a.issued, 1);
    h.fakes.setKey('anthropic', 'sk-ant-another-one');
    const b = await call('/v1/messages', msgs('claude-haiku-4-5', { stream: true }));
    expect(b.sink.status).toBe(502);
    expect(JSON.parse(b.sink.body)).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'provider_rejected_key' } });
    expectZeroed(b.issued, 1);
  });

  test('upstream 400 quoting the key: redacted, key zeroed', async () => {
    const call = router();
    h.fakes.script('mistral', [{ kind: 'status', status: 400, body: { message: `Invalid key: ${CANARY.mistral} (prefix ${CANARY.mistral.slice(0, 12)})` } }]);
    const { sink, issued } = await call('/v1/messages', msgs('mistral-small-latest'));
    expect(sink.status).toBe(400);
    expect(sink.body).toContain('[redacted]');
    expectZeroed(issued, 1);
  });

  test('broken and erroring streams', async () => {
    const call = router();
    h.fakes.script('anthropic', [{ kind: 'break-stream', afterEvents: 3 }]);
    const a = await call('/v1/chat/completions', chat('claude-haiku-4-5', { stream: true }));
    expect(a.record.decision).toBe('upstream_stream_broken');
    expectZeroed(a.issued, 1);
    h.fakes.script('openai', [{ kind: 'stream-error', afterEvents: 2, message: 'server went away' }]);
    const b = await call('/v1/messages', msgs('gpt-4o-mini', { stream: true }));
    expect(b.record.decision).toBe('upstream_stream_broken');
    expectZeroed(b.issued, 1);
  });

  test('timeouts and total failure', async () => {
    // The 200 ms timeout is OpenAI's (it hangs); Anthropic's 500s are waited for as long as they take.
    const call = router({ providers: shortFirstByteTimeoutFor(['openai'], 200) });
    h.fakes.script('openai', [{ kind: 'hang' }, { kind: 'hang' }]);
    h.fakes.script('anthropic', [{ kind: 'status', status: 500 }, { kind: 'status', status: 500 }]);
    const { sink, issued } = await call('/v1/chat/completions', chat('resilient'));
    expect(sink.status).toBe(502);
    expectZeroed(issued, 4);
  });

  test('sovereign tenant: streaming and an upstream 401, data keys zeroed', async () => {
    const call = router();
    const a = await call('/v1/chat/completions', chat('claude-haiku-4-5', { stream: true }), { token: sovInvoke });
    expect(a.sink.status).toBe(200);
    expect(a.record.tenantId).toBe(SOV_TENANT);
    expectZeroed(a.issued, 1);
    h.fakes.setKey('mistral', 'another-key-entirely-123');
    const b = await call('/v1/messages', msgs('mistral-small-latest'), { token: sovInvoke });
    expect(b.sink.status).toBe(502);
    expectZeroed(b.issued, 1);
  });

  test('connection refused', async () => {
    const providers = { ...h.cell.config.providers, openai: { kind: 'openai' as const, baseUrl: `http://127.0.0.1:${await freePort()}` } };
    const call = router({ config: { ...h.cell.config, providers } });
    const { sink, issued } = await call('/v1/chat/completions', chat('resilient'));
    expect(sink.status).toBe(200);
    expectZeroed(issued, 3);
  });
});

describe('canaries', () => {
  test('a provider that quotes the key in a mid-stream error does not get it echoed to the client', async () => {
    const call = router();
    h.fakes.script('openai', [{ kind: 'stream-error', afterEvents: 2, message: `Incorrect API key provided: ${CANARY.openai}` }]);
    const { sink, record } = await call('/v1/chat/completions', chat('gpt-4o-mini', { stream: true }));
    expect(record.decision).toBe('upstream_stream_broken');
    const last = parseSse(sink.body).at(-1)!;
    expect(JSON.parse(last.data).error).toBeDefined();
    expect(canaryHits(sink.body, ALL)).toEqual([]);
  });

  test('Responses passthrough: an upstream error event quoting the key is not forwarded', async () => {
    const call = router();
    h.fakes.script('openai', [{ kind: 'stream-error', afterEvents: 2, message: `Incorrect API key provided: ${CANARY.openai}` }]);
    const { sink, record } = await call('/v1/responses', { model: 'gpt-4o-mini', input: 'x', stream: true });
    expect(record.decision).toBe('upstream_stream_broken');
    expect(parseSse(sink.body).at(-1)?.event).toBe('response.failed');
    expect(canaryHits(sink.body, ALL)).toEqual([]);
  });

  test('Anthropic passthrough: an upstream error event quoting the key is not forwarded', async () => {
    const call = router();
    h.fakes.script('anthropic', [{ kind: 'stream-error', afterEvents: 0, message: `key ${CANARY.anthropic} suspended`, type: 'authentication_error' }]);
    const { sink } = await call('/v1/messages', msgs('claude-haiku-4-5', { stream: true }));
    expect(parseSse(sink.body).at(-1)?.event).toBe('error');
    expect(canaryHits(sink.body, ALL)).toEqual([]);
  });

  test('no canary anywhere: responses, logs, metrics, usage records, stdout/stderr, DynamoDB', async () => {
    expect(bodies.length).toBeGreaterThan(15);
    expect(canaryHits(bodies.join('\n'), ALL)).toEqual([]);
    expect(canaryHits(h.logs.join('\n'), ALL)).toEqual([]);
    // One structured line per request (ids, route, status, timings, cost), each naming its request.
    const requestLines = h.logs.map((l) => JSON.parse(l)).filter((l) => l.message === 'request');
    expect(requestLines.length).toBeGreaterThanOrEqual(records.length);
    for (const r of records) expect(requestLines.filter((l) => l.requestId === r.requestId)).toHaveLength(1);
    expect(requestLines.filter((l) => l.status === 200 && l.tenantId === TENANT && typeof l.tokenId === 'string' && typeof l.latencyMs === 'number').length).toBeGreaterThan(5);
    expect(h.metrics.length).toBeGreaterThan(15);
    expect(canaryHits(h.metrics.join('\n'), ALL)).toEqual([]);
    expect(records.length).toBeGreaterThan(15);
    expect(canaryHits(JSON.stringify(records), ALL)).toEqual([]);
    expect(canaryHits(capture.text(), ALL)).toEqual([]);
    const tables = await dumpTables(h);
    expect(tables).toContain('SECRET#openai#default');
    expect(tables).toContain(`REQ#${TENANT}`);
    expect(canaryHits(tables, ALL)).toEqual([]);
    // Nor the tenant's own tokens.
    for (const t of [invoke, adminToken, sovInvoke, sovAdmin]) {
      expect(tables).not.toContain(t);
      expect(h.logs.join('\n')).not.toContain(t);
      expect(bodies.join('\n')).not.toContain(t);
    }
  });

  test("each fake saw exactly its own canary and nothing else of the tenant's", async () => {
    expect(h.fakes.requests.length).toBeGreaterThan(15);
    const tokenRandoms = [invoke, sovInvoke].map((t) => t.split('_').at(-1)!);
    for (const r of h.fakes.requests) {
      const expected = r.provider === 'anthropic' ? CANARY.anthropic : CANARY[r.provider as keyof typeof CANARY];
      if (r.provider === 'anthropic') {
        expect(r.headers['x-api-key']).toBe(expected);
        expect(r.headers.authorization).toBeUndefined();
      } else {
        expect(r.headers.authorization).toBe(`Bearer ${expected}`);
        expect(r.headers['x-api-key']).toBeUndefined();
      }
      const others = ALL.filter((c) => c !== expected);
      const seen = JSON.stringify({ headers: r.headers, body: r.body, path: r.path });
      expect(canaryHits(seen, others)).toEqual([]);
      // The key appears once: in its auth header, never in the body or elsewhere.
      expect(seen.split(expected).length - 1).toBe(1);
      for (const leak of ['sr_', ...tokenRandoms, invoke, adminToken, sovInvoke, sovAdmin, TENANT, SOV_TENANT, 'sovereign-router', 'x-amz', 'x-tenant']) {
        expect(seen.toLowerCase()).not.toContain(leak.toLowerCase());
      }
      expect(Object.keys(r.headers).sort()).toEqual(
        expect.arrayContaining(r.provider === 'anthropic' ? ['anthropic-version', 'content-type', 'x-api-key'] : ['authorization', 'content-type']),
      );
      const allowed = new Set(['accept', 'accept-encoding', 'accept-language', 'anthropic-version', 'authorization', 'connection', 'content-length', 'content-type', 'host', 'sec-fetch-mode', 'user-agent', 'x-api-key']);
      expect(Object.keys(r.headers).filter((k) => !allowed.has(k))).toEqual([]);
    }
  });
});
