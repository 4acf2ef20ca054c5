/**
 * Both translation directions against the fake providers' real SSE framing: request translated,
 * sent over loopback, the upstream stream parsed and translated back, usage recorded.
 */
import { SseParser, type SseEvent } from '../../../lambda/core/sse';
import { anthropicRequestToOpenAi, anthropicResponseToOpenAi } from '../../../lambda/core/translate/anthropic-to-openai';
import type { AnthropicStreamEvent } from '../../../lambda/core/translate/anthropic-types';
import { UpstreamStreamError } from '../../../lambda/core/translate/errors';
import { openAiRequestToAnthropic, openAiResponseToAnthropic } from '../../../lambda/core/translate/openai-to-anthropic';
import type { OpenAiChatRequest, OpenAiChunk } from '../../../lambda/core/translate/openai-types';
import { AnthropicToOpenAiStream } from '../../../lambda/core/translate/stream-anthropic-to-openai';
import { parseOpenAiSseEvent } from '../../../lambda/core/translate/stream-framing';
import { OpenAiToAnthropicStream } from '../../../lambda/core/translate/stream-openai-to-anthropic';
import { DEFAULT_FAKE_KEYS, startFakeProviders, type FakeProviders } from '../../support/fake-providers';

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

async function* sseEvents(res: Response): AsyncGenerator<SseEvent> {
  const parser = new SseParser();
  const reader = res.body!.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    yield* parser.push(value);
  }
  yield* parser.end();
}

function callAnthropic(body: unknown): Promise<Response> {
  return fetch(`${fakes.anthropic.baseUrl}/v1/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': DEFAULT_FAKE_KEYS.anthropic, 'anthropic-version': '2023-06-01' },
    body: JSON.stringify(body),
  });
}

function callOpenAiCompatible(provider: 'openai' | 'mistral', body: unknown): Promise<Response> {
  return fetch(`${fakes[provider].baseUrl}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${DEFAULT_FAKE_KEYS[provider]}` },
    body: JSON.stringify(body),
  });
}

const openAiReq: OpenAiChatRequest = {
  model: 'smart',
  messages: [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'ping pong' },
  ],
};

describe('OpenAI-format client → Anthropic model', () => {
  it('non-streaming', async () => {
    const upstream = openAiRequestToAnthropic(openAiReq, 'claude-haiku-4-5', { defaultMaxTokens: 1024 });
    const res = await callAnthropic(upstream);
    const out = anthropicResponseToOpenAi(await jsonOf(res), 'smart', { created: 1 });
    expect(out.choices[0]).toMatchObject({ message: { content: 'Echo: ping pong' }, finish_reason: 'stop' });
    expect(out.usage?.completion_tokens).toBe(3);
    expect(fakes.anthropic.requests[0].body).toMatchObject({ system: 'Be brief.', max_tokens: 1024 });
  });

  it('streaming, with a tool call and usage', async () => {
    fakes.script('anthropic', [{ kind: 'tool-call', name: 'lookup', arguments: { q: 'x' } }]);
    const upstream = openAiRequestToAnthropic({ ...openAiReq, stream: true, tools: [{ type: 'function', function: { name: 'lookup' } }] }, 'claude-haiku-4-5', {
      defaultMaxTokens: 1024,
    });
    const t = new AnthropicToOpenAiStream({ id: 'chatcmpl-gw', model: 'smart', created: 1, includeUsage: true });
    const chunks: OpenAiChunk[] = [];
    for await (const ev of sseEvents(await callAnthropic(upstream))) chunks.push(...t.push(ev));
    expect(t.complete).toBe(true);
    chunks.push(...t.finish().chunks);
    const args = chunks.flatMap((c) => c.choices.flatMap((ch) => ch.delta.tool_calls ?? [])).map((tc) => tc.function?.arguments ?? '').join('');
    expect(JSON.parse(args)).toEqual({ q: 'x' });
    expect(chunks[chunks.length - 2].choices[0].finish_reason).toBe('tool_calls');
    const usage = chunks[chunks.length - 1].usage!;
    expect(usage.completion_tokens).toBe(t.usage()!.outputTokens);
    expect(t.usage()!.inputTokens).toBeGreaterThan(0);
  });

  it('a broken upstream stream leaves the translator incomplete, with the usage seen so far', async () => {
    fakes.script('anthropic', [{ kind: 'break-stream', afterEvents: 4 }]);
    const upstream = openAiRequestToAnthropic({ ...openAiReq, stream: true }, 'claude-haiku-4-5', { defaultMaxTokens: 1024 });
    const t = new AnthropicToOpenAiStream({ id: 'x', model: 'smart', created: 1, includeUsage: false });
    await expect(
      (async () => {
        for await (const ev of sseEvents(await callAnthropic(upstream))) t.push(ev);
      })(),
    ).rejects.toThrow();
    expect(t.complete).toBe(false);
    expect(t.usage()!.inputTokens).toBeGreaterThan(0);
  });

  it('an upstream error event surfaces as UpstreamStreamError', async () => {
    fakes.script('anthropic', [{ kind: 'stream-error', afterEvents: 3, type: 'overloaded_error' }]);
    const t = new AnthropicToOpenAiStream({ id: 'x', model: 'smart', created: 1, includeUsage: false });
    const run = async () => {
      for await (const ev of sseEvents(await callAnthropic({ model: 'c', max_tokens: 10, stream: true, messages: [{ role: 'user', content: 'x' }] }))) {
        t.push(ev);
      }
    };
    await expect(run()).rejects.toThrow(UpstreamStreamError);
  });
});

describe.each(['openai', 'mistral'] as const)('Anthropic-format client → %s model', (provider) => {
  const dialect = provider;
  const anthropicReq = {
    model: 'smart',
    max_tokens: 50,
    system: 'Be brief.',
    messages: [{ role: 'user' as const, content: 'ping pong' }],
  };

  it('non-streaming', async () => {
    const upstream = anthropicRequestToOpenAi(anthropicReq, 'upstream-model', { dialect });
    const res = await callOpenAiCompatible(provider, upstream);
    const out = openAiResponseToAnthropic(await jsonOf(res), 'smart');
    expect(out).toMatchObject({ content: [{ type: 'text', text: 'Echo: ping pong' }], stop_reason: 'end_turn', usage: { output_tokens: 3 } });
  });

  it('streaming, with a tool call and usage', async () => {
    fakes.script(provider, [{ kind: 'tool-call', name: 'lookup', arguments: { q: 'y' } }]);
    const upstream = anthropicRequestToOpenAi(
      { ...anthropicReq, stream: true, tools: [{ name: 'lookup', input_schema: { type: 'object' } }] },
      'upstream-model',
      { dialect },
    );
    const t = new OpenAiToAnthropicStream({ id: 'msg_gw', model: 'smart' });
    const events: AnthropicStreamEvent[] = [];
    let sawDone = false;
    for await (const ev of sseEvents(await callOpenAiCompatible(provider, upstream))) {
      const parsed = parseOpenAiSseEvent(ev);
      if (parsed === 'done') sawDone = true;
      else events.push(...t.push(parsed));
    }
    expect(sawDone && t.complete).toBe(true);
    events.push(...t.finish());
    const json = events
      .filter((e): e is Extract<AnthropicStreamEvent, { type: 'content_block_delta' }> => e.type === 'content_block_delta')
      .map((e) => (e.delta.type === 'input_json_delta' ? e.delta.partial_json : ''))
      .join('');
    expect(JSON.parse(json)).toEqual({ q: 'y' });
    const delta = events.find((e) => e.type === 'message_delta');
    expect(delta).toMatchObject({ delta: { stop_reason: 'tool_use' } });
    expect(t.usage()!.inputTokens).toBeGreaterThan(0);
    expect(t.usage()!.outputTokens).toBeGreaterThan(0);
  });
});
