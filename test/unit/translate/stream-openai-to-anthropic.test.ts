import type { AnthropicStreamEvent } from '../../../lambda/core/translate/anthropic-types';
import { UpstreamProtocolError, UpstreamStreamError } from '../../../lambda/core/translate/errors';
import type { OpenAiChunk, OpenAiDelta, OpenAiFinishReason, OpenAiUsage } from '../../../lambda/core/translate/openai-types';
import { OpenAiToAnthropicStream } from '../../../lambda/core/translate/stream-openai-to-anthropic';

const opts = { id: 'msg_x', model: 'alias' };

function chunk(delta: OpenAiDelta, finish: OpenAiFinishReason | null = null, usage?: OpenAiUsage | null): OpenAiChunk {
  const c: OpenAiChunk = {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'gpt-4o',
    choices: [{ index: 0, delta, finish_reason: finish }],
  };
  if (usage !== undefined) c.usage = usage;
  return c;
}

function usageChunk(usage: OpenAiUsage): OpenAiChunk {
  return { id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [], usage };
}

function run(chunks: OpenAiChunk[]): { events: AnthropicStreamEvent[]; t: OpenAiToAnthropicStream } {
  const t = new OpenAiToAnthropicStream(opts);
  const events = chunks.flatMap((c) => t.push(c));
  events.push(...t.finish());
  return { events, t };
}

/** Reassembles events the way the Anthropic SDK's MessageStream does, checking the block protocol. */
function accumulate(events: AnthropicStreamEvent[]) {
  const content: Array<Record<string, unknown>> = [];
  const json: string[] = [];
  let open: number | undefined;
  let stop: string | null = null;
  let usage: Record<string, unknown> = {};
  expect(events[0].type).toBe('message_start');
  expect(events[events.length - 1].type).toBe('message_stop');
  for (const e of events) {
    switch (e.type) {
      case 'message_start':
        usage = { ...e.message.usage };
        break;
      case 'content_block_start':
        expect(open).toBeUndefined();
        expect(e.index).toBe(content.length);
        open = e.index;
        content.push({ ...e.content_block });
        json.push('');
        break;
      case 'content_block_delta':
        expect(e.index).toBe(open);
        if (e.delta.type === 'text_delta') content[e.index].text = String(content[e.index].text) + e.delta.text;
        if (e.delta.type === 'input_json_delta') json[e.index] += e.delta.partial_json;
        break;
      case 'content_block_stop':
        expect(e.index).toBe(open);
        if (content[e.index].type === 'tool_use') content[e.index].input = JSON.parse(json[e.index] || '{}');
        open = undefined;
        break;
      case 'message_delta':
        stop = e.delta.stop_reason;
        usage = { ...usage, ...Object.fromEntries(Object.entries(e.usage).filter(([, v]) => v !== null && v !== undefined)) };
        break;
      default:
        break;
    }
  }
  expect(open).toBeUndefined();
  return { content, stop, usage };
}

describe('OpenAiToAnthropicStream', () => {
  it('streams text: message_start, one text block, message_delta with usage, message_stop', () => {
    const { events, t } = run([
      chunk({ role: 'assistant', content: '', refusal: null }, null, null),
      chunk({ content: 'Hello' }, null, null),
      chunk({ content: ' world' }, null, null),
      chunk({}, 'stop', null),
      usageChunk({ prompt_tokens: 20, completion_tokens: 2, total_tokens: 22 }),
    ]);
    expect(events.map((e) => e.type)).toEqual([
      'message_start',
      'content_block_start',
      'content_block_delta',
      'content_block_delta',
      'content_block_stop',
      'message_delta',
      'message_stop',
    ]);
    expect(events[0]).toEqual({
      type: 'message_start',
      message: {
        id: 'msg_x',
        type: 'message',
        role: 'assistant',
        model: 'alias',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 0, output_tokens: 0 },
      },
    });
    expect(events[5]).toEqual({
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: 2, input_tokens: 20, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    });
    expect(accumulate(events).content).toEqual([{ type: 'text', text: 'Hello world' }]);
    expect(t.complete).toBe(true);
    expect(t.usage()).toEqual({ inputTokens: 20, outputTokens: 2 });
  });

  it('streams text then parallel tool calls as separate blocks', () => {
    const { events } = run([
      chunk({ role: 'assistant', content: 'Let me check.' }),
      chunk({ tool_calls: [{ index: 0, id: 'call_a', type: 'function', function: { name: 'weather', arguments: '' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: '{"city"' } }] }),
      chunk({ tool_calls: [{ index: 0, function: { arguments: ':"Paris"}' } }] }),
      chunk({ tool_calls: [{ index: 1, id: 'call_b', type: 'function', function: { name: 'time', arguments: '{}' } }] }),
      chunk({}, 'tool_calls'),
      usageChunk({ prompt_tokens: 5, completion_tokens: 9, total_tokens: 14, prompt_tokens_details: { cached_tokens: 3 } }),
    ]);
    const got = accumulate(events);
    expect(got.content).toEqual([
      { type: 'text', text: 'Let me check.' },
      { type: 'tool_use', id: 'call_a', name: 'weather', input: { city: 'Paris' } },
      { type: 'tool_use', id: 'call_b', name: 'time', input: {} },
    ]);
    expect(got.stop).toBe('tool_use');
    expect(got.usage).toEqual({ input_tokens: 2, output_tokens: 9, cache_read_input_tokens: 3, cache_creation_input_tokens: 0 });
  });

  it('handles Mistral style: whole tool calls in one chunk, usage on the finish chunk', () => {
    const { events, t } = run([
      chunk({ role: 'assistant', content: '' }),
      chunk({
        tool_calls: [
          { index: 0, id: 'abcdefghi', function: { name: 'f', arguments: '{"a":1}' } },
          { index: 1, id: 'jklmnopqr', function: { name: 'g', arguments: '{"b":2}' } },
        ],
      }),
      chunk({}, 'tool_calls', { prompt_tokens: 7, completion_tokens: 3, total_tokens: 10 }),
    ]);
    expect(accumulate(events).content).toEqual([
      { type: 'tool_use', id: 'abcdefghi', name: 'f', input: { a: 1 } },
      { type: 'tool_use', id: 'jklmnopqr', name: 'g', input: { b: 2 } },
    ]);
    expect(t.usage()).toEqual({ inputTokens: 7, outputTokens: 3 });
  });

  it.each([
    ['stop', 'end_turn'],
    ['length', 'max_tokens'],
    ['tool_calls', 'tool_use'],
    ['content_filter', 'refusal'],
  ] as const)('maps finish_reason %s to stop_reason %s', (finish, stop) => {
    expect(accumulate(run([chunk({ content: 'x' }), chunk({}, finish)]).events).stop).toBe(stop);
  });

  it('shows refusal deltas as text', () => {
    expect(accumulate(run([chunk({ refusal: 'I cannot' }), chunk({}, 'stop')]).events).content).toEqual([{ type: 'text', text: 'I cannot' }]);
  });

  it('opens a new text block after a tool block', () => {
    const { events } = run([
      chunk({ tool_calls: [{ index: 0, id: 'c', function: { name: 'f', arguments: '{}' } }] }),
      chunk({ content: 'after' }),
      chunk({}, 'stop'),
    ]);
    expect(accumulate(events).content).toEqual([
      { type: 'tool_use', id: 'c', name: 'f', input: {} },
      { type: 'text', text: 'after' },
    ]);
  });

  it('mints an id when the upstream gives none', () => {
    const { events } = run([chunk({ tool_calls: [{ index: 0, function: { name: 'f', arguments: '' } }] }), chunk({}, 'tool_calls')]);
    expect(accumulate(events).content[0].id).toMatch(/^toolu_[0-9a-f]{32}$/);
  });

  it('is well-formed and incomplete when the upstream stops early', () => {
    const t = new OpenAiToAnthropicStream(opts);
    const events = [...t.push(chunk({ content: 'partial' })), ...t.finish()];
    expect(t.complete).toBe(false);
    expect(t.usage()).toBeUndefined();
    expect(accumulate(events).usage).toEqual({ input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 });
    expect(t.finish()).toEqual([]);
    expect(t.push(chunk({ content: 'late' }))).toEqual([]);
  });

  it('emits message_start even for an empty stream', () => {
    const t = new OpenAiToAnthropicStream(opts);
    expect(t.finish().map((e) => e.type)).toEqual(['message_start', 'message_delta', 'message_stop']);
  });

  it('throws UpstreamStreamError on an error chunk', () => {
    const t = new OpenAiToAnthropicStream(opts);
    const bad = { error: { message: 'boom', type: 'server_error', param: null, code: null } } as unknown as OpenAiChunk;
    expect(() => t.push(bad)).toThrow(UpstreamStreamError);
  });

  it('throws UpstreamProtocolError on interleaved tool arguments or a nameless tool call', () => {
    const t = new OpenAiToAnthropicStream(opts);
    t.push(chunk({ tool_calls: [{ index: 0, id: 'a', function: { name: 'f', arguments: '{' } }] }));
    t.push(chunk({ tool_calls: [{ index: 1, id: 'b', function: { name: 'g', arguments: '{' } }] }));
    expect(() => t.push(chunk({ tool_calls: [{ index: 0, function: { arguments: '}' } }] }))).toThrow(UpstreamProtocolError);
    const u = new OpenAiToAnthropicStream(opts);
    expect(() => u.push(chunk({ tool_calls: [{ index: 0, id: 'a', function: { arguments: '{}' } }] }))).toThrow(UpstreamProtocolError);
  });
});
