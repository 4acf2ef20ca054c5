/**
 * Router routes, authentication and per-request I/O: every API route (streaming and not), where
 * credentials may come from, 404/405, the one-BatchGet/one-Decrypt budget on the normal path, and
 * denials before routing that cost no KMS call and no provider call. Sovereign tenants too.
 */
import { generateToken } from '../../lambda/core/token';
import { base62EncodeBigInt, crc32 } from '../../lambda/core/crypto-util';
import { MemorySink } from '../../lambda/core/router/response-sink';
import { parseSse, RouterHarness, spyProviders, startRouterHarness } from '../support/router-harness';

let h: RouterHarness;
let invoke: string;
let adminToken: string;
let listInvoke: string;
let governedInvoke: string;
const TENANT = 'routes-co';
const ROUTES = {
  smart: [
    { provider: 'anthropic', model: 'claude-sonnet-4-5' },
    { provider: 'openai', model: 'gpt-4o' },
  ],
  'cheap-embed': [{ provider: 'mistral', model: 'mistral-embed' }],
  'claude-embed': [{ provider: 'anthropic', model: 'claude-sonnet-4-5' }],
};

beforeAll(async () => {
  h = await startRouterHarness();
  // The router runs with production governance: the allowlist lives on a tenant of its own.
  ({ invokeToken: invoke, adminToken } = await h.tenant(TENANT, { policy: { routes: ROUTES } }));
  ({ invokeToken: listInvoke } = await h.tenant('routes-list', { policy: { allowedModels: ['gpt-4o-mini', 'claude-haiku-4-5'], routes: ROUTES } }));
  ({ invokeToken: governedInvoke } = await h.tenant('routes-governed', { policy: { routes: ROUTES, monthlyBudgetUsd: 50, rpm: 600, tpm: 1_000_000 } }));
}, 60_000);
afterAll(() => h?.close());

const chat = (model: string, extra: Record<string, unknown> = {}) => JSON.stringify({ model, messages: [{ role: 'user', content: 'hello there' }], ...extra });
const messages = (model: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ model, max_tokens: 64, messages: [{ role: 'user', content: 'hello there' }], ...extra });

const isRead = (command: string) => /^(BatchGetItem|GetItem|Query|Scan)Command$/.test(command);

/** Deltas of AWS SDK commands and fake provider requests around one call. */
async function measured<T>(fn: () => Promise<T>) {
  const kms = h.kmsCalls.length;
  const ddb = h.ddbCalls.length;
  const upstream = h.fakes.requests.length;
  const out = await fn();
  return {
    out,
    kms: h.kmsCalls.slice(kms),
    ddbReads: h.ddbCalls.slice(ddb).filter(isRead),
    ddbWrites: h.ddbCalls.slice(ddb).filter((c) => !isRead(c)),
    upstream: h.fakes.requests.length - upstream,
  };
}

function expectOpenAiError(json: any, code: string) {
  expect(json).toEqual({ error: expect.objectContaining({ code, message: expect.any(String), type: expect.any(String) }) });
}

describe('routes', () => {
  test('POST /v1/chat/completions, non-streaming', async () => {
    const { sink, json, record } = await h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invoke);
    expect(sink.status).toBe(200);
    expect(sink.headers['content-type']).toMatch(/^application\/json/);
    expect(json.object).toBe('chat.completion');
    expect(json.choices[0].message).toMatchObject({ role: 'assistant', content: 'Echo: hello there' });
    expect(record).toMatchObject({ route: 'chat', stream: false, status: 200, decision: 'ok', provider: 'openai', upstreamModel: 'gpt-4o-mini', tenantId: TENANT });
    expect(record?.inputTokens).toBe(json.usage.prompt_tokens);
    expect(record?.outputTokens).toBe(json.usage.completion_tokens);
  });

  test('POST /v1/chat/completions, streaming', async () => {
    const { sink, record } = await h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { stream: true }) }, invoke);
    expect(sink.status).toBe(200);
    expect(sink.headers['content-type']).toMatch(/^text\/event-stream/);
    const events = parseSse(sink.body);
    expect(events.at(-1)?.data).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.data));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe('Echo: hello there');
    // The router forced include_usage upstream to settle cost, but the client did not ask for it.
    expect(chunks.some((c) => Array.isArray(c.choices) && c.choices.length === 0)).toBe(false);
    expect(h.fakes.openai.requests.at(-1)?.body).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expect(record).toMatchObject({ stream: true, decision: 'ok', provider: 'openai' });
    expect(record?.outputTokens).toBeGreaterThan(0);
  });

  test('POST /v1/embeddings to OpenAI', async () => {
    const { sink, json, record } = await h.call({ path: '/v1/embeddings', body: JSON.stringify({ model: 'text-embedding-3-small', input: ['a', 'bb'] }) }, invoke);
    expect(sink.status).toBe(200);
    expect(json.object).toBe('list');
    expect(json.data).toHaveLength(2);
    expect(json.data[0].embedding).toHaveLength(8);
    expect(h.fakes.openai.requests.at(-1)).toMatchObject({ path: '/v1/embeddings', body: { model: 'text-embedding-3-small' } });
    expect(record).toMatchObject({ route: 'embeddings', provider: 'openai', inputTokens: json.usage.prompt_tokens, outputTokens: 0 });
  });

  test('POST /v1/embeddings to Mistral, by name and by alias', async () => {
    for (const model of ['mistral-embed', 'cheap-embed']) {
      const before = h.fakes.mistral.requests.length;
      const { sink, json, record } = await h.call({ path: '/v1/embeddings', body: JSON.stringify({ model, input: 'bonjour' }) }, invoke);
      expect(sink.status).toBe(200);
      expect(json.data).toHaveLength(1);
      expect(h.fakes.mistral.requests.length).toBe(before + 1);
      expect(h.fakes.mistral.requests.at(-1)).toMatchObject({ path: '/v1/embeddings', body: { model: 'mistral-embed', input: 'bonjour' } });
      expect(record).toMatchObject({ provider: 'mistral', upstreamModel: 'mistral-embed' });
    }
  });

  test('POST /v1/embeddings to an Anthropic model or alias: clear 400, nothing called', async () => {
    for (const model of ['claude-embed', 'claude-sonnet-4-5', 'anthropic/claude-sonnet-4-5']) {
      const { out, kms, upstream } = await measured(() => h.call({ path: '/v1/embeddings', body: JSON.stringify({ model, input: 'x' }) }, invoke));
      expect(out.sink.status).toBe(400);
      expectOpenAiError(out.json, 'model_not_routable');
      expect(out.json.error.message).toMatch(/embeddings/i);
      expect(out.json.error.message).toMatch(/anthropic/i);
      expect(kms).toEqual([]);
      expect(upstream).toBe(0);
    }
  });

  test('GET /v1/models lists the allowed models that route, owned by their provider, with no KMS or provider call', async () => {
    const { out, kms, upstream, ddbReads } = await measured(() => h.call({ method: 'GET', path: '/v1/models' }, listInvoke));
    expect(out.sink.status).toBe(200);
    expect(out.json.object).toBe('list');
    // The allowlist holds: route aliases outside it ('smart', ...) would be denied, so they are not offered.
    expect(out.json.data).toEqual([
      { id: 'claude-haiku-4-5', object: 'model', created: 0, owned_by: 'anthropic' },
      { id: 'gpt-4o-mini', object: 'model', created: 0, owned_by: 'openai' },
    ]);
    expect(kms).toEqual([]);
    expect(upstream).toBe(0);
    expect(ddbReads).toEqual(['BatchGetItemCommand']);
  });

  test('POST /v1/messages, non-streaming, Authorization: Bearer', async () => {
    const { sink, json, record } = await h.call({ path: '/v1/messages', body: messages('claude-sonnet-4-5') }, invoke);
    expect(sink.status).toBe(200);
    expect(json).toMatchObject({ type: 'message', role: 'assistant', stop_reason: 'end_turn', content: [{ type: 'text', text: 'Echo: hello there' }] });
    expect(record).toMatchObject({ route: 'messages', provider: 'anthropic', decision: 'ok', inputTokens: json.usage.input_tokens, outputTokens: json.usage.output_tokens });
  });

  test('POST /v1/messages, streaming, x-api-key', async () => {
    const { sink, record } = await h.call({ path: '/v1/messages', headers: { 'x-api-key': invoke }, body: messages('claude-sonnet-4-5', { stream: true }) });
    expect(sink.status).toBe(200);
    const events = parseSse(sink.body);
    expect(events[0].event).toBe('message_start');
    expect(events.at(-1)?.event).toBe('message_stop');
    expect(record).toMatchObject({ route: 'messages', stream: true, decision: 'ok' });
  });

  test('x-api-key on the OpenAI routes is not a credential: 401', async () => {
    for (const path of ['/v1/chat/completions', '/v1/embeddings']) {
      const body = path === '/v1/embeddings' ? JSON.stringify({ model: 'text-embedding-3-small', input: 'x' }) : chat('gpt-4o-mini');
      const { out, kms, ddbReads, upstream } = await measured(() => h.call({ path, headers: { 'x-api-key': invoke }, body }));
      expect(out.sink.status).toBe(401);
      expectOpenAiError(out.json, 'missing_api_key');
      expect(out.sink.body).not.toContain(invoke);
      expect([kms, ddbReads, upstream]).toEqual([[], [], 0]);
    }
    const models = await h.call({ method: 'GET', path: '/v1/models', headers: { 'x-api-key': invoke } });
    expect(models.sink.status).toBe(401);
  });

  test('no credentials at all: 401 in each route\'s error shape', async () => {
    const openai = await h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') });
    expect(openai.sink.status).toBe(401);
    expectOpenAiError(openai.json, 'missing_api_key');
    const anthropic = await h.call({ path: '/v1/messages', body: messages('claude-sonnet-4-5') });
    expect(anthropic.sink.status).toBe(401);
    expect(anthropic.json).toEqual({ type: 'error', error: expect.objectContaining({ type: 'authentication_error', message: expect.any(String) }) });
  });

  test('unknown route 404, wrong method 405, both without I/O', async () => {
    const { out: notFound, ddbReads, kms } = await measured(() => h.call({ path: '/v1/completions', body: chat('gpt-4o-mini') }, invoke));
    expect(notFound.sink.status).toBe(404);
    expectOpenAiError(notFound.json, 'not_found');
    expect([ddbReads, kms]).toEqual([[], []]);
    for (const [method, path, allowed] of [
      ['GET', '/v1/chat/completions', 'POST'],
      ['PUT', '/v1/embeddings', 'POST'],
      ['POST', '/v1/models', 'GET'],
      ['DELETE', '/v1/messages', 'POST'],
    ]) {
      const { out } = await measured(() => h.call({ method, path, body: chat('gpt-4o-mini') }, invoke));
      expect(out.sink.status).toBe(405);
      expect(out.sink.body).toContain(allowed);
    }
    const wrongOnMessages = await h.call({ method: 'GET', path: '/v1/messages' }, invoke);
    expect(wrongOnMessages.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
  });
});

describe('per-request I/O', () => {
  /**
   * The numbers the README states ("Per-request I/O"), counted with the production wiring (the
   * router as the Lambda handler and the local gateway compose it, DynamoGovernance included):
   * before the provider call one BatchGetItem (token, tenant META, default secrets, governance
   * counters) and one KMS Decrypt; for a tenant or token with a budget, RPM or TPM, in parallel
   * with the Decrypt, one TransactWriteItems (the reservation). After the client's last byte one
   * TransactWriteItems (settle: spend and rate counters, for every tenant) and one PutItem (usage record).
   */
  test.each([
    ['ungoverned', []],
    ['governed', ['TransactWriteItemsCommand']],
  ] as const)('%s tenant: 1 BatchGet + 1 Decrypt (+ the reservation only when limits apply) before the provider; settle + usage record after', async (kind, reservation) => {
    const token = kind === 'ungoverned' ? invoke : governedInvoke;
    const spy = spyProviders(h);
    const router = h.makeRouter({ providers: spy.client });
    for (const [path, body] of [
      ['/v1/chat/completions', chat('gpt-4o-mini')],
      ['/v1/chat/completions', chat('claude-sonnet-4-5', { stream: true })],
      ['/v1/messages', messages('mistral-small-latest')],
      ['/v1/embeddings', JSON.stringify({ model: 'text-embedding-3-small', input: 'x' })],
    ]) {
      const kms = h.kmsCalls.length;
      const ddb = h.ddbCalls.length;
      const sends = spy.sends.length;
      const sink = new MemorySink();
      await router({ method: 'POST', path, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body }, sink);
      expect([path, sink.status]).toEqual([path, 200]);
      expect(spy.sends.length).toBe(sends + 1);
      const send = spy.sends.at(-1)!;
      const before = h.ddbCalls.slice(ddb, send.ddbSoFar);
      expect(before.filter(isRead)).toEqual(['BatchGetItemCommand']);
      expect(before.filter((c) => !isRead(c))).toEqual(reservation);
      expect(h.kmsCalls.slice(kms, send.kmsSoFar)).toEqual(['DecryptCommand']);
      // After the provider call: no read, no KMS call; settle and the usage record.
      expect(h.ddbCalls.slice(send.ddbSoFar)).toEqual(['TransactWriteItemsCommand', 'PutItemCommand']);
      expect(h.kmsCalls.length).toBe(kms + 1);
    }
  });

  test('a malformed token is refused before any I/O', async () => {
    for (const bad of ['sk-not-ours', `${invoke.slice(0, -1)}${invoke.endsWith('A') ? 'B' : 'A'}`, 'sr_euc1_routes-co_short']) {
      const { out, kms, ddbReads, upstream } = await measured(() => h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, bad));
      expect(out.sink.status).toBe(401);
      expect(out.json.error.code).toMatch(/^invalid_api_key/);
      expect(out.sink.body).not.toContain(bad);
      expect([kms, ddbReads, upstream]).toEqual([[], [], 0]);
      expect(out.record).toBeUndefined();
    }
  });

  test('a well-formed token that does not exist: 401 after the one read, no KMS, no provider', async () => {
    const ghost = generateToken('euc1', TENANT);
    const { out, kms, ddbReads, upstream } = await measured(() => h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, ghost));
    expect(out.sink.status).toBe(401);
    expectOpenAiError(out.json, 'invalid_api_key');
    expect([kms, ddbReads, upstream]).toEqual([[], ['BatchGetItemCommand'], 0]);
  });

  test('a token from another region: 421 naming the home region, before any I/O', async () => {
    const foreign = generateToken('use1', TENANT);
    for (const path of ['/v1/chat/completions', '/v1/messages']) {
      const body = path === '/v1/messages' ? messages('claude-sonnet-4-5') : chat('gpt-4o-mini');
      const { out, kms, ddbReads, upstream } = await measured(() => h.call({ path, body }, foreign));
      expect(out.sink.status).toBe(421);
      const error = out.json.error;
      expect(error.code).toBe('wrong_region');
      expect(error.home_region).toBe('us-east-1');
      expect(error.message).toContain('us-east-1');
      if (path === '/v1/messages') expect(out.json.type).toBe('error');
      expect([kms, ddbReads, upstream]).toEqual([[], [], 0]);
    }
  });

  test('malformed bodies: 400 (or 415) before any I/O', async () => {
    const cases: Array<[string, string | undefined, Record<string, string>?]> = [
      ['/v1/chat/completions', '{not json'],
      ['/v1/chat/completions', undefined],
      ['/v1/chat/completions', '[]'],
      ['/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini' })],
      ['/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: [] })],
      ['/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], stream: 'yes' })],
      ['/v1/chat/completions', JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }], max_tokens: -1 })],
      ['/v1/chat/completions', JSON.stringify({ model: '', messages: [{ role: 'user', content: 'x' }] })],
      ['/v1/chat/completions', JSON.stringify({ model: 'gpt 4o', messages: [{ role: 'user', content: 'x' }] })],
      ['/v1/messages', JSON.stringify({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: 'x' }] })],
      ['/v1/embeddings', JSON.stringify({ model: 'text-embedding-3-small' })],
      ['/v1/embeddings', JSON.stringify({ model: 'text-embedding-3-small', input: [] })],
    ];
    for (const [path, body] of cases) {
      const { out, kms, ddbReads, upstream } = await measured(() => h.call({ path, body }, invoke));
      expect([path, body, out.sink.status]).toEqual([path, body, 400]);
      if (path === '/v1/messages') expect(out.json).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
      else expect(out.json.error.type).toBe('invalid_request_error');
      expect([kms, ddbReads, upstream]).toEqual([[], [], 0]);
    }
    const { out, kms, ddbReads } = await measured(() => h.call({ path: '/v1/chat/completions', headers: { 'content-type': 'text/plain' }, body: chat('gpt-4o-mini') }, invoke));
    expect(out.sink.status).toBe(415);
    expect([kms, ddbReads]).toEqual([[], []]);
  });

  test('an oversize body: 413 before any I/O, in both shapes', async () => {
    const big = 'x'.repeat(h.cell.config.maxRequestBytes + 1);
    const openai = await measured(() => h.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { pad: big }) }, invoke));
    expect(openai.out.sink.status).toBe(413);
    expect(openai.out.json.error).toMatchObject({ code: 'request_too_large', limit: h.cell.config.maxRequestBytes });
    expect([openai.kms, openai.ddbReads, openai.upstream]).toEqual([[], [], 0]);
    const anthropic = await measured(() => h.call({ path: '/v1/messages', body: messages('claude-sonnet-4-5', { pad: big }) }, invoke));
    expect(anthropic.out.sink.status).toBe(413);
    expect(anthropic.out.json).toMatchObject({ type: 'error', error: { type: 'request_too_large' } });
    expect([anthropic.kms, anthropic.ddbReads, anthropic.upstream]).toEqual([[], [], 0]);
  });

  test('a tenant-admin token cannot call models: 403, no KMS, no provider', async () => {
    for (const [path, body] of [
      ['/v1/chat/completions', chat('gpt-4o-mini')],
      ['/v1/messages', messages('claude-sonnet-4-5')],
    ]) {
      const { out, kms, ddbReads, upstream } = await measured(() => h.call({ path, body }, adminToken));
      expect(out.sink.status).toBe(403);
      expect(out.sink.body).toContain('insufficient_role');
      expect(out.sink.body).not.toContain(adminToken);
      expect([kms, ddbReads, upstream]).toEqual([[], ['BatchGetItemCommand'], 0]);
      expect(out.record).toMatchObject({ status: 403, decision: 'denied:insufficient_role', fallbackChain: [] });
    }
    const models = await h.call({ method: 'GET', path: '/v1/models' }, adminToken);
    expect(models.sink.status).toBe(403);
  });

  test('a model with no route: 400 after the read, no KMS, no provider', async () => {
    for (const model of ['llama-3-70b', 'ghost/some-model']) {
      const { out, kms, upstream } = await measured(() => h.call({ path: '/v1/chat/completions', body: chat(model) }, invoke));
      expect(out.sink.status).toBe(400);
      expectOpenAiError(out.json, 'model_not_routable');
      expect([kms, upstream]).toEqual([[], 0]);
    }
  });
});

describe('sovereign tenant', () => {
  let sovInvoke: string;
  let sovAdmin: string;
  let otherInvoke: string;
  beforeAll(async () => {
    ({ invokeToken: sovInvoke, adminToken: sovAdmin } = await h.tenant('sov-corp', {
      mode: 'sovereign',
      policy: { routes: { 'sov-only': [{ provider: 'openai', model: 'gpt-4o' }] } },
    }));
    ({ invokeToken: otherInvoke } = await h.tenant('other-corp'));
  });

  test('works with its invoke token, streaming and not, one Decrypt each', async () => {
    const a = await measured(() => h.call({ path: '/v1/chat/completions', body: chat('sov-only') }, sovInvoke));
    expect(a.out.sink.status).toBe(200);
    expect(a.out.json.choices[0].message.content).toBe('Echo: hello there');
    expect(a.out.record).toMatchObject({ tenantId: 'sov-corp', provider: 'openai', upstreamModel: 'gpt-4o' });
    expect(a.kms).toEqual(['DecryptCommand']);
    expect(a.ddbReads).toEqual(['BatchGetItemCommand']);
    // No limits: no reservation; settle (spend) and usage record after the last byte.
    expect(a.ddbWrites).toEqual(['TransactWriteItemsCommand', 'PutItemCommand']);
    const b = await h.call({ path: '/v1/messages', body: messages('claude-sonnet-4-5', { stream: true }) }, sovInvoke);
    expect(b.sink.status).toBe(200);
    expect(parseSse(b.sink.body).at(-1)?.event).toBe('message_stop');
  });

  test("another tenant's token cannot reach the sovereign tenant's routes or secrets", async () => {
    // Its own token is served as itself: the sovereign tenant's alias does not exist for it.
    const asOther = await measured(() => h.call({ path: '/v1/chat/completions', body: chat('sov-only') }, otherInvoke));
    expect(asOther.out.sink.status).toBe(400);
    expect(asOther.out.json.error.code).toBe('model_not_routable');
    expect(asOther.kms).toEqual([]);
    expect(asOther.upstream).toBe(0);

    // The other tenant's secret part relabelled with the sovereign tenant id (valid checksum).
    const random = otherInvoke.slice('sr_euc1_other-corp_'.length, -6);
    const head = `sr_euc1_sov-corp_${random}`;
    const relabelled = head + base62EncodeBigInt(BigInt(crc32(Buffer.from(head, 'utf8'))), 6);
    const forged = await measured(() => h.call({ path: '/v1/chat/completions', body: chat('sov-only') }, relabelled));
    expect(forged.out.sink.status).toBe(401);
    expect(forged.out.json.error.code).toBe('invalid_api_key');
    expect([forged.kms, forged.upstream]).toEqual([[], 0]);

    // Its admin token holds the factor but has the wrong role.
    const admin = await measured(() => h.call({ path: '/v1/chat/completions', body: chat('sov-only') }, sovAdmin));
    expect(admin.out.sink.status).toBe(403);
    expect([admin.kms, admin.upstream]).toEqual([[], 0]);
  });
});
