/**
 * Translation through the router, both directions, streaming included, and the providers a
 * request can reach: OpenAI, Anthropic, Mistral and the operator's OpenAI-compatible
 * 'self-hosted' endpoint, by explicit name and by route-table alias. The fakes' recorded requests
 * show what reached each upstream; nothing outside the cell's configured endpoints is called.
 */
import { MemorySink } from '../../lambda/core/router/response-sink';
import { FAKE_PROVIDER_KEYS, parseSse, RouterHarness, startRouterHarness } from '../support/router-harness';

let h: RouterHarness;
let invoke: string;
const TENANT = 'trans-co';

beforeAll(async () => {
  h = await startRouterHarness();
  ({ invokeToken: invoke } = await h.tenant(TENANT));
}, 60_000);
afterAll(() => h?.close());

const TOOLS_OPENAI = [
  {
    type: 'function',
    function: { name: 'get_weather', description: 'Weather by city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
  },
];
const TOOLS_ANTHROPIC = [{ name: 'get_weather', description: 'Weather by city', input_schema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } }];

const openAiChat = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    model,
    messages: [
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'hello there general kenobi' },
    ],
    ...extra,
  });
const anthropicMessages = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, max_tokens: 64, system: 'You are terse.', messages: [{ role: 'user', content: 'hello there general kenobi' }], ...extra });

const lastBody = (p: 'openai' | 'anthropic' | 'mistral') => h.fakes[p].requests.at(-1)?.body as any;

/** OpenAI SSE body → parsed chunks (without [DONE]); checks framing and the final [DONE]. */
function openAiChunks(body: string): any[] {
  const events = parseSse(body);
  expect(events.every((e) => e.event === undefined)).toBe(true);
  expect(events.at(-1)?.data).toBe('[DONE]');
  expect(events.filter((e) => e.data === '[DONE]')).toHaveLength(1);
  return events.slice(0, -1).map((e) => JSON.parse(e.data));
}

/** Anthropic SSE body → parsed events; every event: line names its data's type. */
function anthropicEvents(body: string): any[] {
  const events = parseSse(body).filter((e) => e.event !== 'ping');
  for (const e of events) expect(JSON.parse(e.data).type).toBe(e.event);
  expect(body).toMatch(/^event: message_start\ndata: /);
  expect(events[0].event).toBe('message_start');
  expect(events.at(-1)?.event).toBe('message_stop');
  expect(events.filter((e) => e.event === 'message_stop')).toHaveLength(1);
  return events.map((e) => JSON.parse(e.data));
}

describe('OpenAI client → Anthropic target', () => {
  test('non-streaming: system prompt, max_tokens default, answer, stop reason and usage', async () => {
    const { sink, json, record } = await h.call({ path: '/v1/chat/completions', body: openAiChat('claude-sonnet-4-5') }, invoke);
    expect(sink.status).toBe(200);
    const up = h.fakes.anthropic.requests.at(-1)!;
    expect(up.path).toBe('/v1/messages');
    expect(up.headers['x-api-key']).toBe(FAKE_PROVIDER_KEYS.anthropic);
    expect(up.headers.authorization).toBeUndefined();
    expect(up.headers['anthropic-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(up.body).toMatchObject({ model: 'claude-sonnet-4-5', system: 'You are terse.', max_tokens: 4096, messages: [{ role: 'user' }] });
    expect((up.body as any).messages).toHaveLength(1);
    expect(JSON.stringify((up.body as any).messages)).not.toContain('system');

    expect(json.object).toBe('chat.completion');
    expect(json.model).toBe('claude-sonnet-4-5');
    expect(json.choices[0]).toMatchObject({ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'Echo: hello there general kenobi' } });
    expect(json.usage.prompt_tokens).toBeGreaterThan(0);
    expect(json.usage.completion_tokens).toBe(5);
    expect(json.usage.total_tokens).toBe(json.usage.prompt_tokens + json.usage.completion_tokens);
    expect(record).toMatchObject({ provider: 'anthropic', inputTokens: json.usage.prompt_tokens, outputTokens: 5, decision: 'ok' });
  });

  test('stop reasons: max_tokens → length, stop sequence → stop', async () => {
    const cut = await h.call({ path: '/v1/chat/completions', body: openAiChat('claude-sonnet-4-5', { max_tokens: 2 }) }, invoke);
    expect(lastBody('anthropic').max_tokens).toBe(2);
    expect(cut.json.choices[0]).toMatchObject({ finish_reason: 'length', message: { content: 'Echo: hello' } });
    expect(cut.record?.outputTokens).toBe(2);
    const stopped = await h.call({ path: '/v1/chat/completions', body: openAiChat('claude-sonnet-4-5', { stop: ['general'] }) }, invoke);
    expect(lastBody('anthropic').stop_sequences).toEqual(['general']);
    expect(stopped.json.choices[0].finish_reason).toBe('stop');
    expect(stopped.json.choices[0].message.content).toBe('Echo: hello there ');
  });

  test('tools: definitions and tool results go upstream in Anthropic form; tool_use comes back as tool_calls', async () => {
    h.fakes.script('anthropic', [{ kind: 'tool-call', name: 'get_weather', arguments: { city: 'Paris' } }]);
    const { json, record } = await h.call({ path: '/v1/chat/completions', body: openAiChat('claude-sonnet-4-5', { tools: TOOLS_OPENAI, tool_choice: 'auto' }) }, invoke);
    expect(lastBody('anthropic').tools).toEqual([{ name: 'get_weather', description: 'Weather by city', input_schema: TOOLS_OPENAI[0].function.parameters }]);
    expect(lastBody('anthropic').tool_choice).toEqual({ type: 'auto' });
    expect(json.choices[0].finish_reason).toBe('tool_calls');
    const call = json.choices[0].message.tool_calls[0];
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(JSON.parse(call.function.arguments)).toEqual({ city: 'Paris' });
    expect(record?.outputTokens).toBeGreaterThan(0);

    // Second turn: the assistant's tool call and the tool's answer.
    const followUp = JSON.stringify({
      model: 'claude-sonnet-4-5',
      tools: TOOLS_OPENAI,
      messages: [
        { role: 'user', content: 'weather in Paris?' },
        { role: 'assistant', content: null, tool_calls: [{ id: call.id, type: 'function', function: { name: 'get_weather', arguments: call.function.arguments } }] },
        { role: 'tool', tool_call_id: call.id, content: 'sunny, 21C' },
      ],
    });
    const second = await h.call({ path: '/v1/chat/completions', body: followUp }, invoke);
    expect(second.sink.status).toBe(200);
    const up = lastBody('anthropic');
    expect(up.messages[1]).toEqual({ role: 'assistant', content: [{ type: 'tool_use', id: call.id, name: 'get_weather', input: { city: 'Paris' } }] });
    expect(up.messages[2]).toEqual({ role: 'user', content: [{ type: 'tool_result', tool_use_id: call.id, content: 'sunny, 21C' }] });
    expect(second.json.choices[0].message.content).toBe('Echo: sunny, 21C');
  });

  test('streaming: OpenAI chunks then [DONE], usage chunk when asked, usage on the record', async () => {
    const { sink, record } = await h.call(
      { path: '/v1/chat/completions', body: openAiChat('claude-sonnet-4-5', { stream: true, stream_options: { include_usage: true } }) },
      invoke,
    );
    expect(sink.status).toBe(200);
    expect(sink.headers['content-type']).toMatch(/^text\/event-stream/);
    expect(lastBody('anthropic')).toMatchObject({ stream: true, system: 'You are terse.' });
    const chunks = openAiChunks(sink.body);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk' && c.model === 'claude-sonnet-4-5')).toBe(true);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    const withChoices = chunks.filter((c) => c.choices.length > 0);
    expect(withChoices.map((c) => c.choices[0].delta.content ?? '').join('')).toBe('Echo: hello there general kenobi');
    expect(withChoices.at(-1).choices[0].finish_reason).toBe('stop');
    const usage = chunks.at(-1);
    expect(usage.choices).toEqual([]);
    expect(usage.usage).toMatchObject({ completion_tokens: 5 });
    expect(usage.usage.prompt_tokens).toBeGreaterThan(0);
    expect(record).toMatchObject({ stream: true, decision: 'ok', inputTokens: usage.usage.prompt_tokens, outputTokens: 5 });
  });

  test('streaming tool call: tool_calls deltas reassemble to the arguments, finish tool_calls', async () => {
    h.fakes.script('anthropic', [{ kind: 'tool-call', name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } }]);
    const { sink, record } = await h.call({ path: '/v1/chat/completions', body: openAiChat('claude-sonnet-4-5', { stream: true, tools: TOOLS_OPENAI }) }, invoke);
    const chunks = openAiChunks(sink.body);
    const calls = chunks.flatMap((c) => c.choices[0]?.delta?.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather' } });
    expect(calls[0].id).toEqual(expect.any(String));
    expect(JSON.parse(calls.map((c: any) => c.function?.arguments ?? '').join(''))).toEqual({ city: 'Paris', unit: 'celsius' });
    expect(chunks.at(-1).choices[0].finish_reason).toBe('tool_calls');
    expect(record?.decision).toBe('ok');
    expect(record?.outputTokens).toBeGreaterThan(0);
  });
});

describe('Anthropic client → OpenAI / Mistral target', () => {
  test.each([
    ['openai', 'gpt-4o-mini', 'max_completion_tokens'],
    ['mistral', 'mistral-large-latest', 'max_tokens'],
  ] as const)('non-streaming to %s: system message, max tokens field, answer, stop reason, usage', async (provider, model, maxField) => {
    const { sink, json, record } = await h.call({ path: '/v1/messages', body: anthropicMessages(model) }, invoke);
    expect(sink.status).toBe(200);
    const up = h.fakes[provider].requests.at(-1)!;
    expect(up.path).toBe('/v1/chat/completions');
    expect(up.headers.authorization).toBe(`Bearer ${FAKE_PROVIDER_KEYS[provider]}`);
    expect(up.headers['x-api-key']).toBeUndefined();
    expect((up.body as any).messages).toEqual([
      { role: 'system', content: 'You are terse.' },
      { role: 'user', content: 'hello there general kenobi' },
    ]);
    expect((up.body as any)[maxField]).toBe(64);
    expect(json).toMatchObject({ type: 'message', role: 'assistant', model, stop_reason: 'end_turn', content: [{ type: 'text', text: 'Echo: hello there general kenobi' }] });
    expect(json.id).toEqual(expect.stringMatching(/.+/));
    expect(json.usage).toMatchObject({ output_tokens: 5 });
    expect(json.usage.input_tokens).toBeGreaterThan(0);
    expect(record).toMatchObject({ route: 'messages', provider, inputTokens: json.usage.input_tokens, outputTokens: 5 });
  });

  test('stop reasons: length → max_tokens, tool_calls → tool_use', async () => {
    const cut = await h.call({ path: '/v1/messages', body: anthropicMessages('gpt-4o-mini', { max_tokens: 2 }) }, invoke);
    expect(cut.json).toMatchObject({ stop_reason: 'max_tokens', content: [{ type: 'text', text: 'Echo: hello' }] });
    expect(cut.record?.outputTokens).toBe(2);
  });

  test.each(['openai', 'mistral'] as const)('tools to %s: definitions go upstream as functions; tool_calls come back as tool_use', async (provider) => {
    const model = provider === 'openai' ? 'gpt-4o-mini' : 'mistral-large-latest';
    h.fakes.script(provider, [{ kind: 'tool-call', name: 'get_weather', arguments: { city: 'Paris' } }]);
    const { json } = await h.call({ path: '/v1/messages', body: anthropicMessages(model, { tools: TOOLS_ANTHROPIC }) }, invoke);
    expect(lastBody(provider).tools).toEqual([{ type: 'function', function: expect.objectContaining({ name: 'get_weather', parameters: TOOLS_ANTHROPIC[0].input_schema }) }]);
    expect(json.stop_reason).toBe('tool_use');
    expect(json.content).toEqual([{ type: 'tool_use', id: expect.any(String), name: 'get_weather', input: { city: 'Paris' } }]);

    // Second turn with the tool result: an OpenAI `tool` message upstream, paired by id.
    const id = json.content[0].id;
    const second = await h.call(
      {
        path: '/v1/messages',
        body: JSON.stringify({
          model,
          max_tokens: 64,
          tools: TOOLS_ANTHROPIC,
          messages: [
            { role: 'user', content: 'weather in Paris?' },
            { role: 'assistant', content: [{ type: 'tool_use', id, name: 'get_weather', input: { city: 'Paris' } }] },
            { role: 'user', content: [{ type: 'tool_result', tool_use_id: id, content: 'sunny' }] },
          ],
        }),
      },
      invoke,
    );
    expect(second.sink.status).toBe(200);
    const msgs = lastBody(provider).messages;
    expect(msgs[1]).toMatchObject({ role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'get_weather' } }] });
    expect(JSON.parse(msgs[1].tool_calls[0].function.arguments)).toEqual({ city: 'Paris' });
    expect(msgs[2]).toMatchObject({ role: 'tool', content: 'sunny', tool_call_id: msgs[1].tool_calls[0].id });
    expect(second.json.content[0].text).toBe('Echo: sunny');
  });

  test.each(['openai', 'mistral'] as const)('streaming to %s: event:/data: lines from message_start to message_stop, usage', async (provider) => {
    const model = provider === 'openai' ? 'gpt-4o-mini' : 'mistral-large-latest';
    const { sink, record } = await h.call({ path: '/v1/messages', body: anthropicMessages(model, { stream: true }) }, invoke);
    expect(sink.status).toBe(200);
    expect(sink.headers['content-type']).toMatch(/^text\/event-stream/);
    if (provider === 'openai') expect(lastBody('openai').stream_options).toEqual({ include_usage: true });
    else expect(lastBody('mistral').stream_options).toBeUndefined();
    const events = anthropicEvents(sink.body);
    expect(events.map((e) => e.type)).toEqual([
      'message_start',
      'content_block_start',
      ...Array(5).fill('content_block_delta'),
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(events[0].message).toMatchObject({ role: 'assistant', model, content: [] });
    expect(events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.text).join('')).toBe('Echo: hello there general kenobi');
    const delta = events.find((e) => e.type === 'message_delta');
    expect(delta.delta.stop_reason).toBe('end_turn');
    expect(delta.usage.output_tokens).toBe(5);
    expect(delta.usage.input_tokens).toBeGreaterThan(0);
    expect(record).toMatchObject({ provider, stream: true, decision: 'ok', inputTokens: delta.usage.input_tokens, outputTokens: 5 });
  });

  test.each(['openai', 'mistral'] as const)('streaming tool call from %s: a tool_use block with input_json_delta', async (provider) => {
    const model = provider === 'openai' ? 'gpt-4o-mini' : 'mistral-large-latest';
    h.fakes.script(provider, [{ kind: 'tool-call', name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } }]);
    const { sink } = await h.call({ path: '/v1/messages', body: anthropicMessages(model, { stream: true, tools: TOOLS_ANTHROPIC }) }, invoke);
    const events = anthropicEvents(sink.body);
    const start = events.find((e) => e.type === 'content_block_start');
    expect(start.content_block).toMatchObject({ type: 'tool_use', name: 'get_weather', input: {} });
    const json = events.filter((e) => e.type === 'content_block_delta').map((e) => e.delta.partial_json).join('');
    expect(JSON.parse(json)).toEqual({ city: 'Paris', unit: 'celsius' });
    expect(events.find((e) => e.type === 'message_delta').delta.stop_reason).toBe('tool_use');
  });
});

describe('same-format passthrough', () => {
  test('Anthropic client → Anthropic: the body and the client\'s anthropic-version go through', async () => {
    const { json } = await h.call({ path: '/v1/messages', headers: { 'anthropic-version': '2023-06-01' }, body: anthropicMessages('claude-haiku-4-5', { stop_sequences: ['kenobi'] }) }, invoke);
    const up = h.fakes.anthropic.requests.at(-1)!;
    expect(up.headers['anthropic-version']).toBe('2023-06-01');
    expect(up.body).toEqual({ model: 'claude-haiku-4-5', max_tokens: 64, system: 'You are terse.', messages: [{ role: 'user', content: 'hello there general kenobi' }], stop_sequences: ['kenobi'] });
    expect(json).toMatchObject({ stop_reason: 'stop_sequence', stop_sequence: 'kenobi' });
  });

  test('a malformed anthropic-version is not forwarded', async () => {
    await h.call({ path: '/v1/messages', headers: { 'anthropic-version': 'latest\r\nx-evil: 1' }, body: anthropicMessages('claude-haiku-4-5') }, invoke);
    const up = h.fakes.anthropic.requests.at(-1)!;
    expect(up.headers['anthropic-version']).toMatch(/^\d{4}-\d{2}-\d{2}$/);
    expect(up.headers['x-evil']).toBeUndefined();
  });

  test('OpenAI client → OpenAI: client headers are not forwarded upstream', async () => {
    await h.call({ path: '/v1/chat/completions', headers: { 'x-tenant-secret': 'do-not-forward', cookie: 'a=b', 'openai-organization': 'org-x' }, body: openAiChat('gpt-4o-mini') }, invoke);
    const headers = h.fakes.openai.requests.at(-1)!.headers;
    expect(headers['x-tenant-secret']).toBeUndefined();
    expect(headers.cookie).toBeUndefined();
    expect(headers['openai-organization']).toBeUndefined();
    expect(headers.authorization).toBe(`Bearer ${FAKE_PROVIDER_KEYS.openai}`);
  });
});

describe('providers and route tables', () => {
  const put = (policy: unknown) => h.admin('PUT', `/admin/tenants/${TENANT}/policy`, { policy });

  test('each provider by inferred name', async () => {
    for (const [model, provider] of [
      ['gpt-4o-mini', 'openai'],
      ['claude-haiku-4-5', 'anthropic'],
      ['mistral-small-latest', 'mistral'],
      ['codestral-latest', 'mistral'],
    ] as const) {
      const before = h.fakes[provider].requests.length;
      const { sink, record } = await h.call({ path: '/v1/chat/completions', body: openAiChat(model) }, invoke);
      expect(sink.status).toBe(200);
      expect(h.fakes[provider].requests.length).toBe(before + 1);
      expect(record).toMatchObject({ provider, upstreamModel: model });
    }
  });

  test("the operator's self-hosted OpenAI-compatible endpoint via self-hosted/<model>", async () => {
    const before = h.fakes.requests.length;
    const { sink, json, record } = await h.call({ path: '/v1/chat/completions', body: openAiChat('self-hosted/llama-3.1-70b', { stream: false }) }, invoke);
    expect(sink.status).toBe(200);
    expect(json.choices[0].message.content).toBe('Echo: hello there general kenobi');
    // The cell's self-hosted endpoint is the mistral fake's port.
    expect(h.fakes.requests.length).toBe(before + 1);
    const up = h.fakes.mistral.requests.at(-1)!;
    expect(up.body).toMatchObject({ model: 'llama-3.1-70b' });
    expect(up.headers.authorization).toBe(`Bearer ${FAKE_PROVIDER_KEYS.mistral}`);
    expect(record).toMatchObject({ provider: 'self-hosted', upstreamModel: 'llama-3.1-70b' });

    const anth = await h.call({ path: '/v1/messages', body: anthropicMessages('self-hosted/llama-3.1-70b', { stream: true }) }, invoke);
    expect(anthropicEvents(anth.sink.body).at(-1).type).toBe('message_stop');
    // openai-compatible dialect: max_completion_tokens and include_usage, not Mistral's.
    expect(lastBody('mistral')).toMatchObject({ model: 'llama-3.1-70b', max_completion_tokens: 64, stream_options: { include_usage: true } });
  });

  test('self-hosted via a tenant route-table alias set by the operator', async () => {
    const res = await put({ routes: { house: [{ provider: 'self-hosted', model: 'qwen2.5-72b' }] } });
    expect(res.status).toBe(200);
    const { sink, record } = await h.call({ path: '/v1/chat/completions', body: openAiChat('house', { stream: true }) }, invoke);
    expect(sink.status).toBe(200);
    const chunks = openAiChunks(sink.body);
    expect(chunks[0].model).toBe('qwen2.5-72b');
    expect(lastBody('mistral').model).toBe('qwen2.5-72b');
    expect(record).toMatchObject({ model: 'house', provider: 'self-hosted', upstreamModel: 'qwen2.5-72b', fallbackChain: [expect.objectContaining({ provider: 'self-hosted', outcome: 'ok' })] });
  });

  test('a route target naming a provider the cell does not have is dropped; nothing else is contacted', async () => {
    const res = await put({
      routes: {
        ghosted: [{ provider: 'ghost', model: 'gpt-4o' }],
        mixed: [
          { provider: 'evil-proxy', model: 'gpt-4o' },
          { provider: 'openai', model: 'gpt-4o-mini' },
        ],
      },
    });
    expect(res.status).toBe(200);
    const before = h.fakes.requests.length;
    const kms = h.kmsCalls.length;
    const refused = await h.call({ path: '/v1/chat/completions', body: openAiChat('ghosted') }, invoke);
    expect(refused.sink.status).toBe(400);
    expect(refused.json.error.code).toBe('model_not_routable');
    expect(refused.json.error.message).toContain('ghosted');
    expect(h.fakes.requests.length).toBe(before);
    expect(h.kmsCalls.length).toBe(kms);

    const mixed = await h.call({ path: '/v1/chat/completions', body: openAiChat('mixed') }, invoke);
    expect(mixed.sink.status).toBe(200);
    expect(h.fakes.requests.length).toBe(before + 1);
    expect(h.fakes.requests.at(-1)?.provider).toBe('openai');
    expect(mixed.record?.fallbackChain).toEqual([expect.objectContaining({ provider: 'openai', model: 'gpt-4o-mini', outcome: 'ok' })]);

    // An explicit provider/model for an unknown provider, or a URL as a model, also goes nowhere.
    for (const model of ['ghost/gpt-4o', 'http://127.0.0.1:1/v1', 'openai.evil/gpt-4o']) {
      const r = await h.call({ path: '/v1/chat/completions', body: openAiChat(model) }, invoke);
      expect(r.sink.status).toBe(400);
    }
    expect(h.fakes.requests.length).toBe(before + 1);
  });

  test('weighted route: the primary is drawn by weight, the others stay as fallbacks', async () => {
    await put({
      routes: {
        split: [
          { provider: 'openai', model: 'gpt-4o-mini', weight: 1 },
          { provider: 'mistral', model: 'mistral-small-latest', weight: 3 },
        ],
      },
    });
    const low = h.makeRouter({ random: () => 0.1 });
    const high = h.makeRouter({ random: () => 0.9 });
    const run = async (router: typeof low) => {
      const sink = new MemorySink();
      return router({ method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json' }, body: openAiChat('split') }, sink);
    };
    expect((await run(low))?.provider).toBe('openai');
    expect((await run(high))?.provider).toBe('mistral');
  });
});
