/**
 * A client that disconnects (issue 14.6): the router behind a node:http server wired like the
 * local gateway (its socket-close signal), called with the official SDKs, which abort mid-stream.
 * For each streaming format (OpenAI chat SSE, Anthropic messages SSE, Responses SSE) and for a
 * cut before the answer began, the slow fake upstream must see its connection closed within a
 * bound, the usage record must say `aborted` with the settled amount, and no reservation may be
 * left behind.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { costMicros, PriceBook } from '../../lambda/core/governance/prices';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import type { FakeProviderName, RecordedRequest } from '../support/fake-providers';
import { FAKE_PROVIDER_KEYS, RouterHarness, startRouterHarness } from '../support/router-harness';
import { RouterServer, serveRouter } from '../support/router-http';
import { counters, governanceRouter, serializeDynamoDb, START, verifierOf } from './governance-support';

/** How long the upstream may go on after the client left. The measured times are logged. */
const ABORT_BOUND_MS = 1_000;
const TENANT = 'abort-co';
/** 80 words: the echo streams 81 pieces, 40 ms apart, so a full answer would take over 3 s. */
const LONG = Array.from({ length: 80 }, (_, i) => `word${i}`).join(' ');
const DRIP = { kind: 'drip', intervalMs: 40 } as const;

let h: RouterHarness;
let server: RouterServer;
let invoke: string;
let openai: OpenAI;
let anthropic: Anthropic;
const prices = new PriceBook();
const measured: Record<string, number> = {};

beforeAll(async () => {
  h = await startRouterHarness();
  serializeDynamoDb(h);
  ({ invokeToken: invoke } = await h.tenant(TENANT, { policy: { monthlyBudgetUsd: 50 } }));
  server = await serveRouter(governanceRouter(h).router);
  openai = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: invoke, maxRetries: 0 });
  anthropic = new Anthropic({ baseURL: server.url, apiKey: invoke, maxRetries: 0 });
}, 90_000);

afterAll(async () => {
  console.log(`client disconnect → upstream connection closed, ms: ${JSON.stringify(measured)}`);
  await server?.close();
  await h?.close();
});

beforeEach(() => {
  h.fakes.reset();
  for (const [p, key] of Object.entries(FAKE_PROVIDER_KEYS)) h.fakes.setKey(p as 'openai', key);
});

async function lastRecord(): Promise<UsageRecord> {
  await server.idle();
  const r = server.records.at(-1);
  if (!r) throw new Error('no usage record');
  return r;
}

/** Waits until the fake saw its connection closed, and returns how long after `cutAt` that was. */
async function upstreamCut(provider: FakeProviderName, cutAt: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  let req: RecordedRequest | undefined;
  while (Date.now() < deadline) {
    req = h.fakes[provider].requests.at(-1);
    if (req?.abortedAt !== undefined) return req.abortedAt - cutAt;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`${provider} never saw the connection close (request: ${req ? 'yes' : 'no'})`);
}

/** Spend settled for the tenant, and that nothing is held in reservations. */
async function expectNothingReserved(spentBefore: number, settledUsd: number) {
  const c = await counters(h, TENANT, await verifierOf(h, TENANT), START);
  expect(c.reservations).toEqual([]);
  expect(c.tenantSpend).toMatchObject({ reservedMicros: 0, spentMicros: spentBefore + Math.round(settledUsd * 1e6) });
  expect(c.tokenSpend).toMatchObject({ reservedMicros: 0 });
}
async function spentNow(): Promise<number> {
  const c = await counters(h, TENANT, await verifierOf(h, TENANT), START);
  return c.tenantSpend?.spentMicros ?? 0;
}

/** Reads `n` events of an SDK stream, then aborts it; returns when the abort happened. */
async function readThenAbort<T>(stream: AsyncIterable<T> & { controller: AbortController }, n: number, onEvent: (ev: T) => void): Promise<number> {
  let seen = 0;
  try {
    for await (const ev of stream) {
      onEvent(ev);
      if (++seen === n) {
        const at = Date.now();
        stream.controller.abort();
        return at;
      }
    }
  } catch (err) {
    if (!(err instanceof Error && /abort/i.test(err.name + err.message))) throw err;
  }
  throw new Error('the stream ended before it could be aborted');
}

function expectPriced(record: UsageRecord, provider: 'openai' | 'anthropic', model: string) {
  const cost = costMicros(prices.lookup({ provider, kind: provider, model }).entry, { inputTokens: record.inputTokens!, outputTokens: record.outputTokens! });
  expect(record.costUsd).toBe(cost / 1e6);
  expect(record.costUsd).toBeGreaterThan(0);
}

test('OpenAI chat SSE: the SDK aborts after 5 chunks; upstream cut, estimate settled, nothing reserved', async () => {
  const spent = await spentNow();
  h.fakes.script('openai', [DRIP]);
  const stream = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: LONG }], stream: true });
  let text = '';
  const cutAt = await readThenAbort(stream, 5, (c) => (text += c.choices[0]?.delta?.content ?? ''));
  measured.openaiChat = await upstreamCut('openai', cutAt);
  expect(measured.openaiChat).toBeLessThan(ABORT_BOUND_MS);
  const record = await lastRecord();
  expect(record).toMatchObject({ route: 'chat', stream: true, aborted: true, usageEstimated: true, decision: 'client_aborted', provider: 'openai' });
  // No usage was reported before the cut: input is the request's estimate, output at least what the client got.
  const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: LONG }], stream: true });
  expect(record.inputTokens).toBeGreaterThan(0);
  expect(record.inputTokens).toBeLessThanOrEqual(Math.ceil(body.length / 4) + 10);
  expect(record.outputTokens).toBeGreaterThanOrEqual(Math.ceil(text.length / 4));
  // Far less than the full answer (81 pieces of ~7 characters).
  expect(record.outputTokens).toBeLessThan(120);
  expectPriced(record, 'openai', 'gpt-4o-mini');
  await expectNothingReserved(spent, record.costUsd!);
});

test('Anthropic messages SSE: input from message_start, output from the text streamed so far', async () => {
  const spent = await spentNow();
  h.fakes.script('anthropic', [DRIP]);
  const stream = await anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 500, messages: [{ role: 'user', content: LONG }], stream: true });
  let text = '';
  let reportedInput = 0;
  const cutAt = await readThenAbort(stream, 6, (ev) => {
    if (ev.type === 'message_start') reportedInput = ev.message.usage.input_tokens;
    if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
  });
  measured.anthropicMessages = await upstreamCut('anthropic', cutAt);
  expect(measured.anthropicMessages).toBeLessThan(ABORT_BOUND_MS);
  const record = await lastRecord();
  expect(record).toMatchObject({ route: 'messages', aborted: true, usageEstimated: true, decision: 'client_aborted', provider: 'anthropic' });
  expect(reportedInput).toBeGreaterThan(0);
  expect(record.inputTokens).toBe(reportedInput);
  expect(record.outputTokens).toBeGreaterThanOrEqual(Math.ceil(text.length / 4));
  expect(record.outputTokens).toBeLessThan(120);
  expectPriced(record, 'anthropic', 'claude-sonnet-4-5');
  await expectNothingReserved(spent, record.costUsd!);
});

test('OpenAI client on an Anthropic model (translated stream): cut and settled too', async () => {
  const spent = await spentNow();
  h.fakes.script('anthropic', [DRIP]);
  const stream = await openai.chat.completions.create({ model: 'claude-sonnet-4-5', messages: [{ role: 'user', content: LONG }], stream: true });
  const cutAt = await readThenAbort(stream, 5, () => undefined);
  measured.translated = await upstreamCut('anthropic', cutAt);
  expect(measured.translated).toBeLessThan(ABORT_BOUND_MS);
  const record = await lastRecord();
  expect(record).toMatchObject({ aborted: true, decision: 'client_aborted', provider: 'anthropic' });
  await expectNothingReserved(spent, record.costUsd!);
});

test('Responses SSE: the SDK aborts responses.create mid-stream', async () => {
  const spent = await spentNow();
  h.fakes.script('openai', [DRIP]);
  const stream = await openai.responses.create({ model: 'gpt-4o-mini', input: LONG, stream: true });
  let text = '';
  const cutAt = await readThenAbort(stream, 8, (ev) => {
    if (ev.type === 'response.output_text.delta') text += ev.delta;
  });
  measured.responses = await upstreamCut('openai', cutAt);
  expect(measured.responses).toBeLessThan(ABORT_BOUND_MS);
  const record = await lastRecord();
  expect(record).toMatchObject({ route: 'responses', aborted: true, usageEstimated: true, decision: 'client_aborted' });
  expect(record.outputTokens).toBeGreaterThanOrEqual(Math.ceil(text.length / 4));
  expectPriced(record, 'openai', 'gpt-4o-mini');
  await expectNothingReserved(spent, record.costUsd!);
});

test('cut before the first byte (upstream hangs): upstream aborted, input estimate settled, status 499 recorded', async () => {
  const spent = await spentNow();
  h.fakes.script('openai', [{ kind: 'hang' }]);
  const ac = new AbortController();
  const call = openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello?' }] }, { signal: ac.signal });
  // Abort once the fake has the request.
  while (h.fakes.openai.requests.length === 0) await new Promise((r) => setTimeout(r, 10));
  const cutAt = Date.now();
  ac.abort();
  await expect(call).rejects.toThrow(/abort/i);
  measured.beforeFirstByte = await upstreamCut('openai', cutAt);
  expect(measured.beforeFirstByte).toBeLessThan(ABORT_BOUND_MS);
  const record = await lastRecord();
  expect(record).toMatchObject({ status: 499, aborted: true, usageEstimated: true, decision: 'client_aborted', provider: 'openai', outputTokens: 0 });
  expect(record.inputTokens).toBeGreaterThan(0);
  // Only the one attempt: the disconnect is not a reason to fall back or retry, nor an endpoint failure.
  expect(h.fakes.openai.requests).toHaveLength(1);
  expect(record.fallbackChain.map((s) => s.outcome)).toEqual(['cancelled']);
  expectPriced(record, 'openai', 'gpt-4o-mini');
  await expectNothingReserved(spent, record.costUsd!);
});

test('a disconnect before any provider call releases the reservation (nothing spent)', async () => {
  const spent = await spentNow();
  // The reservation is taken, then the provider is slow to answer headers... but here the client
  // is gone before the router even starts: the signal is already aborted.
  const gone = new AbortController();
  gone.abort();
  const g = governanceRouter(h);
  const { MemorySink } = await import('../../lambda/core/router/response-sink');
  const record = await g.router(
    { method: 'POST', path: '/v1/chat/completions', headers: { authorization: `Bearer ${invoke}`, 'content-type': 'application/json' }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }), signal: gone.signal },
    new MemorySink(),
  );
  expect(record).toMatchObject({ status: 499, aborted: true, decision: 'client_aborted' });
  expect(record?.costUsd).toBeUndefined();
  expect(h.fakes.openai.requests).toHaveLength(0);
  await expectNothingReserved(spent, 0);
});
