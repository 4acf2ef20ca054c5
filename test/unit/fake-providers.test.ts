import { SseParser, type SseEvent } from '../../lambda/core/sse';
import {
  DEFAULT_FAKE_KEYS,
  fakeEmbedding,
  startFakeProviders,
  type FakeProviderName,
  type FakeProviders,
} from '../support/fake-providers';
import { waitUntil } from '../support/wait';

let fakes: FakeProviders;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;
/** fetch's json() is typed unknown; these tests poke at known wire shapes. */
const jsonOf = (res: Response): Promise<Json> => res.json() as Promise<Json>;

beforeAll(async () => {
  fakes = await startFakeProviders();
});
afterAll(async () => {
  await fakes.close();
});
beforeEach(() => fakes.reset());

function headersFor(provider: FakeProviderName, key = DEFAULT_FAKE_KEYS[provider]): Record<string, string> {
  const h: Record<string, string> = { 'content-type': 'application/json' };
  if (provider === 'anthropic') {
    h['x-api-key'] = key;
    h['anthropic-version'] = '2023-06-01';
  } else h.authorization = `Bearer ${key}`;
  return h;
}

function post(provider: FakeProviderName, path: string, body: unknown, init: RequestInit = {}): Promise<Response> {
  return fetch(`${fakes[provider].baseUrl}${path}`, {
    method: 'POST',
    headers: headersFor(provider),
    body: JSON.stringify(body),
    ...init,
  });
}

const chatBody = (extra: Record<string, unknown> = {}) => ({
  model: 'gpt-4o-mini',
  messages: [
    { role: 'system', content: 'Be nice.' },
    { role: 'user', content: 'hello there friend' },
  ],
  ...extra,
});

const messagesBody = (extra: Record<string, unknown> = {}) => ({
  model: 'claude-haiku-4-5',
  max_tokens: 100,
  system: 'Be nice.',
  messages: [{ role: 'user', content: [{ type: 'text', text: 'hello there friend' }] }],
  ...extra,
});

async function readSse(res: Response): Promise<SseEvent[]> {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  const reader = res.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    events.push(...parser.push(value));
  }
  events.push(...parser.end());
  return events;
}

/** Reads until the stream dies; returns what arrived and the error. */
async function readSseUntilError(res: Response): Promise<{ events: SseEvent[]; error: unknown }> {
  const parser = new SseParser();
  const events: SseEvent[] = [];
  const reader = res.body!.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { events, error: undefined };
      events.push(...parser.push(value));
    }
  } catch (error) {
    return { events, error };
  }
}

const json = (e: SseEvent) => JSON.parse(e.data) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describe('fake OpenAI', () => {
  it('answers a chat completion by echoing the last user message, with usage', async () => {
    const res = await post('openai', '/v1/chat/completions', chatBody());
    expect(res.status).toBe(200);
    const body = await jsonOf(res);
    expect(body).toMatchObject({
      id: 'chatcmpl-fake000001',
      object: 'chat.completion',
      created: 1_700_000_000,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Echo: hello there friend' }, finish_reason: 'stop' }],
      usage: { completion_tokens: 4 },
    });
    expect(body.usage.total_tokens).toBe(body.usage.prompt_tokens + 4);
    expect(fakes.openai.requests).toHaveLength(1);
    expect(fakes.openai.requests[0]).toMatchObject({ provider: 'openai', method: 'POST', path: '/v1/chat/completions', body: chatBody() });
    expect(fakes.openai.requests[0].headers.authorization).toBe(`Bearer ${DEFAULT_FAKE_KEYS.openai}`);
    expect(fakes.requests).toHaveLength(1);
  });

  it('is deterministic', async () => {
    const a = await jsonOf(await post('openai', '/v1/chat/completions', chatBody()));
    fakes.reset();
    const b = await jsonOf(await post('openai', '/v1/chat/completions', chatBody()));
    expect(a).toEqual(b);
  });

  it('cuts at max_completion_tokens (one word per token) and at stop sequences', async () => {
    const cut = await jsonOf(await post('openai', '/v1/chat/completions', chatBody({ max_completion_tokens: 2 })));
    expect(cut.choices[0]).toMatchObject({ message: { content: 'Echo: hello' }, finish_reason: 'length' });
    const stopped = await jsonOf(await post('openai', '/v1/chat/completions', chatBody({ stop: ['there'] })));
    expect(stopped.choices[0]).toMatchObject({ message: { content: 'Echo: hello ' }, finish_reason: 'stop' });
  });

  it('streams chunks without usage unless include_usage is set', async () => {
    const events = await readSse(await post('openai', '/v1/chat/completions', chatBody({ stream: true })));
    expect(events[events.length - 1].data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map(json);
    expect(chunks[0].choices[0].delta).toEqual({ role: 'assistant', content: '', refusal: null });
    expect(chunks.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('Echo: hello there friend');
    expect(chunks[chunks.length - 1].choices[0].finish_reason).toBe('stop');
    for (const c of chunks) expect(c).not.toHaveProperty('usage');
  });

  it('streams a final usage chunk with include_usage', async () => {
    const res = await post('openai', '/v1/chat/completions', chatBody({ stream: true, stream_options: { include_usage: true } }));
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const chunks = (await readSse(res)).slice(0, -1).map(json);
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage.completion_tokens).toBe(4);
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
  });

  it('serves embeddings as floats and as base64 float32', async () => {
    const floats = await jsonOf(await post('openai', '/v1/embeddings', { model: 'text-embedding-3-small', input: ['a', 'b'] }));
    expect(floats).toMatchObject({ object: 'list', model: 'text-embedding-3-small', usage: { prompt_tokens: 2, total_tokens: 2 } });
    expect(floats.data.map((d: { index: number }) => d.index)).toEqual([0, 1]);
    expect(floats.data[0].embedding).toEqual(fakeEmbedding('a', 8));
    const b64 = await jsonOf(
      await post('openai', '/v1/embeddings', { model: 'text-embedding-3-small', input: 'a', encoding_format: 'base64', dimensions: 4 }),
    );
    const buf = Buffer.from(b64.data[0].embedding, 'base64');
    expect(Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / 4))).toEqual(fakeEmbedding('a', 4));
  });

  it('lists models', async () => {
    const res = await fetch(`${fakes.openai.baseUrl}/v1/models`, { headers: headersFor('openai') });
    const body = await jsonOf(res);
    expect(body.object).toBe('list');
    expect(body.data[0]).toMatchObject({ object: 'model', owned_by: 'openai' });
    expect(fakes.openai.requests[0]).toMatchObject({ method: 'GET', path: '/v1/models', body: undefined });
  });

  it('rejects a wrong key with 401 in OpenAI shape, and accepts the key set with setKey', async () => {
    const res = await post('openai', '/v1/chat/completions', chatBody(), { headers: headersFor('openai', 'sk-wrong') });
    expect(res.status).toBe(401);
    const body = await jsonOf(res);
    expect(body).toEqual({ error: { message: 'Incorrect API key provided.', type: 'invalid_request_error', param: null, code: 'invalid_api_key' } });
    expect(JSON.stringify(body)).not.toContain('sk-wrong');
    fakes.setKey('openai', 'sk-tenant-1');
    expect((await post('openai', '/v1/chat/completions', chatBody(), { headers: headersFor('openai', 'sk-tenant-1') })).status).toBe(200);
    expect((await post('openai', '/v1/chat/completions', chatBody())).status).toBe(401);
    expect(fakes.openai.requests).toHaveLength(3);
  });

  it('answers 404 for unknown paths and 400 for bad bodies', async () => {
    expect((await post('openai', '/v1/nope', {})).status).toBe(404);
    expect((await post('openai', '/v1/chat/completions', { model: 'x' })).status).toBe(400);
    const bad = await fetch(`${fakes.openai.baseUrl}/v1/chat/completions`, { method: 'POST', headers: headersFor('openai'), body: '{oops' });
    expect(bad.status).toBe(400);
    expect(fakes.openai.requests[2].body).toBe('{oops');
  });
});

describe('fake Anthropic', () => {
  it('answers a message with usage', async () => {
    const res = await post('anthropic', '/v1/messages', messagesBody());
    expect(res.status).toBe(200);
    const body = await jsonOf(res);
    expect(body).toMatchObject({
      id: 'msg_fake000001',
      type: 'message',
      role: 'assistant',
      model: 'claude-haiku-4-5',
      content: [{ type: 'text', text: 'Echo: hello there friend' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { output_tokens: 4 },
    });
    expect(body.usage.input_tokens).toBeGreaterThan(0);
    expect(fakes.anthropic.requests[0].headers['x-api-key']).toBe(DEFAULT_FAKE_KEYS.anthropic);
  });

  it('reports max_tokens and stop_sequence stops', async () => {
    const cut = await jsonOf(await post('anthropic', '/v1/messages', messagesBody({ max_tokens: 1 })));
    expect(cut).toMatchObject({ content: [{ text: 'Echo:' }], stop_reason: 'max_tokens' });
    const stopped = await jsonOf(await post('anthropic', '/v1/messages', messagesBody({ stop_sequences: ['friend'] })));
    expect(stopped).toMatchObject({ content: [{ text: 'Echo: hello there ' }], stop_reason: 'stop_sequence', stop_sequence: 'friend' });
  });

  it('streams the full event sequence with usage in message_start and message_delta', async () => {
    const events = await readSse(await post('anthropic', '/v1/messages', messagesBody({ stream: true })));
    expect(events.map((e) => e.event)).toEqual([
      'message_start',
      'content_block_start',
      'ping',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    for (const e of events) expect(json(e).type).toBe(e.event);
    expect(json(events[0]).message.usage.input_tokens).toBeGreaterThan(0);
    expect(events.slice(3, 7).map((e) => json(e).delta.text).join('')).toBe('Echo: hello there friend');
    expect(json(events[8])).toEqual({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 4 } });
  });

  it('requires x-api-key and anthropic-version, answering in Anthropic shape', async () => {
    const wrong = await post('anthropic', '/v1/messages', messagesBody(), { headers: headersFor('anthropic', 'sk-ant-wrong') });
    expect(wrong.status).toBe(401);
    expect(await jsonOf(wrong)).toEqual({ type: 'error', error: { type: 'authentication_error', message: 'invalid x-api-key' } });
    const noVersion = await post('anthropic', '/v1/messages', messagesBody(), {
      headers: { 'content-type': 'application/json', 'x-api-key': DEFAULT_FAKE_KEYS.anthropic },
    });
    expect(noVersion.status).toBe(400);
    expect((await jsonOf(noVersion)).error.type).toBe('invalid_request_error');
  });

  it('accepts the key as Authorization: Bearer too, as @anthropic-ai/sdk 1.x sends it', async () => {
    const bearer = (key: string) => ({ authorization: `Bearer ${key}`, 'anthropic-version': '2023-06-01', 'content-type': 'application/json' });
    expect((await post('anthropic', '/v1/messages', messagesBody(), { headers: bearer(DEFAULT_FAKE_KEYS.anthropic) })).status).toBe(200);
    expect((await post('anthropic', '/v1/messages', messagesBody(), { headers: bearer('sk-ant-wrong') })).status).toBe(401);
    const both = { ...bearer(DEFAULT_FAKE_KEYS.anthropic), 'x-api-key': 'sk-ant-wrong' };
    expect((await post('anthropic', '/v1/messages', messagesBody(), { headers: both })).status).toBe(401);
  });

  it('requires max_tokens, as the real API does', async () => {
    const res = await post('anthropic', '/v1/messages', { model: 'c', messages: [{ role: 'user', content: 'x' }] });
    expect(res.status).toBe(400);
    expect((await jsonOf(res)).error.message).toMatch(/max_tokens/);
  });

  it('echoes tool results of the last user turn', async () => {
    const body = await jsonOf(
      await post('anthropic', '/v1/messages', messagesBody({ messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: '18C' }] }] })),
    );
    expect(body.content[0].text).toBe('Echo: 18C');
  });

  it('lists models', async () => {
    const body = await jsonOf(await fetch(`${fakes.anthropic.baseUrl}/v1/models`, { headers: headersFor('anthropic') }));
    expect(body).toMatchObject({ has_more: false, data: [{ type: 'model' }, { type: 'model' }] });
  });
});

describe('fake Mistral', () => {
  const body = (extra: Record<string, unknown> = {}) => ({ ...chatBody(), model: 'mistral-small-latest', ...extra });

  it('answers chat completions in OpenAI shape', async () => {
    const res = await jsonOf(await post('mistral', '/v1/chat/completions', body()));
    expect(res).toMatchObject({ object: 'chat.completion', model: 'mistral-small-latest', choices: [{ message: { content: 'Echo: hello there friend' } }] });
    expect(res.usage.completion_tokens).toBe(4);
  });

  it('streams with usage on the finish chunk, without being asked', async () => {
    const events = await readSse(await post('mistral', '/v1/chat/completions', body({ stream: true })));
    expect(events[events.length - 1].data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map(json);
    const last = chunks[chunks.length - 1];
    expect(last.choices[0].finish_reason).toBe('stop');
    expect(last.usage.completion_tokens).toBe(4);
  });

  it('serves embeddings', async () => {
    const res = await jsonOf(await post('mistral', '/v1/embeddings', { model: 'mistral-embed', input: ['x'] }));
    expect(res).toMatchObject({ object: 'list', model: 'mistral-embed', data: [{ object: 'embedding', index: 0 }] });
    expect(res.id).toMatch(/^embd-/);
  });

  it('rejects a wrong key with 401', async () => {
    const res = await post('mistral', '/v1/chat/completions', body(), { headers: headersFor('mistral', 'nope') });
    expect(res.status).toBe(401);
    expect(await jsonOf(res)).toMatchObject({ object: 'error', message: 'Unauthorized' });
  });
});

describe('scripted behaviors', () => {
  it.each([
    ['openai', '/v1/chat/completions', chatBody(), (b: any) => b.error.code, 'rate_limit_exceeded'], // eslint-disable-line @typescript-eslint/no-explicit-any
    ['anthropic', '/v1/messages', messagesBody(), (b: any) => b.error.type, 'rate_limit_error'], // eslint-disable-line @typescript-eslint/no-explicit-any
    ['mistral', '/v1/chat/completions', chatBody(), (b: any) => b.code, 'rate_limit_exceeded'], // eslint-disable-line @typescript-eslint/no-explicit-any
  ] as const)('%s: status 429 in the provider shape with retry-after, then back to normal', async (provider, path, reqBody, pick, expected) => {
    fakes.script(provider, [{ kind: 'status', status: 429 }]);
    expect(fakes.pending(provider)).toBe(1);
    const res = await post(provider, path, reqBody);
    expect(res.status).toBe(429);
    expect(res.headers.get('retry-after')).toBe('1');
    expect(pick(await jsonOf(res))).toBe(expected);
    expect(fakes.pending(provider)).toBe(0);
    expect((await post(provider, path, reqBody)).status).toBe(200);
  });

  it('consumes statuses FIFO, with custom bodies', async () => {
    fakes.script('openai', [
      { kind: 'status', status: 500 },
      { kind: 'status', status: 503, body: { custom: true } },
      { kind: 'status', status: 400 },
    ]);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await post('openai', '/v1/chat/completions', chatBody())).status);
    expect(statuses).toEqual([500, 503, 400, 200]);
    fakes.script('anthropic', [{ kind: 'status', status: 503 }, { kind: 'status', status: 500 }]);
    const overloaded = await jsonOf(await post('anthropic', '/v1/messages', messagesBody()));
    expect(overloaded.error.type).toBe('overloaded_error');
    expect((await jsonOf(await post('anthropic', '/v1/messages', messagesBody()))).error.type).toBe('api_error');
  });

  it('does not consume a behavior on a request that fails auth', async () => {
    fakes.script('openai', [{ kind: 'status', status: 500 }]);
    await post('openai', '/v1/chat/completions', chatBody(), { headers: headersFor('openai', 'bad') });
    expect(fakes.pending('openai')).toBe(1);
  });

  it('applies behaviors to embeddings too', async () => {
    fakes.script('mistral', [{ kind: 'status', status: 503 }]);
    expect((await post('mistral', '/v1/embeddings', { model: 'mistral-embed', input: 'x' })).status).toBe(503);
  });

  it('delay: holds the first byte, then answers normally', async () => {
    fakes.script('anthropic', [{ kind: 'delay', ms: 300 }]);
    const t0 = Date.now();
    const res = await post('anthropic', '/v1/messages', messagesBody());
    expect(Date.now() - t0).toBeGreaterThanOrEqual(280);
    expect(res.status).toBe(200);
  });

  it('hang: never answers, so the client times out; the next request is normal', async () => {
    fakes.script('openai', [{ kind: 'hang' }]);
    const t0 = Date.now();
    await expect(post('openai', '/v1/chat/completions', chatBody(), { signal: AbortSignal.timeout(200) })).rejects.toThrow();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);
    expect((await post('openai', '/v1/chat/completions', chatBody())).status).toBe(200);
  });

  it.each(['openai', 'mistral'] as const)('%s break-stream: the socket dies after n events', async (provider) => {
    fakes.script(provider, [{ kind: 'break-stream', afterEvents: 2 }]);
    const res = await post(provider, '/v1/chat/completions', chatBody({ stream: true }));
    expect(res.status).toBe(200);
    const { events, error } = await readSseUntilError(res);
    expect(error).toBeDefined();
    expect(events).toHaveLength(2);
    expect(events.some((e) => e.data === '[DONE]')).toBe(false);
  });

  it('anthropic break-stream: no message_stop arrives', async () => {
    fakes.script('anthropic', [{ kind: 'break-stream', afterEvents: 4 }]);
    const { events, error } = await readSseUntilError(await post('anthropic', '/v1/messages', messagesBody({ stream: true })));
    expect(error).toBeDefined();
    expect(events.map((e) => e.event)).toEqual(['message_start', 'content_block_start', 'ping', 'content_block_delta']);
  });

  it('break-stream on a non-streaming request cuts the body short', async () => {
    fakes.script('openai', [{ kind: 'break-stream', afterEvents: 0 }]);
    const res = await post('openai', '/v1/chat/completions', chatBody());
    await expect(res.json()).rejects.toThrow();
  });

  it('stream-error: sends the provider error event then ends cleanly', async () => {
    fakes.script('anthropic', [{ kind: 'stream-error', afterEvents: 2, type: 'overloaded_error', message: 'Overloaded' }]);
    const events = await readSse(await post('anthropic', '/v1/messages', messagesBody({ stream: true })));
    expect(events[2]).toEqual({ event: 'error', data: JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }) });
    expect(events).toHaveLength(3);
    fakes.script('openai', [{ kind: 'stream-error', afterEvents: 1 }]);
    const oa = await readSse(await post('openai', '/v1/chat/completions', chatBody({ stream: true })));
    expect(json(oa[1]).error.type).toBe('server_error');
  });

  describe('tool-call', () => {
    const args = { city: 'Paris', days: [1, 2] };

    it('openai: non-streaming and streamed argument fragments', async () => {
      fakes.script('openai', [{ kind: 'tool-call', name: 'weather', arguments: args }, { kind: 'tool-call', name: 'weather', arguments: args }]);
      const body = await jsonOf(await post('openai', '/v1/chat/completions', chatBody()));
      expect(body.choices[0]).toMatchObject({
        message: { content: null, tool_calls: [{ type: 'function', function: { name: 'weather', arguments: JSON.stringify(args) } }] },
        finish_reason: 'tool_calls',
      });
      expect(body.choices[0].message.tool_calls[0].id).toMatch(/^call_/);
      const chunks = (await readSse(await post('openai', '/v1/chat/completions', chatBody({ stream: true })))).slice(0, -1).map(json);
      expect(chunks[0].choices[0].delta.tool_calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'weather', arguments: '' } });
      const streamed = chunks.flatMap((c) => c.choices[0].delta.tool_calls ?? []).map((t: any) => t.function.arguments).join(''); // eslint-disable-line @typescript-eslint/no-explicit-any
      expect(JSON.parse(streamed)).toEqual(args);
      expect(chunks.length).toBeGreaterThan(3);
      expect(chunks[chunks.length - 1].choices[0].finish_reason).toBe('tool_calls');
    });

    it('anthropic: tool_use block and input_json_delta fragments', async () => {
      fakes.script('anthropic', [{ kind: 'tool-call', name: 'weather', arguments: args }, { kind: 'tool-call', name: 'weather', arguments: args }]);
      const body = await jsonOf(await post('anthropic', '/v1/messages', messagesBody()));
      expect(body).toMatchObject({ content: [{ type: 'tool_use', name: 'weather', input: args }], stop_reason: 'tool_use' });
      expect(body.content[0].id).toMatch(/^toolu_/);
      const events = await readSse(await post('anthropic', '/v1/messages', messagesBody({ stream: true })));
      expect(json(events[1]).content_block).toMatchObject({ type: 'tool_use', name: 'weather', input: {} });
      const partial = events.filter((e) => e.event === 'content_block_delta').map((e) => json(e).delta.partial_json);
      expect(partial[0]).toBe('');
      expect(JSON.parse(partial.join(''))).toEqual(args);
      expect(json(events[events.length - 2]).delta.stop_reason).toBe('tool_use');
    });

    it('mistral: the whole tool call in one chunk, with a 9-character id', async () => {
      fakes.script('mistral', [{ kind: 'tool-call', name: 'weather', arguments: '{"city":"Oslo"}' }]);
      const chunks = (await readSse(await post('mistral', '/v1/chat/completions', chatBody({ stream: true })))).slice(0, -1).map(json);
      const call = chunks[1].choices[0].delta.tool_calls[0];
      expect(call).toMatchObject({ index: 0, function: { name: 'weather', arguments: '{"city":"Oslo"}' } });
      expect(call.id).toMatch(/^[a-zA-Z0-9]{9}$/);
    });
  });

  it('reset clears requests and scripts and restores keys', async () => {
    fakes.script('openai', [{ kind: 'status', status: 500 }]);
    fakes.setKey('anthropic', 'other');
    await post('mistral', '/v1/chat/completions', chatBody());
    const held = fakes.mistral.requests;
    fakes.reset();
    expect(fakes.pending('openai')).toBe(0);
    expect(held).toHaveLength(0);
    expect(fakes.requests).toHaveLength(0);
    expect((await post('anthropic', '/v1/messages', messagesBody())).status).toBe(200);
  });

  it('listens on 127.0.0.1 only, one port per provider', () => {
    const urls = [fakes.openai.baseUrl, fakes.anthropic.baseUrl, fakes.mistral.baseUrl];
    for (const u of urls) expect(u).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(new Set(urls).size).toBe(3);
  });
});

describe('close', () => {
  it('ends hanging requests and stops listening', async () => {
    const own = await startFakeProviders();
    own.script('openai', [{ kind: 'hang' }]);
    const pending = fetch(`${own.openai.baseUrl}/v1/chat/completions`, { method: 'POST', headers: headersFor('openai'), body: JSON.stringify(chatBody()) });
    // The request is hanging in the fake before it closes (a fixed 50 ms could close it first, and
    // the test would then only show a refused connection).
    await waitUntil(() => own.requests.length === 1, 'the request to reach the fake');
    await own.close();
    await expect(pending).rejects.toThrow();
    await expect(fetch(`${own.openai.baseUrl}/v1/models`)).rejects.toThrow();
  });
});
