import { formatSse, SseParser } from '../../../lambda/core/sse';
import type { AnthropicStreamEvent } from '../../../lambda/core/translate/anthropic-types';
import { UpstreamProtocolError, UpstreamStreamError } from '../../../lambda/core/translate/errors';
import type { OpenAiChunk } from '../../../lambda/core/translate/openai-types';
import { anthropicStreamErrorEvent, openAiStreamErrorChunk } from '../../../lambda/core/translate/stream-errors';
import {
  anthropicEventToSse,
  openAiChunkToSse,
  parseAnthropicSseEvent,
  parseOpenAiSseEvent,
} from '../../../lambda/core/translate/stream-framing';
import { AnthropicPassthroughStream, OpenAiPassthroughStream } from '../../../lambda/core/translate/stream-passthrough';
import { toAnthropicUsage, toOpenAiUsage, usageFromAnthropic, usageFromOpenAi } from '../../../lambda/core/translate/usage';

const base = { id: 'c', object: 'chat.completion.chunk' as const, created: 1, model: 'm' };

describe('stream error helpers', () => {
  it('build the shapes the SDKs throw on', () => {
    expect(openAiStreamErrorChunk('Upstream stream broke')).toEqual({
      error: { message: 'Upstream stream broke', type: 'server_error', param: null, code: null },
    });
    expect(openAiStreamErrorChunk('slow', 'timeout', 'upstream_timeout').error.code).toBe('upstream_timeout');
    expect(anthropicStreamErrorEvent('Overloaded', 'overloaded_error')).toEqual({
      type: 'error',
      error: { type: 'overloaded_error', message: 'Overloaded' },
    });
    expect(formatSse(anthropicEventToSse(anthropicStreamErrorEvent('x')))).toBe(
      'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"x"}}\n\n',
    );
    expect(formatSse(openAiChunkToSse(openAiStreamErrorChunk('x')))).toBe(
      'data: {"error":{"message":"x","type":"server_error","param":null,"code":null}}\n\n',
    );
  });

  it('are recognised as errors by our own parsers', () => {
    expect(() => parseOpenAiSseEvent(openAiChunkToSse(openAiStreamErrorChunk('x', 'server_error')))).toThrow(UpstreamStreamError);
    expect(() => parseAnthropicSseEvent(anthropicEventToSse(anthropicStreamErrorEvent('x')))).toThrow(UpstreamStreamError);
  });
});

describe('stream framing', () => {
  it('parses OpenAI chunks and [DONE]', () => {
    const chunk: OpenAiChunk = { ...base, choices: [{ index: 0, delta: { content: 'a' }, finish_reason: null }] };
    expect(parseOpenAiSseEvent(openAiChunkToSse(chunk))).toEqual(chunk);
    expect(parseOpenAiSseEvent({ data: '[DONE]' })).toBe('done');
    expect(() => parseOpenAiSseEvent({ data: 'not json' })).toThrow(UpstreamProtocolError);
    expect(() => parseOpenAiSseEvent({ data: '[1]' })).toThrow(UpstreamProtocolError);
  });

  it('parses Anthropic events, skipping pings', () => {
    const stop: AnthropicStreamEvent = { type: 'message_stop' };
    expect(parseAnthropicSseEvent(anthropicEventToSse(stop))).toEqual(stop);
    expect(parseAnthropicSseEvent({ event: 'ping', data: '{"type":"ping"}' })).toBeUndefined();
    expect(() => parseAnthropicSseEvent({ event: 'x', data: '{}' })).toThrow(UpstreamProtocolError);
  });

  it('frames Anthropic events with an event line, as the SDK requires', () => {
    const text = formatSse(anthropicEventToSse({ type: 'message_stop' }));
    expect(new SseParser().push(text)).toEqual([{ event: 'message_stop', data: '{"type":"message_stop"}' }]);
  });
});

describe('OpenAiPassthroughStream', () => {
  const content: OpenAiChunk = { ...base, choices: [{ index: 0, delta: { content: 'a' }, finish_reason: null }], usage: null };
  const final: OpenAiChunk = { ...base, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }], usage: null };
  const usage: OpenAiChunk = { ...base, choices: [], usage: { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 } };

  it('hides the forced usage chunk and usage: null from a client that did not ask', () => {
    const t = new OpenAiPassthroughStream({ clientWantsUsage: false });
    const out = [content, final, usage].flatMap((c) => t.push(c));
    expect(out).toHaveLength(2);
    for (const c of out) expect(c).not.toHaveProperty('usage');
    expect(t.usage()).toEqual({ inputTokens: 3, outputTokens: 1 });
    expect(t.complete).toBe(true);
  });

  it('forwards everything to a client that asked', () => {
    const t = new OpenAiPassthroughStream({ clientWantsUsage: true });
    expect([content, final, usage].flatMap((c) => t.push(c))).toEqual([content, final, usage]);
  });

  it('keeps Mistral usage on the finish chunk', () => {
    const t = new OpenAiPassthroughStream({ clientWantsUsage: false });
    const mistralFinal: OpenAiChunk = { ...final, usage: { prompt_tokens: 2, completion_tokens: 2, total_tokens: 4 } };
    expect(t.push(mistralFinal)).toEqual([mistralFinal]);
    expect(t.usage()).toEqual({ inputTokens: 2, outputTokens: 2 });
  });
});

describe('AnthropicPassthroughStream', () => {
  it('tallies usage from message_start and message_delta', () => {
    const t = new AnthropicPassthroughStream();
    expect(t.usage()).toBeUndefined();
    t.observe({
      type: 'message_start',
      message: {
        id: 'm',
        type: 'message',
        role: 'assistant',
        model: 'c',
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: { input_tokens: 5, output_tokens: 1, cache_creation_input_tokens: 10 },
      },
    });
    t.observe({ type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: 9 } });
    expect(t.complete).toBe(false);
    t.observe({ type: 'message_stop' });
    expect(t.complete).toBe(true);
    expect(t.usage()).toEqual({ inputTokens: 15, outputTokens: 9, cacheCreationInputTokens: 10 });
  });
});

describe('usage conversions', () => {
  it('round-trip between the formats through the neutral shape', () => {
    const anthropic = { input_tokens: 10, output_tokens: 4, cache_read_input_tokens: 50, cache_creation_input_tokens: 5 };
    const neutral = usageFromAnthropic(anthropic);
    expect(neutral).toEqual({ inputTokens: 65, outputTokens: 4, cacheReadInputTokens: 50, cacheCreationInputTokens: 5 });
    expect(toAnthropicUsage(neutral)).toEqual(anthropic);
    const openai = toOpenAiUsage(neutral);
    expect(openai).toEqual({ prompt_tokens: 65, completion_tokens: 4, total_tokens: 69, prompt_tokens_details: { cached_tokens: 50 } });
    expect(usageFromOpenAi(openai)).toEqual({ inputTokens: 65, outputTokens: 4, cacheReadInputTokens: 50 });
  });

  it('treats missing or junk counts as zero', () => {
    expect(usageFromOpenAi(undefined)).toEqual({ inputTokens: 0, outputTokens: 0 });
    expect(usageFromAnthropic({ input_tokens: -3, output_tokens: Number.NaN })).toEqual({ inputTokens: 0, outputTokens: 0 });
  });
});
