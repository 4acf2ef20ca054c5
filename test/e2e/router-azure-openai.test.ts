/**
 * Azure OpenAI as a provider kind (issue 14.2), through the real router, moto and a fake Azure
 * resource on loopback that checks the deployment path, the api-version and the `api-key` header:
 * OpenAI-format and Anthropic-format clients, streaming and not, embeddings, an older api-version
 * (no stream_options, no max_completion_tokens), a rejected key, an unknown deployment, and
 * deployment names that try to leave their path. The sealed Azure key never leaves the upstream
 * request: not in responses, logs, metrics or usage records.
 */
import { FAKE_AZURE_API_VERSION, FAKE_AZURE_LEGACY_API_VERSION } from '../support/fake-providers';
import { parseSse, RouterHarness, startRouterHarness } from '../support/router-harness';

const AZURE_KEY = 'a1b2c3d4e5f60718293a4b5c6d7e8f90'; // 32 hex characters, like an Azure key
let h: RouterHarness;
let invoke: string;
let adminToken: string;
const seen: string[] = [];

beforeAll(async () => {
  h = await startRouterHarness({
    extraProviders: (fakes) => ({
      azure: { kind: 'azure-openai', baseUrl: fakes.azure.baseUrl, apiVersion: FAKE_AZURE_API_VERSION },
      'azure-old': { kind: 'azure-openai', baseUrl: fakes.azure.baseUrl, apiVersion: FAKE_AZURE_LEGACY_API_VERSION },
      'azure-next': { kind: 'azure-openai', baseUrl: fakes.azure.baseUrl, apiVersion: '2099-01-01-preview' },
    }),
  });
  h.fakes.setKey('azure', AZURE_KEY);
  ({ invokeToken: invoke, adminToken } = await h.tenant('azure-co', {
    keys: { azure: AZURE_KEY, 'azure-old': AZURE_KEY, 'azure-next': AZURE_KEY },
    policy: { maxTokens: 64, routes: { 'eu-chat': [{ provider: 'azure', model: 'chat-eu' }] } },
  }));
}, 60_000);
afterAll(() => h?.close());

const chat = (model: string, extra: Record<string, unknown> = {}) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hello azure' }], ...extra });
const messages = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, max_tokens: 32, messages: [{ role: 'user', content: 'hello azure' }], ...extra });
const lastAzure = () => h.fakes.azure.requests.at(-1)!;

async function call(path: string, body: string, headers: Record<string, string> = {}) {
  const out = await h.call({ path, body, headers }, invoke);
  seen.push(out.sink.body, JSON.stringify(out.sink.headers), JSON.stringify(out.record ?? {}));
  return out;
}

function expectAzureCall(deployment: string, api: 'chat/completions' | 'embeddings', version = FAKE_AZURE_API_VERSION) {
  const up = lastAzure();
  expect(up.path).toBe(`/openai/deployments/${deployment}/${api}?api-version=${version}`);
  expect(up.headers['api-key']).toBe(AZURE_KEY);
  expect(up.headers.authorization).toBeUndefined();
  expect(up.headers['x-api-key']).toBeUndefined();
  return up.body as Record<string, any>;
}

test('OpenAI client, non-streaming, azure/<deployment>: deployment URL, api-version, api-key header', async () => {
  const { sink, json, record } = await call('/v1/chat/completions', chat('azure/chat-eu'));
  expect(sink.status).toBe(200);
  expect(json.choices[0].message.content).toBe('Echo: hello azure');
  expect(json.model).toBe('gpt-4o-mini'); // Azure answers with the deployment's model
  const body = expectAzureCall('chat-eu', 'chat/completions');
  expect(body.max_completion_tokens).toBe(64); // the policy cap, in the field current api-versions take
  expect(record).toMatchObject({ provider: 'azure', upstreamModel: 'chat-eu', decision: 'ok', status: 200 });
  expect(record?.inputTokens).toBeGreaterThan(0);
});

test('OpenAI client, streaming through a route alias: the prompt-filter chunk passes, usage is counted', async () => {
  const { sink, record } = await call('/v1/chat/completions', chat('eu-chat', { stream: true }));
  expect(sink.status).toBe(200);
  expect(sink.headers['content-type']).toMatch(/^text\/event-stream/);
  const events = parseSse(sink.body);
  expect(events.at(-1)?.data).toBe('[DONE]');
  const text = events
    .filter((e) => e.data !== '[DONE]')
    .map((e) => JSON.parse(e.data).choices?.[0]?.delta?.content ?? '')
    .join('');
  expect(text).toBe('Echo: hello azure');
  expect(expectAzureCall('chat-eu', 'chat/completions').stream_options).toEqual({ include_usage: true });
  expect(record).toMatchObject({ provider: 'azure', stream: true, decision: 'ok' });
  expect(record?.outputTokens).toBeGreaterThan(0);
});

test('Anthropic client, non-streaming and streaming: translated both ways', async () => {
  const plain = await call('/v1/messages', messages('eu-chat'), { 'anthropic-version': '2023-06-01' });
  expect(plain.sink.status).toBe(200);
  expect(plain.json).toMatchObject({ type: 'message', role: 'assistant', content: [{ type: 'text', text: 'Echo: hello azure' }], stop_reason: 'end_turn' });
  const up = expectAzureCall('chat-eu', 'chat/completions');
  expect(up.messages).toEqual([{ role: 'user', content: 'hello azure' }]);
  expect(up.max_completion_tokens).toBe(32);

  const streamed = await call('/v1/messages', messages('azure/chat-eu', { stream: true }));
  expect(streamed.sink.status).toBe(200);
  const events = parseSse(streamed.sink.body);
  expect(events[0].event).toBe('message_start');
  expect(events.at(-1)?.event).toBe('message_stop');
  const text = events
    .filter((e) => e.event === 'content_block_delta')
    .map((e) => JSON.parse(e.data).delta.text)
    .join('');
  expect(text).toBe('Echo: hello azure');
  expect(streamed.record).toMatchObject({ route: 'messages', provider: 'azure', decision: 'ok' });
});

test('embeddings go to the embeddings deployment', async () => {
  const { sink, json, record } = await call('/v1/embeddings', JSON.stringify({ model: 'azure/embed-eu', input: 'bonjour' }));
  expect(sink.status).toBe(200);
  expect(json.data[0].embedding.length).toBeGreaterThan(0);
  expectAzureCall('embed-eu', 'embeddings');
  expect(record).toMatchObject({ provider: 'azure', upstreamModel: 'embed-eu' });
});

test('an older api-version gets max_tokens and no stream_options, streaming and not, from both client formats', async () => {
  const a = await call('/v1/chat/completions', chat('azure-old/chat-eu', { stream: true }));
  expect(a.sink.status).toBe(200);
  let up = expectAzureCall('chat-eu', 'chat/completions', FAKE_AZURE_LEGACY_API_VERSION);
  expect([up.stream_options, up.max_completion_tokens, up.max_tokens]).toEqual([undefined, undefined, 64]);
  const b = await call('/v1/messages', messages('azure-old/chat-eu', { stream: true }));
  expect(b.sink.status).toBe(200);
  up = expectAzureCall('chat-eu', 'chat/completions', FAKE_AZURE_LEGACY_API_VERSION);
  expect([up.stream_options, up.max_completion_tokens, up.max_tokens]).toEqual([undefined, undefined, 32]);
});

test('an api-version the resource does not know, an unknown deployment: the resource’s 4xx, no fallback', async () => {
  const version = await call('/v1/chat/completions', chat('azure-next/chat-eu'));
  expect(version.sink.status).toBe(400);
  expect(version.json.error.code).toBe('upstream_rejected_request');
  expect(lastAzure().path).toContain('api-version=2099-01-01-preview');
  const missing = await call('/v1/chat/completions', chat('azure/no-such-deployment'));
  expect(missing.sink.status).toBe(404);
  expect(missing.json.error.message).toContain('no-such-deployment');
  expect(missing.record?.fallbackChain).toHaveLength(1);
});

test('deployment names that would leave the deployment path are refused before any KMS or provider call', async () => {
  const kms = h.kmsCalls.length;
  const upstream = h.fakes.azure.requests.length;
  for (const model of ['azure/../../openai/models', 'azure/..', 'azure/chat-eu?api-version=1', 'azure/chat eu', 'azure/chat%2Feu', 'azure/-x']) {
    const res = await call('/v1/chat/completions', chat(model));
    // A space is already refused as a model name; the rest by the deployment-name check.
    expect([model, res.sink.status, res.json.error.code]).toEqual([model, 400, model.includes(' ') ? 'invalid_model' : 'model_not_routable']);
  }
  expect(h.kmsCalls.length).toBe(kms);
  expect(h.fakes.azure.requests.length).toBe(upstream);
});

test('a key Azure rejects: 502 provider_rejected_key, in both shapes, without the key', async () => {
  const wrong = 'ffffffffffffffffffffffffffffffff';
  expect((await h.vault(adminToken, 'PUT', '/vault/secrets/azure/default', { apiKey: wrong })).status).toBeLessThan(300);
  try {
    const a = await call('/v1/chat/completions', chat('azure/chat-eu'));
    expect(a.sink.status).toBe(502);
    expect(a.json.error.code).toBe('provider_rejected_key');
    const b = await call('/v1/messages', messages('eu-chat'));
    expect(b.sink.status).toBe(502);
    expect(b.json.type).toBe('error');
    expect(lastAzure().headers['api-key']).toBe(wrong);
    for (const text of [a.sink.body, b.sink.body]) expect(text).not.toContain(wrong);
  } finally {
    expect((await h.vault(adminToken, 'PUT', '/vault/secrets/azure/default', { apiKey: AZURE_KEY })).status).toBeLessThan(300);
  }
});

test('the Azure key appears nowhere but in the upstream api-key header', () => {
  const everything = [...seen, ...h.logs, ...h.metrics].join('\n');
  expect(everything).not.toContain(AZURE_KEY);
  expect(everything).not.toContain(AZURE_KEY.slice(0, 12));
  for (const r of h.fakes.azure.requests) expect(JSON.stringify(r.body ?? '')).not.toContain(AZURE_KEY);
});
