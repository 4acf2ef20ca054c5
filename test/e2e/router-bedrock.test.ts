/**
 * Amazon Bedrock as a provider kind (issue 14.1), through the real router, moto and a fake
 * Bedrock runtime on loopback that verifies SigV4 itself (fake role credentials, the cell's region,
 * service `bedrock`) or checks the tenant's Bedrock API key as a bearer token. The official OpenAI
 * and Anthropic SDKs call Bedrock routes, streaming and not, tool calls included; usage is recorded
 * and budgets are charged; another region's endpoint and cross-region inference profiles are
 * refused; the canary Bedrock API key never leaves the upstream request.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { ProviderHttpClient } from '../../lambda/adapters/provider-http';
import { cellConfigFromEnv } from '../../lambda/core/cell-config';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { canaryHits, makeCanary } from '../support/canary';
import { FAKE_AWS_CREDENTIALS, FakeBedrock, startFakeBedrock } from '../support/fake-bedrock';
import { dumpTables, parseSse, RouterHarness, startRouterHarness } from '../support/router-harness';

const REGION = 'eu-central-1';
const HAIKU = 'anthropic.claude-3-5-haiku-20241022-v1:0';
const NOVA = 'amazon.nova-lite-v1:0';
const BEDROCK_KEY = makeCanary('bedrock');
let bedrock: FakeBedrock;
let h: RouterHarness;
let invoke: string;
let otherInvoke: string;

beforeAll(async () => {
  bedrock = await startFakeBedrock({ region: REGION, key: BEDROCK_KEY });
  h = await startRouterHarness({
    region: REGION,
    extraProviders: () => ({
      bedrock: { kind: 'bedrock', baseUrl: bedrock.baseUrl },
      'bedrock-iam': { kind: 'bedrock', baseUrl: bedrock.baseUrl, auth: 'iam', models: [HAIKU, NOVA] },
    }),
  });
  ({ invokeToken: invoke } = await h.tenant('bedrock-co', {
    keys: { bedrock: BEDROCK_KEY },
    policy: { routes: { 'eu-claude': [{ provider: 'bedrock', model: HAIKU }], 'eu-iam': [{ provider: 'bedrock-iam', model: HAIKU }] } },
  }));
  ({ invokeToken: otherInvoke } = await h.tenant('bedrock-other', { keys: { bedrock: 'ABSKb3RoZXItdGVuYW50LWtleQ==' } }));
}, 60_000);
afterAll(async () => {
  await h?.close();
  await bedrock?.close();
});
beforeEach(() => bedrock.reset());

/** Runs the router in-process as the SDKs' fetch: the SDKs speak to it exactly as over HTTP. */
function routerFetch(): typeof fetch {
  return (async (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url);
    const headers: Record<string, string> = {};
    new Headers(init?.headers).forEach((v, k) => (headers[k] = v));
    const sink = new MemorySink();
    await h.router({ method: init?.method ?? 'GET', path: url.pathname, headers, body: typeof init?.body === 'string' ? init.body : undefined, sourceIp: '203.0.113.9' }, sink);
    return new Response(sink.body, { status: sink.status, headers: sink.headers });
  }) as typeof fetch;
}
const openai = (token = invoke) => new OpenAI({ baseURL: 'http://router.test/v1', apiKey: token, maxRetries: 0, fetch: routerFetch() });
const anthropic = (token = invoke) => new Anthropic({ baseURL: 'http://router.test', apiKey: token, maxRetries: 0, fetch: routerFetch() });

describe('non-streaming, both client formats', () => {
  test('OpenAI SDK → Bedrock (API key): answer, usage, bearer key upstream, Converse body', async () => {
    const res = await openai().chat.completions.create({ model: 'eu-claude', messages: [{ role: 'system', content: 'be brief' }, { role: 'user', content: 'hello bedrock' }], max_tokens: 50 });
    expect(res.choices[0].message.content).toBe('Echo: hello bedrock');
    expect(res.choices[0].finish_reason).toBe('stop');
    expect(res.usage?.completion_tokens).toBe(3);
    expect(res.usage!.prompt_tokens).toBeGreaterThan(0);
    const up = bedrock.requests.at(-1)!;
    expect(up.path).toBe(`/model/${encodeURIComponent(HAIKU)}/converse`);
    expect(up.auth).toBe('bearer');
    expect(up.bearer).toBe(BEDROCK_KEY);
    expect(up.body).toEqual({ messages: [{ role: 'user', content: [{ text: 'hello bedrock' }] }], system: [{ text: 'be brief' }], inferenceConfig: { maxTokens: 50 } });
  });

  test('Anthropic SDK → Bedrock, explicit provider/model', async () => {
    const msg = await anthropic().messages.create({ model: `bedrock/${HAIKU}`, max_tokens: 2, messages: [{ role: 'user', content: 'one two three four' }] });
    expect(msg.content).toEqual([{ type: 'text', text: 'Echo: one' }]);
    expect(msg.stop_reason).toBe('max_tokens');
    expect(msg.model).toBe(`bedrock/${HAIKU}`);
    expect(msg.usage.output_tokens).toBe(2);
  });

  test('IAM auth: SigV4 with the router role, scoped to the cell region and service bedrock; no tenant key opened', async () => {
    const kmsBefore = h.kmsCalls.length;
    const res = await openai().chat.completions.create({ model: 'eu-iam', messages: [{ role: 'user', content: 'signed hello' }] });
    expect(res.choices[0].message.content).toBe('Echo: signed hello');
    const up = bedrock.requests.at(-1)!;
    expect(up.auth).toBe('sigv4');
    expect(up.sigv4).toMatchObject({ accessKeyId: FAKE_AWS_CREDENTIALS.accessKeyId, region: REGION, service: 'bedrock' });
    expect(up.sigv4!.signedHeaders).toEqual(expect.arrayContaining(['host', 'x-amz-date', 'x-amz-security-token']));
    expect(up.headers['x-amz-date']).toMatch(/^\d{8}T\d{6}Z$/);
    expect(up.headers.authorization).not.toContain(BEDROCK_KEY);
    // The role signs: no sealed secret was opened (no KMS Decrypt for this request).
    expect(h.kmsCalls.length).toBe(kmsBefore);
  });

  test('a signature for another region is refused by the fake (it verifies the scope)', async () => {
    bedrock.region = 'eu-west-1';
    try {
      const err = await openai().chat.completions.create({ model: 'eu-iam', messages: [{ role: 'user', content: 'x' }] }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(OpenAI.APIError);
      expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(502);
      expect(String((err as Error).message)).toContain("refused the gateway's own role");
    } finally {
      bedrock.region = REGION;
    }
  });
});

describe('streaming, both client formats', () => {
  test('OpenAI SDK stream from ConverseStream: text deltas, finish reason, usage', async () => {
    const stream = await openai().chat.completions.create({ model: 'eu-claude', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'stream me please' }] });
    let text = '';
    let finish: string | null | undefined;
    let usage: OpenAI.CompletionUsage | undefined | null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta?.content ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
      if (chunk.usage) usage = chunk.usage;
    }
    expect(text).toBe('Echo: stream me please');
    expect(finish).toBe('stop');
    expect(usage?.completion_tokens).toBe(4);
    expect(bedrock.requests.at(-1)!.path).toBe(`/model/${encodeURIComponent(HAIKU)}/converse-stream`);
    expect(bedrock.requests.at(-1)!.headers.accept).toBe('application/vnd.amazon.eventstream');
  });

  test('Anthropic SDK stream (IAM auth): events in order, final message and usage', async () => {
    const stream = anthropic().messages.stream({ model: 'eu-iam', max_tokens: 100, messages: [{ role: 'user', content: 'anthropic stream' }] });
    const final = await stream.finalMessage();
    expect(final.content).toEqual([expect.objectContaining({ type: 'text', text: 'Echo: anthropic stream' })]);
    expect(final.stop_reason).toBe('end_turn');
    expect(final.usage.output_tokens).toBe(3);
    expect(final.usage.input_tokens).toBeGreaterThan(0);
    expect(bedrock.requests.at(-1)!.auth).toBe('sigv4');
  });
});

describe('the Responses API reaches Bedrock through the same translation', () => {
  test('responses.create, non-streaming and streaming, on a Bedrock route', async () => {
    const res = await openai().responses.create({ model: 'eu-claude', input: 'hello responses', max_output_tokens: 50 });
    expect(res.output_text).toBe('Echo: hello responses');
    expect(res.usage?.output_tokens).toBe(3);
    expect(bedrock.requests.at(-1)!.path).toBe(`/model/${encodeURIComponent(HAIKU)}/converse`);
    const stream = await openai().responses.create({ model: 'eu-iam', input: 'streamed responses', stream: true });
    let text = '';
    let completed: OpenAI.Responses.Response | undefined;
    for await (const ev of stream) {
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') completed = ev.response;
    }
    expect(text).toBe('Echo: streamed responses');
    expect(completed?.usage?.output_tokens).toBe(3);
    expect(bedrock.requests.at(-1)!.path).toBe(`/model/${encodeURIComponent(HAIKU)}/converse-stream`);
  });
});

describe('tool calls', () => {
  test('OpenAI tools → Converse toolConfig; toolUse answer → tool_calls (non-streaming and streaming)', async () => {
    const tools: OpenAI.ChatCompletionTool[] = [{ type: 'function', function: { name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    bedrock.script([{ kind: 'tool-call', name: 'get_weather', input: { city: 'Berlin' } }]);
    const res = await openai().chat.completions.create({ model: 'eu-claude', tools, tool_choice: 'auto', messages: [{ role: 'user', content: 'weather?' }] });
    const call = res.choices[0].message.tool_calls![0] as OpenAI.ChatCompletionMessageFunctionToolCall;
    expect(res.choices[0].finish_reason).toBe('tool_calls');
    expect(call.function).toEqual({ name: 'get_weather', arguments: '{"city":"Berlin"}' });
    expect((bedrock.requests.at(-1)!.body as { toolConfig: unknown }).toolConfig).toEqual({
      tools: [{ toolSpec: { name: 'get_weather', description: 'weather', inputSchema: { json: { type: 'object', properties: { city: { type: 'string' } } } } } }],
      toolChoice: { auto: {} },
    });

    // The tool result goes back as a Converse toolResult, and the conversation continues.
    const follow = await openai().chat.completions.create({
      model: 'eu-claude',
      tools,
      messages: [{ role: 'user', content: 'weather?' }, res.choices[0].message, { role: 'tool', tool_call_id: call.id, content: 'sunny' }],
    });
    expect(follow.choices[0].message.content).toBe('Echo: sunny');
    const sent = bedrock.requests.at(-1)!.body as { messages: Array<{ role: string; content: Array<Record<string, unknown>> }> };
    expect(sent.messages[1].content[0]).toEqual({ toolUse: { toolUseId: call.id, name: 'get_weather', input: { city: 'Berlin' } } });
    expect(sent.messages[2].content[0]).toEqual({ toolResult: { toolUseId: call.id, content: [{ text: 'sunny' }], status: 'success' } });

    bedrock.script([{ kind: 'tool-call', name: 'get_weather', input: { city: 'Paris', days: 3 } }]);
    const stream = await openai().chat.completions.create({ model: 'eu-claude', tools, stream: true, messages: [{ role: 'user', content: 'weather?' }] });
    let args = '';
    let name = '';
    let finish: string | null | undefined;
    for await (const chunk of stream) {
      const tc = chunk.choices[0]?.delta?.tool_calls?.[0];
      if (tc?.function?.name) name = tc.function.name;
      args += tc?.function?.arguments ?? '';
      finish = chunk.choices[0]?.finish_reason ?? finish;
    }
    expect(name).toBe('get_weather');
    expect(JSON.parse(args)).toEqual({ city: 'Paris', days: 3 });
    expect(finish).toBe('tool_calls');
  });

  test('Anthropic SDK tool_use, streaming: input_json deltas assemble the input', async () => {
    bedrock.script([{ kind: 'tool-call', name: 'lookup', input: { q: 'sovereign' } }]);
    const final = await anthropic()
      .messages.stream({ model: 'eu-claude', max_tokens: 100, tools: [{ name: 'lookup', input_schema: { type: 'object' } }], messages: [{ role: 'user', content: 'look it up' }] })
      .finalMessage();
    expect(final.stop_reason).toBe('tool_use');
    expect(final.content[0]).toMatchObject({ type: 'tool_use', name: 'lookup', input: { q: 'sovereign' } });
  });
});

describe('usage records and budgets', () => {
  test('each Bedrock request writes a usage record with provider, tokens and cost, and the budget is charged', async () => {
    const spent = async () => (await h.admin('GET', '/admin/tenants/bedrock-co/usage')).json.tenant as { spentMicros: number; reservedMicros: number };
    const before = await spent();
    const out = await h.call({ path: '/v1/chat/completions', body: JSON.stringify({ model: 'eu-claude', messages: [{ role: 'user', content: 'count me' }] }) }, invoke);
    expect(out.sink.status).toBe(200);
    expect(out.record).toMatchObject({ tenantId: 'bedrock-co', provider: 'bedrock', upstreamModel: HAIKU, decision: 'ok', outputTokens: 3 });
    expect(out.record!.inputTokens).toBeGreaterThan(0);
    expect(out.record!.costUsd).toBeGreaterThan(0);
    const streamed = await h.call({ path: '/v1/messages', body: JSON.stringify({ model: 'eu-iam', max_tokens: 20, stream: true, messages: [{ role: 'user', content: 'count me too' }] }) }, invoke);
    expect(streamed.record).toMatchObject({ provider: 'bedrock-iam', decision: 'ok', stream: true, outputTokens: 4 });
    expect(streamed.record!.inputTokens).toBeGreaterThan(0);
    expect(streamed.record!.costUsd).toBeGreaterThan(0);
    const after = await spent();
    // Settled to the real cost of both requests; nothing left reserved.
    expect(after.spentMicros - before.spentMicros).toBeCloseTo((out.record!.costUsd! + streamed.record!.costUsd!) * 1e6, -1);
    expect(after.reservedMicros).toBe(0);
  });
});

describe('residency: the cell region only', () => {
  test('a Bedrock endpoint in another region stops the function at init (cellConfigFromEnv)', () => {
    const env = { ...configEnv(), PROVIDER_ENDPOINTS: JSON.stringify({ b: { kind: 'bedrock', baseUrl: 'https://bedrock-runtime.us-east-1.amazonaws.com' } }) };
    expect(() => cellConfigFromEnv(env)).toThrow("provider 'b': Amazon Bedrock in us-east-1 is outside the cell's region eu-central-1");
    const same = { ...env, PROVIDER_ENDPOINTS: JSON.stringify({ b: { kind: 'bedrock', baseUrl: 'https://bedrock-runtime.eu-central-1.amazonaws.com' } }) };
    expect(cellConfigFromEnv(same).providers.b.kind).toBe('bedrock');
  });

  test("a Bedrock endpoint in another region is refused before any call (router time)", async () => {
    const before = bedrock.requests.length;
    // A configuration that got past synth and init checks (e.g. edited in place) still never calls out.
    const config = { ...h.cell.config, providers: { ...h.cell.config.providers, 'bedrock-us': { kind: 'bedrock' as const, baseUrl: 'https://bedrock-runtime.us-east-1.amazonaws.com' } } };
    const router = h.makeRouter({ config });
    const sink = new MemorySink();
    await router({ method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: `bedrock-us/${HAIKU}`, messages: [{ role: 'user', content: 'x' }] }), sourceIp: '203.0.113.9' }, sink);
    const out = { sink, json: JSON.parse(sink.body) };
    expect(out.sink.status).toBe(400);
    expect(out.json.error.code).toBe('model_not_routable');
    expect(out.json.error.message).toContain("Amazon Bedrock in us-east-1 is outside the cell's region eu-central-1");
    expect(bedrock.requests.length).toBe(before);
  });

  test('the adapter refuses another region by itself (egress backstop), before any fetch', async () => {
    let fetched = 0;
    const client = new ProviderHttpClient({ bedrock: { region: REGION }, fetch: (async () => { fetched++; return new Response('{}'); }) as typeof fetch });
    const target = { provider: 'b', kind: 'bedrock' as const, baseUrl: 'https://bedrock-runtime.us-east-1.amazonaws.com', model: HAIKU, secret: 'default' };
    await expect(client.send({ target, path: '/converse', body: { messages: [] }, apiKey: 'k', signal: new AbortController().signal })).rejects.toThrow(/outside the cell's region eu-central-1/);
    await expect(new ProviderHttpClient({ fetch: (async () => { fetched++; return new Response('{}'); }) as typeof fetch }).send({ target: { ...target, baseUrl: 'https://bedrock-runtime.eu-central-1.amazonaws.com' }, path: '/converse', body: {}, apiKey: 'k', signal: new AbortController().signal })).rejects.toThrow(/no cell region/);
    expect(fetched).toBe(0);
  });

  test('cross-region inference profiles and malformed model ids are refused (400, no call)', async () => {
    const before = bedrock.requests.length;
    for (const model of ['eu.anthropic.claude-3-5-haiku-20241022-v1:0', 'global.anthropic.claude-sonnet-4', '../../x', 'arn:aws:bedrock:eu-central-1::foundation-model/x']) {
      const out = await h.call({ path: '/v1/chat/completions', body: JSON.stringify({ model: `bedrock/${model}`, messages: [{ role: 'user', content: 'x' }] }) }, invoke);
      expect(out.sink.status).toBe(400);
      expect(out.json.error.code).toBe('model_not_routable');
    }
    expect(bedrock.requests.length).toBe(before);
  });
});

describe('keys: the tenant own, never another tenant, never leaked', () => {
  test("each tenant's own Bedrock key reaches Bedrock (no key reuse across tenants)", async () => {
    await openai(otherInvoke).chat.completions.create({ model: `bedrock/${HAIKU}`, messages: [{ role: 'user', content: 'other' }] }).catch(() => undefined);
    await openai().chat.completions.create({ model: `bedrock/${HAIKU}`, messages: [{ role: 'user', content: 'mine' }] });
    const [other, mine] = bedrock.requests.slice(-2);
    expect(other.bearer).toBe('ABSKb3RoZXItdGVuYW50LWtleQ==');
    expect(mine.bearer).toBe(BEDROCK_KEY);
  });

  test('a rejected Bedrock key is a 502 naming the provider, never the key', async () => {
    const out = await h.call({ path: '/v1/chat/completions', body: JSON.stringify({ model: `bedrock/${HAIKU}`, messages: [{ role: 'user', content: 'x' }] }) }, otherInvoke);
    expect(out.sink.status).toBe(502);
    expect(out.json.error.code).toBe('provider_rejected_key');
    expect(out.json.error.message).toContain('bedrock rejected the stored API key');
  });

  test('the canary Bedrock key appears in no response, log line, metric or stored record', async () => {
    await h.call({ path: '/v1/messages', body: JSON.stringify({ model: 'eu-claude', max_tokens: 5, stream: true, messages: [{ role: 'user', content: 'canary' }] }) }, invoke);
    bedrock.script([{ kind: 'status', status: 400, type: 'ValidationException' }]);
    const bad = await h.call({ path: '/v1/chat/completions', body: JSON.stringify({ model: 'eu-claude', messages: [{ role: 'user', content: 'x' }] }) }, invoke);
    expect(bad.sink.status).toBe(400);
    const everything = [JSON.stringify(bad.json), ...h.logs, ...h.metrics, await dumpTables(h)].join('\n');
    expect(canaryHits(everything, [BEDROCK_KEY])).toEqual([]);
    expect(bedrock.requests.some((r) => r.bearer === BEDROCK_KEY)).toBe(true);
  });
});

describe('broken upstream streams', () => {
  test('a mid-stream exception ends the client stream with an error event; no usage is invented', async () => {
    bedrock.script([{ kind: 'stream-exception', afterEvents: 3, type: 'throttlingException', message: 'Too many tokens' }]);
    const out = await h.call({ path: '/v1/chat/completions', body: JSON.stringify({ model: 'eu-claude', stream: true, messages: [{ role: 'user', content: 'a b c d e f' }] }) }, invoke);
    const events = parseSse(out.sink.body);
    expect(events.at(-1)!.data).toContain('throttlingException');
    expect(out.record?.decision).toBe('upstream_stream_broken');
  });

  test('a stream without its metadata (usage) event, a cut socket and a corrupt frame are broken streams', async () => {
    for (const behavior of [{ kind: 'no-metadata' as const }, { kind: 'break-stream' as const, afterEvents: 2 }, { kind: 'corrupt' as const, afterEvents: 2 }]) {
      bedrock.script([behavior]);
      const out = await h.call({ path: '/v1/messages', body: JSON.stringify({ model: 'eu-claude', max_tokens: 50, stream: true, messages: [{ role: 'user', content: 'a b c d' }] }) }, invoke);
      const events = parseSse(out.sink.body);
      expect(events.at(-1)!.event).toBe('error');
      expect(out.record?.decision).toBe('upstream_stream_broken');
    }
  });
});

describe('translation refusals', () => {
  test('what Converse cannot express is a 400 in the client format, before any call', async () => {
    const before = bedrock.requests.length;
    const out = await h.call({
      path: '/v1/messages',
      body: JSON.stringify({ model: 'eu-claude', max_tokens: 5, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://example.com/x.png' } }] }] }),
    }, invoke);
    expect(out.sink.status).toBe(400);
    expect(out.json.type).toBe('error');
    expect(out.json.error.message).toContain('Amazon Bedrock takes images as base64 data');
    expect(bedrock.requests.length).toBe(before);
  });

  test('embeddings never route to Bedrock', async () => {
    const out = await h.call({ path: '/v1/embeddings', body: JSON.stringify({ model: `bedrock/${HAIKU}`, input: 'x' }) }, invoke);
    expect(out.sink.status).toBe(400);
    expect(out.json.error.message).toContain('Amazon Bedrock Converse');
  });
});

test('the vault refuses a key for a Bedrock provider that the router signs for with its role', async () => {
  const created = await h.admin('POST', '/admin/tenants', { tenantId: 'bedrock-iam-only', mode: 'managed', policy: {} });
  const res = await h.vault(created.json.token, 'POST', '/vault/secrets', { provider: 'bedrock-iam', apiKey: makeCanary('iam') });
  expect(res.status).toBe(400);
  expect(res.json.error.code).toBe('provider_uses_router_role');
});

test('GET /v1/models lists the IAM-granted Bedrock models with their provider', async () => {
  const out = await h.call({ method: 'GET', path: '/v1/models' }, invoke);
  const ids = (out.json.data as Array<{ id: string; owned_by: string }>).filter((m) => m.owned_by === 'bedrock-iam').map((m) => m.id);
  expect(ids).toEqual(expect.arrayContaining([`bedrock-iam/${HAIKU}`, `bedrock-iam/${NOVA}`]));
});

/** The environment the construct gives a function, for cellConfigFromEnv. */
function configEnv(): Record<string, string> {
  return {
    CELL_REGION: REGION,
    ROOT_KEY_ARN: 'arn:aws:kms:eu-central-1:111122223333:key/00000000-0000-0000-0000-000000000000',
    PEPPER_SECRET_ARN: 'arn:aws:secretsmanager:eu-central-1:111122223333:secret:pepper',
    TENANTS_TABLE: 't',
    TOKENS_TABLE: 'k',
    COUNTERS_TABLE: 'c',
    USAGE_TABLE: 'u',
    AUDIT_TABLE: 'a',
    ERASURE_TABLE: 'e',
  };
}
