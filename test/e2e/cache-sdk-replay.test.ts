/**
 * A cached stream replayed to the official SDKs (issue 14 point 5): the local gateway (embedded
 * store and its cache adapter) in front of the fake providers; each request is sent twice, the
 * second is a hit (x-sovereign-cache: hit, no provider request), and the openai and
 * @anthropic-ai/sdk stream parsers read it to the same result as the first. Guardrail refusals
 * reach the SDKs as 400 errors in their format.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { LocalGateway, startLocalGateway } from '../../local/gateway';
import { DEFAULT_FAKE_KEYS, FakeProviders, startFakeProviders } from '../support/fake-providers';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
let fakes: FakeProviders;
let gw: LocalGateway;
let token: string;

async function http(method: string, path: string, body: unknown, bearer?: string): Promise<any> {
  const res = await fetch(`${gw.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(bearer ? { authorization: `Bearer ${bearer}` } : {}) },
    body: JSON.stringify(body),
  });
  const json = await res.json();
  if (res.status >= 300) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

beforeAll(async () => {
  fakes = await startFakeProviders();
  gw = await startLocalGateway({
    port: 0,
    providers: { openai: { kind: 'openai', baseUrl: fakes.openai.baseUrl }, anthropic: { kind: 'anthropic', baseUrl: fakes.anthropic.baseUrl } },
    log: silent,
  });
  const created = await http('POST', '/admin/tenants', {
    tenantId: 'sdk-cache',
    policy: { cache: { ttlSeconds: 120 }, guardrails: { personalData: { card: 'refuse' } } },
  });
  for (const provider of ['openai', 'anthropic'] as const) await http('POST', '/vault/secrets', { provider, apiKey: DEFAULT_FAKE_KEYS[provider] }, created.token);
  token = (await http('POST', '/vault/tokens', { role: 'invoke', label: 'sdk' }, created.token)).token;
}, 60_000);
afterAll(async () => {
  await gw?.stop();
  await fakes?.close();
});

test('OpenAI SDK: a cached stream (OpenAI and Anthropic targets) parses to the same text and usage, with no provider call', async () => {
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: token, maxRetries: 0 });
  for (const model of ['gpt-4o-mini', 'claude-haiku-4-5']) {
    const read = async () => {
      const before = fakes.requests.length;
      const { data: stream, response } = await openai.chat.completions
        .create({ model, stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: `replay me via ${model}` }] })
        .withResponse();
      let text = '';
      let usage: unknown;
      let finish: string | null | undefined;
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta?.content ?? '';
        finish ??= chunk.choices[0]?.finish_reason;
        if (chunk.usage) usage = chunk.usage;
      }
      return { text, usage, finish, header: response.headers.get('x-sovereign-cache'), calls: fakes.requests.length - before };
    };
    const miss = await read();
    const hit = await read();
    expect(miss).toMatchObject({ header: 'miss', calls: 1 });
    expect(miss.text).toContain(`replay me via ${model}`);
    expect(hit).toEqual({ ...miss, header: 'hit', calls: 0 });
  }
});

test('Anthropic SDK: a cached stream parses to the same final message, with no provider call', async () => {
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: token, maxRetries: 0 });
  for (const model of ['claude-haiku-4-5', 'gpt-4o-mini']) {
    const read = async () => {
      const before = fakes.requests.length;
      const { data: stream, response } = await anthropic.messages.create({ model, max_tokens: 64, stream: true, messages: [{ role: 'user', content: `anthropic replay via ${model}` }] }).withResponse();
      const types: string[] = [];
      let text = '';
      for await (const ev of stream) {
        types.push(ev.type);
        if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
      }
      return { types, text, header: response.headers.get('x-sovereign-cache'), calls: fakes.requests.length - before };
    };
    const miss = await read();
    const hit = await read();
    expect(miss).toMatchObject({ header: 'miss', calls: 1 });
    expect(miss.types[0]).toBe('message_start');
    expect(miss.types.at(-1)).toBe('message_stop');
    expect(hit).toEqual({ ...miss, header: 'hit', calls: 0 });

    // The SDK's own accumulator agrees.
    const final = await anthropic.messages.stream({ model, max_tokens: 64, messages: [{ role: 'user', content: `anthropic replay via ${model}` }] }).finalMessage();
    expect(JSON.stringify(final.content)).toContain(`anthropic replay via ${model}`);
  }
});

test('a guardrail refusal reaches both SDKs as a 400 in their error format, without the card number', async () => {
  const before = fakes.requests.length;
  const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: token, maxRetries: 0 });
  const o = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'card 4111 1111 1111 1111' }] }).catch((e: unknown) => e);
  expect(o).toBeInstanceOf(OpenAI.BadRequestError);
  expect((o as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('guardrail_refused');
  expect(String((o as Error).message)).not.toContain('4111');
  const anthropic = new Anthropic({ baseURL: gw.url, apiKey: token, maxRetries: 0 });
  const a = await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 8, messages: [{ role: 'user', content: [{ type: 'text', text: '4111 1111' }, { type: 'text', text: ' 1111 1111' }] }] }).catch((e: unknown) => e);
  expect(a).toBeInstanceOf(Anthropic.BadRequestError);
  expect((a as InstanceType<typeof Anthropic.BadRequestError>).error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'guardrail_refused' } });
  expect(JSON.stringify((a as InstanceType<typeof Anthropic.BadRequestError>).error)).not.toContain('4111');
  expect(fakes.requests.length).toBe(before);
});
