import { RouterHarness, startRouterHarness } from '../support/router-harness';

let h: RouterHarness;
let invoke: string;
beforeAll(async () => {
  h = await startRouterHarness();
  ({ invokeToken: invoke } = await h.tenant('acme'));
});
afterAll(() => h?.close());

const chat = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }], ...extra });

test('OpenAI chat to OpenAI, non-streaming', async () => {
  const { sink, json, record } = await h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invoke);
  expect(sink.status).toBe(200);
  expect(json.choices[0].message.content).toContain('hello there');
  expect(record?.provider).toBe('openai');
  expect(h.fakes.openai.requests.at(-1)?.headers.authorization).toBe('Bearer sk-openai-fake-0123456789abcdef');
});

test('OpenAI chat to Anthropic, streaming', async () => {
  const { sink, record } = await h.call({ path: '/v1/chat/completions', body: chat('claude-sonnet-4-5', { stream: true }) }, invoke);
  expect(sink.status).toBe(200);
  expect(sink.body).toContain('data: [DONE]');
  expect(record?.decision).toBe('ok');
  expect(record?.timeToFirstTokenMs).toBeGreaterThanOrEqual(0);
  expect(h.fakes.anthropic.requests.at(-1)?.headers['x-api-key']).toBe('sk-ant-fake-0123456789abcdef');
});

test('Anthropic messages to Mistral via x-api-key', async () => {
  const { sink, json } = await h.call({
    path: '/v1/messages',
    headers: { 'x-api-key': invoke },
    body: JSON.stringify({ model: 'mistral-large-latest', max_tokens: 50, messages: [{ role: 'user', content: 'bonjour' }] }),
  });
  expect(sink.status).toBe(200);
  expect(json.type).toBe('message');
  expect(JSON.stringify(json.content)).toContain('bonjour');
});

test('per request (production wiring, governance included), a tenant without limits: one DynamoDB read, one KMS Decrypt, two writes after the answer', async () => {
  const ddb = h.ddbCalls.length;
  const kms = h.kmsCalls.length;
  const { sink } = await h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invoke);
  expect(sink.status).toBe(200);
  // Read; no reservation (no budget, RPM or TPM); settle (spend counters) and usage record after the last byte.
  expect(h.ddbCalls.slice(ddb)).toEqual(['BatchGetItemCommand', 'TransactWriteItemsCommand', 'PutItemCommand']);
  expect(h.kmsCalls.slice(kms)).toEqual(['DecryptCommand']);
});

test("a policy's max_tokens cap reaches the provider even when the client omits max_tokens", async () => {
  const { invokeToken } = await h.tenant('capped', { policy: { maxTokens: 32 } });
  const { sink } = await h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken);
  expect(sink.status).toBe(200);
  expect((h.fakes.openai.requests.at(-1)?.body as Record<string, unknown>).max_completion_tokens).toBe(32);
  const viaMistral = await h.call({ path: '/v1/chat/completions', body: chat('mistral-small-latest') }, invokeToken);
  expect(viaMistral.sink.status).toBe(200);
  expect((h.fakes.mistral.requests.at(-1)?.body as Record<string, unknown>).max_tokens).toBe(32);
  const viaAnthropic = await h.call({ path: '/v1/chat/completions', body: chat('claude-haiku-4-5') }, invokeToken);
  expect(viaAnthropic.sink.status).toBe(200);
  expect((h.fakes.anthropic.requests.at(-1)?.body as Record<string, unknown>).max_tokens).toBe(32);
});
