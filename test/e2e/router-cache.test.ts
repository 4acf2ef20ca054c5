/**
 * The response cache on the router (issue 14 point 5), production wiring over moto (the DynamoDB
 * cache table) and the fake providers, with counting KMS and provider fakes: a hit makes no KMS
 * call, no provider call and no reservation, is replayed as the client got it (JSON or a complete
 * stream, OpenAI and Anthropic formats), is marked on the usage record and in a response header;
 * identical requests from two tenants never share an entry; a table writer who moves or edits
 * entries gets misses, never another tenant's answer; stored entries are ciphertext.
 */
import { DeleteItemCommand, ScanCommand, UpdateItemCommand, type AttributeValue } from '@aws-sdk/client-dynamodb';
import { SseParser } from '../../lambda/core/sse';
import { canaryHits, makeCanary } from '../support/canary';
import { FAKE_PROVIDER_KEYS, RouterHarness, startRouterHarness } from '../support/router-harness';

let h: RouterHarness;
let a: string;
let b: string;
const CACHED = { cache: { ttlSeconds: 300 } };

beforeAll(async () => {
  h = await startRouterHarness();
  ({ invokeToken: a } = await h.tenant('tenant-a', { policy: CACHED }));
  ({ invokeToken: b } = await h.tenant('tenant-b', { policy: CACHED }));
});
afterAll(() => h?.close());

const chatBody = (content: string, extra: Record<string, unknown> = {}) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });

/** What one call cost: KMS commands, provider requests, DynamoDB commands. */
async function counted(path: string, body: unknown, token: string, headers: Record<string, string> = {}) {
  const [kms, provider, ddb] = [h.kmsCalls.length, h.fakes.requests.length, h.ddbCalls.length];
  const out = await h.call({ path, body: typeof body === 'string' ? body : JSON.stringify(body), headers }, token);
  return { ...out, kms: h.kmsCalls.slice(kms), provider: h.fakes.requests.length - provider, ddb: h.ddbCalls.slice(ddb) };
}

async function cacheItems(): Promise<Record<string, AttributeValue>[]> {
  const out = await h.cell.clients.ddb.send(new ScanCommand({ TableName: h.cell.config.tables.cache!, ConsistentRead: true }));
  return out.Items ?? [];
}

test('a hit makes no KMS call, no provider call and no reservation, costs nothing, and replays the first answer', async () => {
  const body = chatBody('cache me please', { temperature: 0 });
  const miss = await counted('/v1/chat/completions', body, a);
  expect(miss.sink.status).toBe(200);
  expect(miss.sink.headers['x-sovereign-cache']).toBe('miss');
  expect([miss.kms, miss.provider]).toEqual([['DecryptCommand'], 1]);
  expect(miss.record).toMatchObject({ cache: 'miss', decision: 'ok', provider: 'openai' });
  expect(miss.record?.costUsd).toBeGreaterThan(0);

  // The same request with its keys in another order and other spacing: one canonical form.
  const reordered = `{ "temperature": 0,\n "messages": [{"content": "cache me please", "role": "user"}], "model": "gpt-4o-mini" }`;
  const hit = await counted('/v1/chat/completions', reordered, a);
  expect(hit.sink.status).toBe(200);
  expect(hit.sink.headers['x-sovereign-cache']).toBe('hit');
  expect(hit.kms).toEqual([]);
  expect(hit.provider).toBe(0);
  // The request's read, the cache entry, the usage record: no reservation, no settle.
  expect(hit.ddb).toEqual(['BatchGetItemCommand', 'GetItemCommand', 'PutItemCommand']);
  expect(hit.sink.body).toBe(miss.sink.body);
  expect(hit.record).toMatchObject({ cache: 'hit', decision: 'ok', status: 200, costUsd: 0, provider: 'openai', upstreamModel: 'gpt-4o-mini' });
  expect(hit.record?.keyUses).toBeUndefined();
  const metric = JSON.parse(h.metrics.at(-1)!);
  expect(metric).toMatchObject({ Cache: 'hit', CacheHits: 1, CostUsd: 0 });
});

test('cross-tenant isolation: the same request from another tenant is a miss with its own entry, then its own hit', async () => {
  const body = chatBody('identical for both tenants');
  const fromA = await counted('/v1/chat/completions', body, a);
  const fromB = await counted('/v1/chat/completions', body, b);
  expect([fromA.sink.headers['x-sovereign-cache'], fromB.sink.headers['x-sovereign-cache']]).toEqual(['miss', 'miss']);
  expect(fromB.provider).toBe(1);
  expect(fromB.sink.body).not.toBe(fromA.sink.body); // the provider's second answer (its own id)
  const againB = await counted('/v1/chat/completions', body, b);
  expect([againB.sink.headers['x-sovereign-cache'], againB.provider, againB.sink.body]).toEqual(['hit', 0, fromB.sink.body]);
  const againA = await counted('/v1/chat/completions', body, a);
  expect([againA.sink.headers['x-sovereign-cache'], againA.sink.body]).toEqual(['hit', fromA.sink.body]);
  const tenants = (await cacheItems()).map((i) => i.tenantId.S);
  expect(tenants.filter((t) => t === 'tenant-a').length).toBeGreaterThanOrEqual(2);
  expect(tenants.filter((t) => t === 'tenant-b').length).toBe(1);
});

test('streams are replayed whole and well-formed, OpenAI and Anthropic formats, with the first byte written per event', async () => {
  for (const [path, body, end] of [
    ['/v1/chat/completions', chatBody('stream me', { stream: true, stream_options: { include_usage: true } }), 'data: [DONE]'],
    ['/v1/messages', { model: 'claude-haiku-4-5', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'stream me too' }] }, 'event: message_stop'],
    ['/v1/chat/completions', { ...chatBody('across formats', { stream: true }), model: 'claude-haiku-4-5' }, 'data: [DONE]'],
  ] as const) {
    const miss = await counted(path, body, a);
    expect(miss.sink.headers['x-sovereign-cache']).toBe('miss');
    const hit = await counted(path, body, a);
    expect([hit.sink.status, hit.sink.headers['x-sovereign-cache'], hit.kms, hit.provider]).toEqual([200, 'hit', [], 0]);
    expect(hit.sink.headers['content-type']).toContain('text/event-stream');
    expect(hit.sink.body).toBe(miss.sink.body);
    expect(hit.sink.body).toContain(end);
    expect(hit.sink.chunks.length).toBeGreaterThan(2);
    // Every event parses, and each chunk written is whole events.
    for (const chunk of hit.sink.chunks) expect(chunk.endsWith('\n\n')).toBe(true);
    const events = new SseParser().push(hit.sink.body);
    for (const e of events) if (e.data !== '[DONE]') expect(() => JSON.parse(e.data)).not.toThrow();
  }
});

test('opt-in per route and per API; a client can bypass; a tenant without the policy gets no header', async () => {
  const { invokeToken } = await h.tenant('route-cached', { policy: { cache: { ttlSeconds: 60, routes: ['gpt-4o-mini'], apis: ['chat'] } } });
  const first = await counted('/v1/chat/completions', chatBody('per route'), invokeToken);
  const second = await counted('/v1/chat/completions', chatBody('per route'), invokeToken);
  expect([first.sink.headers['x-sovereign-cache'], second.sink.headers['x-sovereign-cache']]).toEqual(['miss', 'hit']);
  const other = await counted('/v1/chat/completions', { ...chatBody('per route'), model: 'mistral-small-latest' }, invokeToken);
  const otherAgain = await counted('/v1/chat/completions', { ...chatBody('per route'), model: 'mistral-small-latest' }, invokeToken);
  expect([other.sink.headers['x-sovereign-cache'], otherAgain.provider, otherAgain.record?.cache]).toEqual([undefined, 1, undefined]);
  const bypass = await counted('/v1/chat/completions', chatBody('per route'), invokeToken, { 'x-sovereign-cache': 'bypass' });
  expect([bypass.sink.headers['x-sovereign-cache'], bypass.provider, bypass.record?.cache]).toEqual(['bypass', 1, 'bypass']);

  const { invokeToken: plain } = await h.tenant('not-cached');
  const p1 = await counted('/v1/chat/completions', chatBody('per route'), plain);
  const p2 = await counted('/v1/chat/completions', chatBody('per route'), plain);
  expect([p1.sink.headers['x-sovereign-cache'], p2.sink.headers['x-sovereign-cache'], p2.provider]).toEqual([undefined, undefined, 1]);
});

test('failed and broken answers are not cached', async () => {
  h.fakes.script('openai', [{ kind: 'status', status: 400 }]);
  const refused = await counted('/v1/chat/completions', chatBody('bad request'), a);
  expect(refused.sink.status).toBe(400);
  const retry = await counted('/v1/chat/completions', chatBody('bad request'), a);
  expect([retry.sink.status, retry.sink.headers['x-sovereign-cache'], retry.provider]).toEqual([200, 'miss', 1]);

  h.fakes.script('openai', [{ kind: 'break-stream', afterEvents: 2 }]);
  const broken = await counted('/v1/chat/completions', chatBody('broken stream', { stream: true }), a);
  expect(broken.record?.decision).toBe('upstream_stream_broken');
  const again = await counted('/v1/chat/completions', chatBody('broken stream', { stream: true }), a);
  expect([again.sink.headers['x-sovereign-cache'], again.provider]).toEqual(['miss', 1]);
});

test('entries are ciphertext, and a table writer who copies or edits them gets misses, never another answer', async () => {
  const secretWords = 'the launch code phrase is orange-kestrel';
  const first = await counted('/v1/chat/completions', chatBody(secretWords), a);
  expect(first.sink.body).toContain('orange-kestrel'); // the fake echoes the prompt
  const items = await cacheItems();
  for (const i of items) {
    const bytes = Buffer.from(i.sealed.B!);
    expect(bytes.toString('latin1')).not.toContain('orange-kestrel');
    expect(bytes.toString('latin1')).not.toContain('chatcmpl');
    expect(Object.keys(i).sort()).toEqual(['expiresAt', 'pk', 'sealed', 'tenantId']);
  }
  // Tenant B asks the same; then its entry is overwritten with A's sealed bytes (relabelled as B's).
  await counted('/v1/chat/completions', chatBody(secretWords), b);
  const all = await cacheItems();
  const newest = (tenant: string) => all.filter((i) => i.tenantId.S === tenant).sort((x, y) => Number(y.expiresAt.N) - Number(x.expiresAt.N));
  const aItem = newest('tenant-a').find((i) => i.expiresAt.N === newest('tenant-a')[0].expiresAt.N)!;
  const bItem = newest('tenant-b')[0];
  const table = h.cell.config.tables.cache!;
  const put = (pk: AttributeValue, values: Record<string, AttributeValue>) =>
    h.cell.clients.ddb.send(
      new UpdateItemCommand({
        TableName: table,
        Key: { pk },
        UpdateExpression: `SET ${Object.keys(values).map((k) => `${k} = :${k}`).join(', ')}`,
        ExpressionAttributeValues: Object.fromEntries(Object.entries(values).map(([k, v]) => [`:${k}`, v])),
      }),
    );
  await put(bItem.pk, { sealed: aItem.sealed, expiresAt: aItem.expiresAt });
  const logs = h.logs.length;
  const swapped = await counted('/v1/chat/completions', chatBody(secretWords), b);
  expect([swapped.sink.headers['x-sovereign-cache'], swapped.provider]).toEqual(['miss', 1]);
  expect(h.logs.slice(logs).join('\n')).toContain('cache entry refused');

  // A later expiry written onto an entry (to keep it longer) does not open either.
  const fresh = (await cacheItems()).find((i) => i.pk.S === bItem.pk.S)!;
  await put(fresh.pk, { expiresAt: { N: String(Number(fresh.expiresAt.N) + 86_400) } });
  const extended = await counted('/v1/chat/completions', chatBody(secretWords), b);
  expect([extended.sink.headers['x-sovereign-cache'], extended.provider]).toEqual(['miss', 1]);
});

test('an expired entry is a miss even before TTL deletion removes it', async () => {
  const clock = { t: Date.now() };
  const router = h.makeRouter({ now: () => clock.t });
  const call = async () => {
    const { MemorySink } = await import('../../lambda/core/router/response-sink');
    const sink = new MemorySink();
    const provider = h.fakes.requests.length;
    await router({ method: 'POST', path: '/v1/chat/completions', headers: { 'content-type': 'application/json', authorization: `Bearer ${a}` }, body: JSON.stringify(chatBody('expiring')) }, sink);
    return [sink.headers['x-sovereign-cache'], h.fakes.requests.length - provider];
  };
  expect(await call()).toEqual(['miss', 1]);
  clock.t += 299_000;
  expect(await call()).toEqual(['hit', 0]);
  clock.t += 2_000;
  expect(await call()).toEqual(['miss', 1]);
});

test('sovereign tenants: entries need the tenant factor from a live token, and still hit without KMS', async () => {
  const { invokeToken } = await h.tenant('sovereign-c', { mode: 'sovereign', policy: CACHED });
  const miss = await counted('/v1/chat/completions', chatBody('sovereign question'), invokeToken);
  const hit = await counted('/v1/chat/completions', chatBody('sovereign question'), invokeToken);
  expect([miss.sink.headers['x-sovereign-cache'], hit.sink.headers['x-sovereign-cache'], hit.kms, hit.provider]).toEqual(['miss', 'hit', [], 0]);
  expect(hit.sink.body).toBe(miss.sink.body);
});

test('guardrails run first: a refused request never reaches the cache, a redacted one is cached in its redacted form', async () => {
  const { invokeToken } = await h.tenant('guarded-cache', { policy: { ...CACHED, guardrails: { personalData: { email: 'redact', card: 'refuse' } } } });
  const one = await counted('/v1/chat/completions', chatBody('reply to bob@example.com'), invokeToken);
  const two = await counted('/v1/chat/completions', chatBody('reply to eve@example.org'), invokeToken);
  expect([one.sink.headers['x-sovereign-cache'], two.sink.headers['x-sovereign-cache'], two.provider]).toEqual(['miss', 'hit', 0]);
  expect(two.sink.body).not.toContain('bob@example.com');
  const refused = await counted('/v1/chat/completions', chatBody('card 4111 1111 1111 1111'), invokeToken);
  expect([refused.sink.status, refused.sink.headers['x-sovereign-cache'], refused.ddb]).toEqual([400, undefined, ['BatchGetItemCommand', 'PutItemCommand']]);
});

test('canary: a provider key never reaches a cache entry, a replay, a log line, a metric or a usage record', async () => {
  const canary = makeCanary('cache');
  h.fakes.setKey('openai', canary);
  try {
    const { invokeToken } = await h.tenant('canary-cache', { policy: CACHED, keys: { openai: canary } });
    const [logs, metrics] = [h.logs.length, h.metrics.length];
    const seen: string[] = [];
    for (const body of [chatBody('canary check'), chatBody('canary check'), chatBody('canary stream', { stream: true }), chatBody('canary stream', { stream: true })]) {
      const r = await counted('/v1/chat/completions', body, invokeToken);
      expect(r.sink.status).toBe(200);
      seen.push(r.sink.body, JSON.stringify(r.sink.headers), JSON.stringify(r.record));
    }
    expect(h.fakes.openai.requests.at(-1)?.headers.authorization).toBe(`Bearer ${canary}`); // the key was used
    const items = (await cacheItems()).filter((i) => i.tenantId.S === 'canary-cache');
    expect(items.length).toBe(2);
    for (const i of items) {
      const sealed = Buffer.from(i.sealed.B!);
      seen.push(sealed.toString('latin1'), sealed.toString('base64'), sealed.toString('hex'), JSON.stringify({ ...i, sealed: undefined }));
    }
    seen.push(...h.logs.slice(logs), ...h.metrics.slice(metrics));
    expect(canaryHits(seen.join('\n'), [canary])).toEqual([]);
  } finally {
    h.fakes.setKey('openai', FAKE_PROVIDER_KEYS.openai);
  }
});

test("offboarding's erasure-key delete shreds the tenant's cached answers too: the same entry is never served again", async () => {
  const { invokeToken } = await h.tenant('shred-cached', { policy: CACHED });
  const body = chatBody('cache me, then forget me');
  expect((await counted('/v1/chat/completions', body, invokeToken)).sink.headers['x-sovereign-cache']).toBe('miss');
  expect((await counted('/v1/chat/completions', body, invokeToken)).sink.headers['x-sovereign-cache']).toBe('hit');
  const entries = (await cacheItems()).length;

  // What offboarding does first (and what a restored copy of every other table lacks): the erasure key is gone.
  await h.cell.clients.ddb.send(new DeleteItemCommand({ TableName: h.cell.config.tables.erasure, Key: { tenantId: { S: 'shred-cached' } } }));
  const after = await counted('/v1/chat/completions', body, invokeToken);
  // The entry is still in the table, but the keys that found and opened it needed the erasure key.
  expect((await cacheItems()).length).toBeGreaterThanOrEqual(entries);
  expect(after.sink.headers['x-sovereign-cache']).toBe('miss');
  expect(after.sink.status).not.toBe(200);
  expect(after.provider).toBe(0);
});
