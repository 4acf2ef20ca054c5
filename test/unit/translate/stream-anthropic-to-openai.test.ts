import { formatSse, SseParser, type SseEvent } from '../../../lambda/core/sse';
import { UpstreamProtocolError, UpstreamStreamError } from '../../../lambda/core/translate/errors';
import type { AnthropicStreamEvent } from '../../../lambda/core/translate/anthropic-types';
import type { OpenAiChunk } from '../../../lambda/core/translate/openai-types';
import { AnthropicToOpenAiStream } from '../../../lambda/core/translate/stream-anthropic-to-openai';
import { anthropicEventToSse } from '../../../lambda/core/translate/stream-framing';

const opts = { id: 'chatcmpl-x', model: 'alias', created: 1700, includeUsage: false };

function ev(e: AnthropicStreamEvent): SseEvent {
  return anthropicEventToSse(e);
}

const start = (input = 25): AnthropicStreamEvent => ({
  type: 'message_start',
  message: {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-x',
    content: [],
    stop_reason: null,
    stop_sequence: null,
    usage: { input_tokens: input, output_tokens: 1, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
  },
});

const textStream: AnthropicStreamEvent[] = [
  start(),
  { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
  { type: 'ping' },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Hello' } },
  { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: ' world' } },
  { type: 'content_block_stop', index: 0 },
  { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 7 } },
  { type: 'message_stop' },
];

function run(events: AnthropicStreamEvent[], o = opts): { chunks: OpenAiChunk[]; t: AnthropicToOpenAiStream } {
  const t = new AnthropicToOpenAiStream(o);
  const chunks = events.flatMap((e) => t.push(ev(e)));
  chunks.push(...t.finish().chunks);
  return { chunks, t };
}

/** Reassembles chunks the way the OpenAI SDK's stream helper does. */
function accumulate(chunks: OpenAiChunk[]) {
  let content = '';
  let role: string | undefined;
  let finish: string | null = null;
  const calls: Array<{ id?: string; name?: string; arguments: string }> = [];
  for (const c of chunks) {
    for (const choice of c.choices) {
      const d = choice.delta;
      if (d.role) role = d.role;
      if (d.content) content += d.content;
      for (const tc of d.tool_calls ?? []) {
        calls[tc.index] ??= { arguments: '' };
        if (tc.id) calls[tc.index].id = tc.id;
        if (tc.function?.name) calls[tc.index].name = tc.function.name;
        calls[tc.index].arguments += tc.function?.arguments ?? '';
      }
      if (choice.finish_reason) finish = choice.finish_reason;
    }
  }
  return { role, content, finish, calls };
}

describe('AnthropicToOpenAiStream', () => {
  it('streams text: role chunk first, deltas, then a finish chunk', () => {
    const { chunks, t } = run(textStream);
    expect(chunks.map((c) => c.choices[0].delta)).toEqual([{ role: 'assistant', content: '' }, { content: 'Hello' }, { content: ' world' }, {}]);
    expect(chunks.map((c) => c.choices[0].finish_reason)).toEqual([null, null, null, 'stop']);
    for (const c of chunks) {
      expect(c).toMatchObject({ id: 'chatcmpl-x', object: 'chat.completion.chunk', created: 1700, model: 'alias' });
      expect(c).not.toHaveProperty('usage');
    }
    expect(t.complete).toBe(true);
    expect(t.usage()).toEqual({ inputTokens: 25, outputTokens: 7 });
  });

  it('adds usage: null to every chunk and a usage chunk with no choices when asked', () => {
    const { chunks } = run(textStream, { ...opts, includeUsage: true });
    const last = chunks[chunks.length - 1];
    expect(last.choices).toEqual([]);
    expect(last.usage).toEqual({ prompt_tokens: 25, completion_tokens: 7, total_tokens: 32 });
    for (const c of chunks.slice(0, -1)) expect(c.usage).toBeNull();
  });

  it('streams parallel tool calls with OpenAI indexes, ids, names and argument fragments', () => {
    const { chunks } = run([
      start(),
      { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: 'Checking.' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 'toolu_a', name: 'weather', input: {} } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"city":' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '"Paris"}' } },
      { type: 'content_block_stop', index: 1 },
      { type: 'content_block_start', index: 2, content_block: { type: 'tool_use', id: 'toolu_b', name: 'time', input: {} } },
      { type: 'content_block_delta', index: 2, delta: { type: 'input_json_delta', partial_json: '{}' } },
      { type: 'content_block_stop', index: 2 },
      { type: 'message_delta', delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 30 } },
      { type: 'message_stop' },
    ]);
    expect(chunks[2].choices[0].delta).toEqual({
      tool_calls: [{ index: 0, id: 'toolu_a', type: 'function', function: { name: 'weather', arguments: '' } }],
    });
    expect(chunks[3].choices[0].delta).toEqual({ tool_calls: [{ index: 0, function: { arguments: '{"city":' } }] });
    expect(accumulate(chunks)).toEqual({
      role: 'assistant',
      content: 'Checking.',
      finish: 'tool_calls',
      calls: [
        { id: 'toolu_a', name: 'weather', arguments: '{"city":"Paris"}' },
        { id: 'toolu_b', name: 'time', arguments: '{}' },
      ],
    });
  });

  it('ignores thinking blocks and their deltas', () => {
    const { chunks } = run([
      start(),
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'secret' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_start', index: 1, content_block: { type: 'text', text: '' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'text_delta', text: 'Hi' } },
      { type: 'content_block_stop', index: 1 },
      { type: 'message_delta', delta: { stop_reason: 'max_tokens', stop_sequence: null }, usage: { output_tokens: 2 } },
      { type: 'message_stop' },
    ]);
    expect(accumulate(chunks)).toEqual({ role: 'assistant', content: 'Hi', finish: 'length', calls: [] });
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
  ] as const)('maps stop_reason %s to finish_reason %s', (stop, finish) => {
    const events = textStream.map((e) =>
      e.type === 'message_delta' ? { ...e, delta: { stop_reason: stop, stop_sequence: null } } : e,
    );
    expect(accumulate(run(events).chunks).finish).toBe(finish);
  });

  it('keeps input tokens from message_start and takes cumulative totals from message_delta', () => {
    const t = new AnthropicToOpenAiStream(opts);
    const first = start(10) as Extract<AnthropicStreamEvent, { type: 'message_start' }>;
    first.message.usage = { input_tokens: 10, output_tokens: 1, cache_read_input_tokens: 90 };
    t.push(ev(first));
    expect(t.usage()).toEqual({ inputTokens: 100, outputTokens: 1, cacheReadInputTokens: 90 });
    t.push(ev({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 12 } }));
    expect(t.usage()).toEqual({ inputTokens: 100, outputTokens: 12, cacheReadInputTokens: 90 });
  });

  it('reports an incomplete stream and still closes it well-formed if asked', () => {
    const t = new AnthropicToOpenAiStream(opts);
    t.push(ev(start()));
    t.push(ev(textStream[3]));
    expect(t.complete).toBe(false);
    expect(t.usage()).toEqual({ inputTokens: 25, outputTokens: 1 });
    const { chunks, done } = t.finish();
    expect(done).toBe(true);
    expect(chunks).toHaveLength(1);
    expect(t.finish().chunks).toEqual([]);
    expect(t.push(ev(textStream[4]))).toEqual([]);
  });

  it('sends the role chunk even for an empty stream', () => {
    const t = new AnthropicToOpenAiStream(opts);
    const { chunks } = t.finish();
    expect(chunks.map((c) => c.choices[0].delta)).toEqual([{ role: 'assistant', content: '' }, {}]);
    expect(t.usage()).toBeUndefined();
  });

  it('throws UpstreamStreamError on an error event, with the upstream type', () => {
    const t = new AnthropicToOpenAiStream(opts);
    t.push(ev(start()));
    try {
      t.push({ event: 'error', data: JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } }) });
      throw new Error('expected a throw');
    } catch (err) {
      expect(err).toBeInstanceOf(UpstreamStreamError);
      expect((err as UpstreamStreamError).errorType).toBe('overloaded_error');
      expect((err as Error).message).toBe('Overloaded');
    }
  });

  it('throws UpstreamProtocolError on malformed JSON, ignores pings and unknown events', () => {
    const t = new AnthropicToOpenAiStream(opts);
    expect(() => t.push({ event: 'message_start', data: '{"type":' })).toThrow(UpstreamProtocolError);
    expect(t.push({ event: 'ping', data: '' })).toEqual([]);
    expect(t.push({ event: 'future_event', data: '{"type":"future_event"}' })).toEqual([]);
  });

  it('translates a real SSE byte stream fed through the parser in small pieces', () => {
    const text = textStream.map((e) => formatSse(anthropicEventToSse(e))).join('');
    const parser = new SseParser();
    const t = new AnthropicToOpenAiStream(opts);
    const chunks: OpenAiChunk[] = [];
    for (let i = 0; i < text.length; i += 7) for (const e of parser.push(text.slice(i, i + 7))) chunks.push(...t.push(e));
    for (const e of parser.end()) chunks.push(...t.push(e));
    chunks.push(...t.finish().chunks);
    expect(accumulate(chunks)).toEqual({ role: 'assistant', content: 'Hello world', finish: 'stop', calls: [] });
  });
});
