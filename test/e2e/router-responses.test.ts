/**
 * `POST /v1/responses` (issue 14.3) through the real router (moto, production wiring, governance)
 * behind a node:http server, called with the official `openai` SDK's `responses.create`, streamed
 * and not. OpenAI-kind targets (OpenAI, OpenAI-compatible, Azure OpenAI) receive the request as
 * sent; Anthropic and Mistral targets receive it translated (text and function tools), and what
 * cannot be translated is refused with an OpenAI-shape 400 before any KMS or provider call.
 */
import OpenAI from 'openai';
import { costMicros, PriceBook } from '../../lambda/core/governance/prices';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { FAKE_AZURE_API_VERSION } from '../support/fake-providers';
import { FAKE_PROVIDER_KEYS, RouterHarness, startRouterHarness } from '../support/router-harness';
import { RouterServer, serveRouter } from '../support/router-http';
import { counters, governanceRouter, serializeDynamoDb, START, verifierOf } from './governance-support';

const AZURE_KEY = 'a1b2c3d4e5f60718293a4b5c6d7e8f90';
const MAX_BYTES = 64 * 1024;
let h: RouterHarness;
let server: RouterServer;
let client: OpenAI;
let invoke: string;
const prices = new PriceBook();

const WEATHER_TOOL = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'Weather by city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  strict: false,
};

beforeAll(async () => {
  h = await startRouterHarness({
    maxRequestBytes: MAX_BYTES,
    extraProviders: (fakes) => ({
      azure: { kind: 'azure-openai', baseUrl: fakes.azure.baseUrl, apiVersion: FAKE_AZURE_API_VERSION },
      compat: { kind: 'openai-compatible', baseUrl: fakes.openai.baseUrl },
    }),
  });
  h.fakes.setKey('azure', AZURE_KEY);
  serializeDynamoDb(h);
  ({ invokeToken: invoke } = await h.tenant('resp-co', {
    keys: { azure: AZURE_KEY, compat: FAKE_PROVIDER_KEYS.openai },
    policy: {
      monthlyBudgetUsd: 100,
      routes: {
        'both-ways': [
          { provider: 'openai', model: 'gpt-4o-mini' },
          { provider: 'anthropic', model: 'claude-sonnet-4-5' },
        ],
      },
    },
  }));
  server = await serveRouter(governanceRouter(h, { router: {} }).router);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: invoke, maxRetries: 0 });
}, 90_000);

afterAll(async () => {
  await server?.close();
  await h?.close();
});

beforeEach(() => h.fakes.reset());
// The harness re-keys the fakes on start; reset() restores defaults, so keys are set again.
beforeEach(() => {
  for (const [p, key] of Object.entries(FAKE_PROVIDER_KEYS)) h.fakes.setKey(p as 'openai', key);
  h.fakes.setKey('azure', AZURE_KEY);
});

async function lastRecord(): Promise<UsageRecord> {
  await server.idle();
  const r = server.records.at(-1);
  if (!r) throw new Error('no usage record');
  return r;
}

const eventsOf = async (stream: AsyncIterable<{ type: string }>) => {
  const events: any[] = [];
  for await (const ev of stream) events.push(ev);
  return events;
};

/** Every event in order, sequence numbers strictly increasing, one terminal event last. */
function expectWellFormed(events: any[], terminal = 'response.completed') {
  expect(events[0].type).toBe('response.created');
  expect(events.at(-1).type).toBe(terminal);
  const seqs = events.map((e) => e.sequence_number);
  expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  expect(new Set(seqs).size).toBe(seqs.length);
  expect(events.filter((e) => /^response\.(completed|incomplete|failed)$/.test(e.type))).toHaveLength(1);
}

describe('OpenAI-kind targets: the request as sent', () => {
  test('OpenAI, not streamed: SDK output_text, usage, usage record, upstream /v1/responses', async () => {
    const res = await client.responses.create({ model: 'openai/gpt-4o-mini', input: 'hello there', instructions: 'Be terse.', max_output_tokens: 50 });
    expect(res.output_text).toBe('Echo: hello there');
    expect(res.status).toBe('completed');
    expect(res.usage).toMatchObject({ input_tokens: expect.any(Number), output_tokens: 3 });
    const up = h.fakes.openai.requests.at(-1)!;
    expect(up.path).toBe('/v1/responses');
    expect(up.body).toMatchObject({ model: 'gpt-4o-mini', input: 'hello there', instructions: 'Be terse.', max_output_tokens: 50 });
    const record = await lastRecord();
    expect(record).toMatchObject({ route: 'responses', provider: 'openai', upstreamModel: 'gpt-4o-mini', status: 200, decision: 'ok', stream: false });
    expect(record.inputTokens).toBe(res.usage!.input_tokens);
    expect(record.outputTokens).toBe(res.usage!.output_tokens);
    const expected = costMicros(prices.lookup({ provider: 'openai', kind: 'openai', model: 'gpt-4o-mini' }).entry, { inputTokens: record.inputTokens!, outputTokens: record.outputTokens! });
    expect(record.costUsd).toBe(expected / 1e6);
  });

  test('OpenAI, streamed: semantic events forwarded as they came, usage settles from response.completed', async () => {
    const stream = await client.responses.create({ model: 'openai/gpt-4o-mini', input: [{ role: 'user', content: 'one two three' }], stream: true });
    const events = await eventsOf(stream);
    expectWellFormed(events);
    expect(events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('')).toBe('Echo: one two three');
    const done = events.at(-1).response;
    expect(done.usage.output_tokens).toBe(4);
    const record = await lastRecord();
    expect(record).toMatchObject({ route: 'responses', provider: 'openai', stream: true, decision: 'ok', inputTokens: done.usage.input_tokens, outputTokens: 4 });
    expect(record.timeToFirstTokenMs).toEqual(expect.any(Number));
    expect(h.fakes.openai.requests.at(-1)!.body).toMatchObject({ stream: true, model: 'gpt-4o-mini' });
  });

  test('Azure OpenAI: the resource v1 surface, deployment in the body, api-key header; streamed too', async () => {
    const res = await client.responses.create({ model: 'azure/chat-eu', input: 'hello azure' });
    expect(res.output_text).toBe('Echo: hello azure');
    expect(res.model).toBe('gpt-4o-mini');
    const up = h.fakes.azure.requests.at(-1)!;
    expect(up.path).toBe('/openai/v1/responses');
    expect(up.headers['api-key']).toBe(AZURE_KEY);
    expect(up.headers.authorization).toBeUndefined();
    expect(up.body).toMatchObject({ model: 'chat-eu' });
    const events = await eventsOf(await client.responses.create({ model: 'azure/chat-eu', input: 'streamed azure', stream: true }));
    expectWellFormed(events);
    expect((await lastRecord())).toMatchObject({ provider: 'azure', outputTokens: 3, decision: 'ok' });
  });

  test('OpenAI-compatible endpoint: passthrough as well', async () => {
    const res = await client.responses.create({ model: 'compat/local-model', input: 'hi compat' });
    expect(res.output_text).toBe('Echo: hi compat');
    expect(h.fakes.openai.requests.at(-1)!.path).toBe('/v1/responses');
  });

  test('built-in tools and server state reach OpenAI untouched (OpenAI serves them)', async () => {
    await client.responses.create({ model: 'openai/gpt-4o-mini', input: 'search', tools: [{ type: 'web_search' }], previous_response_id: 'resp_123' });
    expect(h.fakes.openai.requests.at(-1)!.body).toMatchObject({ tools: [{ type: 'web_search' }], previous_response_id: 'resp_123' });
  });

  test('function tools: a function_call output item', async () => {
    h.fakes.script('openai', [{ kind: 'tool-call', name: 'get_weather', arguments: { city: 'Bern' } }]);
    const res = await client.responses.create({ model: 'openai/gpt-4o-mini', input: 'weather?', tools: [WEATHER_TOOL] });
    expect(res.output[0]).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"Bern"}' });
  });
});

describe('Anthropic and Mistral targets: translated', () => {
  test('Anthropic, not streamed: instructions become system, a Response object comes back', async () => {
    const res = await client.responses.create({ model: 'anthropic/claude-sonnet-4-5', instructions: 'Be terse.', input: 'hello claude', max_output_tokens: 40, temperature: 0.2 });
    expect(res.object).toBe('response');
    expect(res.id).toMatch(/^resp_/);
    expect(res.model).toBe('anthropic/claude-sonnet-4-5');
    expect(res.output_text).toBe('Echo: hello claude');
    expect(res.status).toBe('completed');
    expect(res.output[0]).toMatchObject({ type: 'message', role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: 'Echo: hello claude' }] });
    const up = h.fakes.anthropic.requests.at(-1)!;
    expect(up.path).toBe('/v1/messages');
    expect(up.body).toMatchObject({ model: 'claude-sonnet-4-5', system: 'Be terse.', max_tokens: 40, temperature: 0.2, messages: [{ role: 'user', content: [{ type: 'text', text: 'hello claude' }] }] });
    const record = await lastRecord();
    expect(record).toMatchObject({ route: 'responses', provider: 'anthropic', decision: 'ok', inputTokens: res.usage!.input_tokens, outputTokens: res.usage!.output_tokens });
    expect(res.usage!.output_tokens).toBe(3);
    expect(record.costUsd).toBeGreaterThan(0);
  });

  test('Anthropic, streamed: Responses semantic events built from the Messages stream', async () => {
    const stream = await client.responses.create({ model: 'anthropic/claude-sonnet-4-5', input: 'stream to claude please', stream: true });
    const events = await eventsOf(stream);
    expectWellFormed(events);
    const types = events.map((e) => e.type);
    expect(types.slice(0, 4)).toEqual(['response.created', 'response.in_progress', 'response.output_item.added', 'response.content_part.added']);
    expect(types.slice(-4)).toEqual(['response.output_text.done', 'response.content_part.done', 'response.output_item.done', 'response.completed']);
    const text = events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('');
    expect(text).toBe('Echo: stream to claude please');
    const done = events.at(-1).response;
    expect(done.output[0].content[0].text).toBe(text);
    expect(done.usage.output_tokens).toBe(5);
    const record = await lastRecord();
    expect(record).toMatchObject({ provider: 'anthropic', stream: true, decision: 'ok', outputTokens: 5, inputTokens: done.usage.input_tokens });
  });

  test('SDK stream helper: finalResponse() of a translated stream', async () => {
    const stream = client.responses.stream({ model: 'anthropic/claude-sonnet-4-5', input: 'final answer' });
    const final = await stream.finalResponse();
    expect(final.output_text).toBe('Echo: final answer');
  });

  test('function tools to Anthropic: tool definitions, function_call out, function_call_output back in', async () => {
    h.fakes.script('anthropic', [{ kind: 'tool-call', name: 'get_weather', arguments: { city: 'Bern' } }]);
    const first = await client.responses.create({ model: 'anthropic/claude-sonnet-4-5', input: 'weather in Bern?', tools: [WEATHER_TOOL], tool_choice: 'auto' });
    const call = first.output.find((o) => o.type === 'function_call');
    expect(call).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"Bern"}', call_id: expect.stringMatching(/^toolu_/) });
    expect(h.fakes.anthropic.requests.at(-1)!.body).toMatchObject({
      tools: [{ name: 'get_weather', description: 'Weather by city', input_schema: WEATHER_TOOL.parameters }],
      tool_choice: { type: 'auto' },
    });
    if (call?.type !== 'function_call') throw new Error('no call');
    const second = await client.responses.create({
      model: 'anthropic/claude-sonnet-4-5',
      tools: [WEATHER_TOOL],
      input: [
        { role: 'user', content: 'weather in Bern?' },
        { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
        { type: 'function_call_output', call_id: call.call_id, output: 'sunny, 21C' },
      ],
    });
    expect(second.output_text).toBe('Echo: sunny, 21C');
    const msgs = (h.fakes.anthropic.requests.at(-1)!.body as any).messages;
    expect(msgs[1]).toMatchObject({ role: 'assistant', content: [{ type: 'tool_use', id: call.call_id, name: 'get_weather', input: { city: 'Bern' } }] });
    expect(msgs[2]).toMatchObject({ role: 'user', content: [{ type: 'tool_result', tool_use_id: call.call_id, content: 'sunny, 21C' }] });
  });

  test('function tools to Anthropic, streamed: function_call_arguments deltas and done', async () => {
    h.fakes.script('anthropic', [{ kind: 'tool-call', name: 'get_weather', arguments: { city: 'Zurich' } }]);
    const events = await eventsOf(await client.responses.create({ model: 'anthropic/claude-sonnet-4-5', input: 'weather?', tools: [WEATHER_TOOL], stream: true }));
    expectWellFormed(events);
    const added = events.find((e) => e.type === 'response.output_item.added');
    expect(added.item).toMatchObject({ type: 'function_call', name: 'get_weather' });
    const args = events.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join('');
    expect(args).toBe('{"city":"Zurich"}');
    expect(events.find((e) => e.type === 'response.function_call_arguments.done')).toMatchObject({ arguments: args, name: 'get_weather', item_id: added.item.id });
    expect(events.at(-1).response.output[0]).toMatchObject({ type: 'function_call', arguments: args, status: 'completed' });
  });

  test('max_output_tokens reached: status incomplete with the reason', async () => {
    const res = await client.responses.create({ model: 'anthropic/claude-sonnet-4-5', input: 'one two three four five six', max_output_tokens: 2 });
    expect(res.status).toBe('incomplete');
    expect(res.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    const events = await eventsOf(await client.responses.create({ model: 'anthropic/claude-sonnet-4-5', input: 'one two three four five six', max_output_tokens: 2, stream: true }));
    expectWellFormed(events, 'response.incomplete');
  });

  test('Mistral (chat only): translated through chat, streamed', async () => {
    const events = await eventsOf(await client.responses.create({ model: 'mistral/mistral-small-latest', input: 'bonjour', stream: true, max_output_tokens: 20 }));
    expectWellFormed(events);
    expect(events.at(-1).response.output[0].content[0].text).toBe('Echo: bonjour');
    const up = h.fakes.mistral.requests.at(-1)!;
    expect(up.path).toBe('/v1/chat/completions');
    expect(up.body).toMatchObject({ max_tokens: 20 });
    expect((up.body as any).stream_options).toBeUndefined();
    expect(await lastRecord()).toMatchObject({ provider: 'mistral', outputTokens: 2, decision: 'ok' });
  });
});

describe('upstream failures', () => {
  test.each([
    ['OpenAI (passthrough)', 'openai/gpt-4o-mini', 'openai'],
    ['Anthropic (translated)', 'anthropic/claude-sonnet-4-5', 'anthropic'],
  ] as const)('%s stream broken mid-answer: ends with a well-formed response.failed event', async (_n, model, provider) => {
    h.fakes.script(provider, [{ kind: 'break-stream', afterEvents: 4 }]);
    const events = await eventsOf(await client.responses.create({ model, input: 'one two three four five six', stream: true }));
    expectWellFormed(events, 'response.failed');
    expect(events.at(-1).response).toMatchObject({ status: 'failed', error: { code: 'server_error', message: expect.stringMatching(/upstream stream broke/) } });
    expect(await lastRecord()).toMatchObject({ decision: 'upstream_stream_broken', provider });
  });

  test('an in-stream error event from OpenAI ends the client stream with response.failed naming its type', async () => {
    h.fakes.script('openai', [{ kind: 'stream-error', afterEvents: 3, type: 'server_error', message: 'boom sk-openai-fake-0123456789abcdef' }]);
    const events = await eventsOf(await client.responses.create({ model: 'openai/gpt-4o-mini', input: 'x y z', stream: true }));
    expectWellFormed(events, 'response.failed');
    expect(events.at(-1).response.error.message).toMatch(/mid-stream \(server_error\)/);
    expect(JSON.stringify(events)).not.toContain(FAKE_PROVIDER_KEYS.openai);
  });

  test('OpenAI rejects the request (400): its message passes through in the OpenAI shape; a rejected key is a 502 without the key', async () => {
    h.fakes.script('openai', [{ kind: 'status', status: 400, body: { error: { message: 'Invalid value for input.', type: 'invalid_request_error', param: 'input', code: null } } }]);
    const bad = await client.responses.create({ model: 'openai/gpt-4o-mini', input: 'x' }).catch((e: unknown) => e);
    expect(bad).toBeInstanceOf(OpenAI.BadRequestError);
    expect((bad as Error).message).toMatch(/Invalid value for input/);
    h.fakes.setKey('openai', 'sk-some-other-key');
    const rejected = await client.responses.create({ model: 'openai/gpt-4o-mini', input: 'x' }).catch((e: unknown) => e);
    expect((rejected as { status?: number }).status).toBe(502);
    expect((rejected as { error?: { code?: string } }).error?.code).toBe('provider_rejected_key');
    expect(JSON.stringify((rejected as { error?: unknown }).error)).not.toContain(FAKE_PROVIDER_KEYS.openai);
  });
});

describe('refused: what cannot be translated, and bad input', () => {
  const refusals: Array<[string, Record<string, unknown>, RegExp]> = [
    ['a built-in tool', { tools: [{ type: 'web_search' }] }, /tools\.0\.type: built-in tool "web_search"/],
    ['previous_response_id', { previous_response_id: 'resp_abc' }, /previous_response_id: needs the response state/],
    ['conversation', { conversation: 'conv_1' }, /conversation: needs conversation state/],
    ['a stored prompt', { prompt: { id: 'pmpt_1' } }, /prompt: stored prompt templates/],
    ['a file by id', { input: [{ role: 'user', content: [{ type: 'input_file', file_id: 'file-1' }] }] }, /only inline files/],
    ['an item reference', { input: [{ type: 'item_reference', id: 'msg_1' }] }, /refers to an item stored at OpenAI/],
    ['a hosted tool call item', { input: [{ type: 'web_search_call', id: 'ws_1', status: 'completed' }] }, /built-in tools\) cannot be translated/],
    ['an unknown field', { frobnicate: true }, /frobnicate: is not supported when the model is served by anthropic/],
  ];
  test.each(refusals)('%s, for an Anthropic model: OpenAI-shape 400 before any KMS or provider call', async (_name, extra, message) => {
    const kms = h.kmsCalls.length;
    const err = await client.responses.create({ model: 'anthropic/claude-sonnet-4-5', input: 'hi', ...extra } as never).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    const e = err as InstanceType<typeof OpenAI.BadRequestError>;
    expect(e.status).toBe(400);
    expect(e.error).toMatchObject({ type: 'invalid_request_error', code: 'unsupported_parameter' });
    expect(e.message).toMatch(message);
    expect(h.kmsCalls.length).toBe(kms);
    expect(h.fakes.requests).toHaveLength(0);
    expect(await lastRecord()).toMatchObject({ status: 400, decision: 'denied:unsupported_parameter' });
  });

  test('background mode is refused for every target (its result would need GET /v1/responses/{id})', async () => {
    const err = await client.responses.create({ model: 'openai/gpt-4o-mini', input: 'hi', background: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toMatch(/background mode is not supported/);
    expect(h.fakes.requests).toHaveLength(0);
  });

  test('a route with OpenAI and Anthropic targets keeps only OpenAI for an untranslatable request', async () => {
    h.fakes.script('openai', [{ kind: 'status', status: 503 }, { kind: 'status', status: 503 }]);
    const err = await client.responses.create({ model: 'both-ways', input: 'hi', tools: [{ type: 'web_search' }] }).catch((e: unknown) => e);
    // OpenAI failed; the Anthropic target was never tried, since it could not serve web_search.
    expect((err as { status?: number }).status).toBe(502);
    expect(h.fakes.anthropic.requests).toHaveLength(0);
    // A translatable request falls back to Anthropic.
    h.fakes.script('openai', [{ kind: 'status', status: 503 }, { kind: 'status', status: 503 }]);
    const ok = await client.responses.create({ model: 'both-ways', input: 'fallback please' });
    expect(ok.output_text).toBe('Echo: fallback please');
    expect(h.fakes.anthropic.requests).toHaveLength(1);
  });

  const raw = (body: string | undefined, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/v1/responses`, { method: 'POST', headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json', ...headers }, body });
  const malformed: Array<[string, string | undefined, number, RegExp]> = [
    ['no body', undefined, 400, /body/i],
    ['not JSON', '{"model":', 400, /JSON/],
    ['an array', '[]', 400, /JSON object/],
    ['no input', JSON.stringify({ model: 'openai/gpt-4o-mini' }), 400, /input must be/],
    ['empty input array', JSON.stringify({ model: 'openai/gpt-4o-mini', input: [] }), 400, /input must be/],
    ['input items that are not objects', JSON.stringify({ model: 'openai/gpt-4o-mini', input: ['hi'] }), 400, /input must be/],
    ['input a number', JSON.stringify({ model: 'openai/gpt-4o-mini', input: 42 }), 400, /input must be/],
    ['stream not boolean', JSON.stringify({ model: 'openai/gpt-4o-mini', input: 'x', stream: 'yes' }), 400, /stream must be a boolean/],
    ['max_output_tokens negative', JSON.stringify({ model: 'openai/gpt-4o-mini', input: 'x', max_output_tokens: -1 }), 400, /max_output_tokens must be a positive integer/],
    ['no model', JSON.stringify({ input: 'x' }), 400, /model/],
    ['oversized', JSON.stringify({ model: 'openai/gpt-4o-mini', input: 'x'.repeat(MAX_BYTES) }), 413, /larger than|too large/i],
    ['bad item content for translation', JSON.stringify({ model: 'anthropic/claude-sonnet-4-5', input: [{ role: 'user', content: 7 }] }), 400, /input\.0\.content/],
    ['unknown role for translation', JSON.stringify({ model: 'anthropic/claude-sonnet-4-5', input: [{ role: 'wizard', content: 'x' }] }), 400, /unknown role/],
  ];
  test.each(malformed)('malformed: %s, answered in the OpenAI error shape with no provider call', async (_name, body, status, message) => {
    const res = await raw(body);
    expect(res.status).toBe(status);
    const json = (await res.json()) as any;
    expect(json.error).toEqual(expect.objectContaining({ message: expect.stringMatching(message), type: 'invalid_request_error', code: expect.any(String) }));
    expect(JSON.stringify(json)).not.toMatch(/at .*\.ts:\d+/);
    expect(h.fakes.requests).toHaveLength(0);
  });

  test('GET /v1/responses is 405 (only creation is routed)', async () => {
    const res = await fetch(`${server.url}/v1/responses`, { headers: { authorization: `Bearer ${invoke}` } });
    expect(res.status).toBe(405);
  });
});

describe('guardrails judge the Responses input too', () => {
  let guarded: OpenAI;
  beforeAll(async () => {
    const { invokeToken } = await h.tenant('resp-guard', {
      policy: { guardrails: { personalData: { email: 'redact', card: 'refuse' }, blockedTerms: ['project bluebird'] } },
    });
    guarded = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: invokeToken, maxRetries: 0 });
  });

  test('e-mail addresses in instructions, an input string and input items are redacted before the provider sees them', async () => {
    // The instructions do not end on the address: on main (guardrails' seam scan) an address at the
    // very end of one segment also redacts the first word of the next (reported to the lead).
    await guarded.responses.create({ model: 'openai/gpt-4o-mini', instructions: 'cc boss@example.com always', input: 'mail me at ann@example.com' });
    expect(h.fakes.openai.requests.at(-1)!.body).toMatchObject({ instructions: 'cc [REDACTED:email] always', input: 'mail me at [REDACTED:email]' });
    await guarded.responses.create({
      model: 'anthropic/claude-sonnet-4-5',
      input: [
        { role: 'user', content: [{ type: 'input_text', text: 'write to bob@example.com' }] },
        { type: 'function_call', call_id: 'call_1', name: 'lookup', arguments: '{"to":"eve@example.com"}' },
        { type: 'function_call_output', call_id: 'call_1', output: 'sent to eve@example.com' },
      ],
    });
    const sent = JSON.stringify(h.fakes.anthropic.requests.at(-1)!.body);
    expect(sent).not.toMatch(/@example\.com/);
    expect(sent).toContain('[REDACTED:email]');
    expect(await lastRecord()).toMatchObject({ guardrails: { action: 'redacted', rules: ['personal_data:email'] } });
  });

  test('a blocked term split across two input items, and a card number in a tool output, are refused before any provider call', async () => {
    const split = await guarded.responses
      .create({ model: 'openai/gpt-4o-mini', input: [{ role: 'user', content: 'about project blue' }, { role: 'user', content: 'bird' }] })
      .catch((e: unknown) => e);
    expect(split).toBeInstanceOf(OpenAI.BadRequestError);
    expect((split as { error?: { code?: string } }).error?.code).toBe('guardrail_refused');
    const card = await guarded.responses
      .create({ model: 'openai/gpt-4o-mini', input: [{ type: 'function_call_output', call_id: 'c', output: 'card 4111 1111 1111 1111' }] })
      .catch((e: unknown) => e);
    expect((card as { error?: { code?: string } }).error?.code).toBe('guardrail_refused');
    expect(h.fakes.requests).toHaveLength(0);
  });
});

describe('budgets', () => {
  test('reserved before the call and settled to the reported usage, streamed and not, OpenAI and Anthropic', async () => {
    const before = await counters(h, 'resp-co', await verifierOf(h, 'resp-co'), START);
    const spentBefore = before.tenantSpend?.spentMicros ?? 0;
    let expected = 0;
    for (const [model, provider, stream] of [
      ['openai/gpt-4o-mini', 'openai', false],
      ['openai/gpt-4o-mini', 'openai', true],
      ['anthropic/claude-sonnet-4-5', 'anthropic', false],
      ['anthropic/claude-sonnet-4-5', 'anthropic', true],
    ] as const) {
      if (stream) await eventsOf(await client.responses.create({ model, input: 'count my tokens', stream: true }));
      else await client.responses.create({ model, input: 'count my tokens' });
      const record = await lastRecord();
      const cost = costMicros(prices.lookup({ provider, kind: provider, model: model.split('/')[1] }).entry, { inputTokens: record.inputTokens!, outputTokens: record.outputTokens! });
      expect(record.costUsd).toBe(cost / 1e6);
      expected += cost;
    }
    const after = await counters(h, 'resp-co', await verifierOf(h, 'resp-co'), START);
    expect(after.tenantSpend).toMatchObject({ spentMicros: spentBefore + expected, reservedMicros: 0 });
    expect(after.reservations).toEqual([]);
  });
});
