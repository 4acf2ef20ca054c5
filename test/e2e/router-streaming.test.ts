/**
 * Streaming through the router: time to first token, slow upstreams, and upstream streams that
 * break (socket cut) or report an error mid-way, in all four client/target combinations. A broken
 * stream must end the client's stream with one well-formed error event in the client's format and
 * nothing after it: no [DONE], no message_stop, so no SDK mistakes a truncated answer for a whole one.
 */
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ProviderClient } from '../../lambda/core/router/provider-port';
import { MemorySink } from '../../lambda/core/router/response-sink';
import type { FakeBehavior } from '../support/fake-providers';
import { parseSse, RouterHarness, startRouterHarness } from '../support/router-harness';

let h: RouterHarness;
let invoke: string;

beforeAll(async () => {
  h = await startRouterHarness();
  ({ invokeToken: invoke } = await h.tenant('stream-co'));
}, 60_000);
afterAll(() => h?.close());
afterEach(() => {
  for (const p of ['openai', 'anthropic', 'mistral'] as const) expect(h.fakes.pending(p)).toBe(0);
});

type Combo = { name: string; path: '/v1/chat/completions' | '/v1/messages'; model: string; provider: 'openai' | 'anthropic' | 'mistral'; client: 'openai' | 'anthropic' };
const COMBOS: Combo[] = [
  { name: 'OpenAI client → OpenAI', path: '/v1/chat/completions', model: 'gpt-4o-mini', provider: 'openai', client: 'openai' },
  { name: 'OpenAI client → Anthropic', path: '/v1/chat/completions', model: 'claude-haiku-4-5', provider: 'anthropic', client: 'openai' },
  { name: 'Anthropic client → Anthropic', path: '/v1/messages', model: 'claude-haiku-4-5', provider: 'anthropic', client: 'anthropic' },
  { name: 'Anthropic client → OpenAI', path: '/v1/messages', model: 'gpt-4o-mini', provider: 'openai', client: 'anthropic' },
  { name: 'Anthropic client → Mistral', path: '/v1/messages', model: 'mistral-small-latest', provider: 'mistral', client: 'anthropic' },
];

const LONG = 'one two three four five six seven eight nine ten eleven twelve';
const body = (c: Combo, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model: c.model, stream: true, messages: [{ role: 'user', content: LONG }], ...(c.client === 'anthropic' ? { max_tokens: 100 } : {}), ...extra });

/** Asserts a complete, well-formed stream in the client's format; returns the text. */
function completeText(c: Combo, raw: string): string {
  const events = parseSse(raw);
  if (c.client === 'openai') {
    expect(events.at(-1)?.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    expect(chunks.some((ch) => 'error' in ch)).toBe(false);
    return chunks.map((ch) => ch.choices?.[0]?.delta?.content ?? '').join('');
  }
  expect(events[0].event).toBe('message_start');
  expect(events.at(-1)?.event).toBe('message_stop');
  expect(events.some((e) => e.event === 'error')).toBe(false);
  return events
    .filter((e) => e.event === 'content_block_delta')
    .map((e) => JSON.parse(e.data).delta.text ?? '')
    .join('');
}

/** Asserts a stream ended by exactly one error event, last, with nothing claiming completion. */
function brokenStream(c: Combo, raw: string): { message: string; type: string } {
  expect(raw.endsWith('\n\n')).toBe(true);
  const events = parseSse(raw);
  const last = events.at(-1)!;
  if (c.client === 'openai') {
    expect(events.some((e) => e.data === '[DONE]')).toBe(false);
    expect(raw).not.toContain('[DONE]');
    expect(last.event).toBeUndefined();
    expect(raw).toMatch(/(^|\n\n)data: \{"error":\{[^\n]*\}\}\n\n$/);
    const payload = JSON.parse(last.data);
    expect(Object.keys(payload)).toEqual(['error']);
    expect(payload.error).toMatchObject({ message: expect.any(String), type: expect.any(String) });
    // Everything before the error is a valid chunk; no finish_reason was claimed.
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    expect(chunks.every((ch) => ch.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks.some((ch) => ch.choices?.[0]?.finish_reason)).toBe(false);
    expect(events.filter((e) => JSON.parse(e.data).error)).toHaveLength(1);
    return payload.error;
  }
  expect(last.event).toBe('error');
  expect(raw).toMatch(/(^|\n\n)event: error\ndata: \{[^\n]*\}\n\n$/);
  const payload = JSON.parse(last.data);
  expect(payload).toMatchObject({ type: 'error', error: { type: expect.any(String), message: expect.any(String) } });
  expect(events.some((e) => e.event === 'message_stop')).toBe(false);
  expect(events.some((e) => e.event === 'message_delta')).toBe(false);
  expect(events.filter((e) => e.event === 'error')).toHaveLength(1);
  for (const e of events.slice(0, -1)) expect(JSON.parse(e.data).type).toBe(e.event);
  return payload.error;
}

describe.each(COMBOS)('$name', (c) => {
  test('complete stream: text, TTFT within the latency, decision ok', async () => {
    const { sink, record } = await h.call({ path: c.path, body: body(c) }, invoke);
    expect(sink.status).toBe(200);
    expect(sink.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(sink.ended).toBe(true);
    expect(completeText(c, sink.body)).toBe(`Echo: ${LONG}`);
    expect(record).toMatchObject({ stream: true, status: 200, decision: 'ok', provider: c.provider });
    expect(record?.timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
    expect(record!.timeToFirstTokenMs!).toBeLessThanOrEqual(record!.latencyMs);
    expect(record?.outputTokens).toBe(13);
  });

  test('slow first byte (delay) still streams, and TTFT reflects the wait', async () => {
    h.fakes.script(c.provider, [{ kind: 'delay', ms: 400 }]);
    const { sink, record } = await h.call({ path: c.path, body: body(c) }, invoke);
    expect(sink.status).toBe(200);
    expect(completeText(c, sink.body)).toBe(`Echo: ${LONG}`);
    expect(record?.decision).toBe('ok');
    expect(record!.timeToFirstTokenMs!).toBeGreaterThanOrEqual(390);
    expect(record!.timeToFirstTokenMs!).toBeLessThanOrEqual(record!.latencyMs);
  });

  test.each<[string, FakeBehavior]>([
    ['socket cut after 4 events', { kind: 'break-stream', afterEvents: 4 }],
    ['socket cut before any event', { kind: 'break-stream', afterEvents: 0 }],
    ['provider error event after 4 events', { kind: 'stream-error', afterEvents: 4, message: 'Overloaded mid-answer', type: 'overloaded_error' }],
  ])('broken upstream (%s): one error event ends the stream, decision upstream_stream_broken', async (_label, behavior) => {
    h.fakes.script(c.provider, [behavior]);
    const { sink, record } = await h.call({ path: c.path, body: body(c) }, invoke);
    expect(sink.status).toBe(200);
    expect(sink.ended).toBe(true);
    const error = brokenStream(c, sink.body);
    // The provider's error type is kept; its free text is not echoed (it could quote the key).
    if (behavior.kind === 'stream-error') {
      expect(error.message).toContain('overloaded_error');
      expect(error.message).not.toContain('Overloaded mid-answer');
    }
    else expect(error.message).toMatch(/upstream stream|ended before/i);
    expect(record).toMatchObject({ status: 200, decision: 'upstream_stream_broken', provider: c.provider, stream: true });
    // A broken stream is not retried elsewhere once the client has bytes.
    expect(record?.fallbackChain).toEqual([expect.objectContaining({ provider: c.provider, outcome: 'ok' })]);
    if (behavior.kind === 'break-stream' && behavior.afterEvents > 0) {
      expect(record?.timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
    }
  });
});

test('a broken stream is recorded in the metric line with its decision', async () => {
  const c = COMBOS[0];
  h.fakes.script(c.provider, [{ kind: 'break-stream', afterEvents: 2 }]);
  const before = h.metrics.length;
  const { record } = await h.call({ path: c.path, body: body(c) }, invoke);
  const lines = h.metrics.slice(before).map((l) => JSON.parse(l));
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatchObject({ Decision: 'upstream_stream_broken', reason: 'upstream_stream_broken', Provider: 'openai', requestId: record?.requestId });
});

test('the client gets the first token while the upstream is still streaming (no buffering)', async () => {
  // The upstream holds its last event until the client has received something: a router that
  // buffered the answer would never write, and the upstream would give up after 3 s.
  let clientGotBytes!: () => void;
  const gotBytes = new Promise<void>((resolve) => (clientGotBytes = resolve));
  let releasedBy: 'client' | 'timeout' | undefined;
  const enc = new TextEncoder();
  const chunk = (delta: Record<string, unknown>, finish: string | null = null) =>
    `data: ${JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta, finish_reason: finish }] })}\n\n`;
  const providers: ProviderClient = {
    async send() {
      const body = new ReadableStream<Uint8Array>({
        async start(ctrl) {
          ctrl.enqueue(enc.encode(chunk({ role: 'assistant', content: 'first' })));
          releasedBy = await Promise.race([gotBytes.then(() => 'client' as const), new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 3_000))]);
          ctrl.enqueue(enc.encode(chunk({ content: ' last' }) + chunk({}, 'stop') + 'data: [DONE]\n\n'));
          ctrl.close();
        },
      });
      return { status: 200, headers: new Headers({ 'content-type': 'text/event-stream' }), body };
    },
  };
  class SignallingSink extends MemorySink {
    override write(c: string): void {
      super.write(c);
      clientGotBytes();
    }
  }
  const sink = new SignallingSink();
  const record = await h.makeRouter({ providers })(
    { method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json' }, body: body(COMBOS[0]) },
    sink,
  );
  expect(releasedBy).toBe('client');
  expect(completeText(COMBOS[0], sink.body)).toBe('first last');
  expect(record?.timeToFirstTokenMs).toBeLessThanOrEqual(record!.latencyMs);
});

test('include_usage on an OpenAI passthrough stream: the usage chunk reaches the client once', async () => {
  const c = COMBOS[0];
  const { sink, record } = await h.call({ path: c.path, body: body(c, { stream_options: { include_usage: true } }) }, invoke);
  const chunks = parseSse(sink.body)
    .filter((e) => e.data !== '[DONE]')
    .map((e) => JSON.parse(e.data));
  const usage = chunks.filter((ch) => ch.usage);
  expect(usage).toHaveLength(1);
  expect(usage[0].choices).toEqual([]);
  expect(usage[0].usage.completion_tokens).toBe(record?.outputTokens);
});

describe('non-streaming upstream bodies that go wrong after the headers', () => {
  test.each([
    ['/v1/chat/completions', 'gpt-4o-mini', 'openai'],
    ['/v1/chat/completions', 'claude-haiku-4-5', 'anthropic'],
    ['/v1/messages', 'mistral-small-latest', 'mistral'],
  ] as const)('%s → %s: a body cut mid-way is a 502 from the provider, not our internal error', async (path, model, provider) => {
    h.fakes.script(provider, [{ kind: 'break-stream', afterEvents: 1 }]);
    const before = h.logs.length;
    const { sink, json, record } = await h.call({ path, body: JSON.stringify({ model, max_tokens: 20, messages: [{ role: 'user', content: 'hello' }] }) }, invoke);
    expect(sink.status).toBe(502);
    const error = json.error;
    expect(error.code).not.toBe('internal_error');
    if (path === '/v1/messages') expect(json.type).toBe('error');
    expect(record).toMatchObject({ status: 502 });
    expect(record?.decision).toMatch(/^failed:upstream_/);
    expect(h.logs.slice(before).join('\n')).not.toContain('unexpected router error');
  });

  test('a 2xx body that cannot be translated is a 502 upstream_protocol_error', async () => {
    h.fakes.script('openai', [{ kind: 'status', status: 200, body: { id: 'x', choices: 'not-a-list' } }]);
    const before = h.logs.length;
    const { sink, json, record } = await h.call({ path: '/v1/messages', body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 20, messages: [{ role: 'user', content: 'hello' }] }) }, invoke);
    expect(sink.status).toBe(502);
    expect(json).toMatchObject({ type: 'error', error: { type: 'api_error', code: 'upstream_protocol_error' } });
    expect(record?.decision).toBe('failed:upstream_protocol_error');
    expect(h.logs.slice(before).join('\n')).not.toContain('unexpected router error');
  });

  test('a 2xx body that is not JSON is a 502 upstream_protocol_error', async () => {
    const providers: ProviderClient = {
      async send() {
        return { status: 200, headers: new Headers({ 'content-type': 'text/html' }), body: new Response('<html>gateway</html>').body };
      },
    };
    const sink = new MemorySink();
    const record = await h.makeRouter({ providers })(
      { method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }) },
      sink,
    );
    expect(sink.status).toBe(502);
    expect(JSON.parse(sink.body).error.code).toBe('upstream_protocol_error');
    expect(record?.decision).toBe('failed:upstream_protocol_error');
  });
});

test('an upstream stream that stalls past the request deadline is cut with an error event', async () => {
  // A real HTTP server on loopback: headers and one chunk, then silence (socket left open).
  const sockets = new Set<Socket>();
  const server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/event-stream' });
    res.write(`data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini', choices: [{ index: 0, delta: { role: 'assistant', content: 'partial' }, finish_reason: null }] })}\n\n`);
  });
  server.on('connection', (s) => sockets.add(s));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const port = (server.address() as AddressInfo).port;
    const providers = { ...h.cell.config.providers, openai: { kind: 'openai' as const, baseUrl: `http://127.0.0.1:${port}` } };
    // 3 s: the deadline runs from the request's start, so the reads and the Decrypt before the
    // provider call (moto, slow on a loaded runner) must leave the stream time to begin (800 ms was tight).
    const app = h.makeRouter({ config: { ...h.cell.config, providers, requestDeadlineMs: 3_000 } });
    const sink = new MemorySink();
    const t0 = Date.now();
    const record = await app(
      { method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json' }, body: body(COMBOS[0]) },
      sink,
    );
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(2_900);
    expect(took).toBeLessThan(10_000); // a stall that the deadline did not cut would last until the test's timeout
    expect(sink.status).toBe(200);
    expect(sink.body).toContain('partial');
    brokenStream(COMBOS[0], sink.body);
    expect(record?.decision).toBe('upstream_stream_broken');
  } finally {
    for (const s of sockets) s.destroy();
    server.close();
  }
}, 10_000);
