/**
 * Anthropic ↔ Amazon Bedrock Converse translation (issue 14.1), pure: request mapping and its
 * refusals, buffered responses, and the ConverseStream → Anthropic event translator, including
 * malformed and hostile upstream events.
 */
import {
  anthropicRequestToConverse,
  converseResponseToAnthropic,
  converseStopToAnthropic,
  ConverseToAnthropicStream,
  TranslationError,
  UpstreamProtocolError,
  UpstreamStreamError,
} from '../../../lambda/core/translate';

const ids = { id: 'msg_x', model: 'bedrock/m' };

describe('anthropicRequestToConverse', () => {
  test('maps system, turns, blocks, inference settings, tools and tool choice', () => {
    const out = anthropicRequestToConverse({
      model: 'ignored',
      max_tokens: 64,
      temperature: 0.2,
      top_p: 0.9,
      top_k: 5,
      stop_sequences: ['END'],
      system: [{ type: 'text', text: 'sys' }],
      metadata: { user_id: 'u' },
      stream: true,
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'hi' }, { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw==' } }] },
        { role: 'assistant', content: [{ type: 'thinking', thinking: 't', signature: 's' }, { type: 'tool_use', id: 'tu1', name: 'f', input: { a: 1 } }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'tu1', content: 'r', is_error: true }] },
      ],
      tools: [{ name: 'f', description: 'd', input_schema: { type: 'object' } }],
      tool_choice: { type: 'tool', name: 'f' },
    });
    expect(out).toEqual({
      system: [{ text: 'sys' }],
      messages: [
        { role: 'user', content: [{ text: 'hi' }, { image: { format: 'png', source: { bytes: 'iVBORw==' } } }] },
        { role: 'assistant', content: [{ reasoningContent: { reasoningText: { text: 't', signature: 's' } } }, { toolUse: { toolUseId: 'tu1', name: 'f', input: { a: 1 } } }] },
        { role: 'user', content: [{ toolResult: { toolUseId: 'tu1', content: [{ text: 'r' }], status: 'error' } }] },
      ],
      inferenceConfig: { maxTokens: 64, temperature: 0.2, topP: 0.9, stopSequences: ['END'] },
      additionalModelRequestFields: { top_k: 5 },
      toolConfig: { tools: [{ toolSpec: { name: 'f', description: 'd', inputSchema: { json: { type: 'object' } } } }], toolChoice: { tool: { name: 'f' } } },
    });
    // Nothing of the Anthropic envelope (model, stream, metadata) reaches Converse.
    expect(Object.keys(out)).not.toEqual(expect.arrayContaining(['model']));
  });

  test('leading system turns join the system prompt; tool_choice none drops the tools', () => {
    const out = anthropicRequestToConverse({ max_tokens: 5, messages: [{ role: 'system', content: 'a' }, { role: 'user', content: 'b' }], tools: [{ name: 'f', input_schema: { type: 'object' } }], tool_choice: { type: 'none' } });
    expect(out).toEqual({ system: [{ text: 'a' }], messages: [{ role: 'user', content: [{ text: 'b' }] }], inferenceConfig: { maxTokens: 5 } });
  });

  test.each([
    ['not an object', 'x', 'JSON object'],
    ['no messages', { max_tokens: 1, messages: [] }, 'messages: must be a non-empty array'],
    ['image URL', { max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'url', url: 'https://x' } }] }] }, 'base64 data, not URLs'],
    ['SVG image', { max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/svg+xml', data: 'AA==' } }] }] }, "image type 'image/svg+xml'"],
    ['non-base64 image', { max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'a b' } }] }] }, 'must be base64'],
    ['document', { max_tokens: 1, messages: [{ role: 'user', content: [{ type: 'document', source: {} }] }] }, "type 'document' are not supported"],
    ['server tool', { max_tokens: 1, messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, 'server tools'],
    ['structured output', { max_tokens: 1, messages: [{ role: 'user', content: 'x' }], output_config: { format: { type: 'json_schema', schema: {} } } }, 'structured output'],
    ['late system turn', { max_tokens: 1, messages: [{ role: 'user', content: 'x' }, { role: 'system', content: 'y' }] }, 'system content only before'],
    ['unknown role', { max_tokens: 1, messages: [{ role: 'tool', content: 'x' }] }, "must be 'user', 'assistant' or 'system'"],
    ['tool_use input not an object', { max_tokens: 1, messages: [{ role: 'assistant', content: [{ type: 'tool_use', id: 'a', name: 'f', input: 'x' }] }] }, 'input: must be an object'],
    ['none with tool history', { max_tokens: 1, tools: [{ name: 'f', input_schema: { type: 'object' } }], tool_choice: { type: 'none' }, messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 'a', content: 'x' }] }] }, "tool_choice 'none'"],
    ['bad max_tokens', { max_tokens: -1, messages: [{ role: 'user', content: 'x' }] }, 'max_tokens: must be a positive integer'],
    ['stop sequences not strings', { max_tokens: 1, stop_sequences: [1], messages: [{ role: 'user', content: 'x' }] }, 'stop_sequences'],
  ])('refuses %s with a TranslationError', (_name, body, message) => {
    let err: unknown;
    try {
      anthropicRequestToConverse(body);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(TranslationError);
    expect((err as Error).message).toContain(message);
  });
});

describe('converseResponseToAnthropic', () => {
  test('text, tool use, reasoning, stop reason and usage with cache counters', () => {
    const out = converseResponseToAnthropic(
      {
        output: { message: { role: 'assistant', content: [{ reasoningContent: { reasoningText: { text: 'hm', signature: 'sig' } } }, { text: 'hello' }, { toolUse: { toolUseId: 't1', name: 'f', input: { x: 1 } } }, { citationsContent: {} }] } },
        stopReason: 'tool_use',
        usage: { inputTokens: 10, outputTokens: 5, totalTokens: 15, cacheReadInputTokens: 3, cacheWriteInputTokens: 2 },
      },
      ids,
    );
    expect(out).toEqual({
      id: 'msg_x',
      type: 'message',
      role: 'assistant',
      model: 'bedrock/m',
      content: [{ type: 'thinking', thinking: 'hm', signature: 'sig' }, { type: 'text', text: 'hello' }, { type: 'tool_use', id: 't1', name: 'f', input: { x: 1 } }],
      stop_reason: 'tool_use',
      stop_sequence: null,
      usage: { input_tokens: 10, output_tokens: 5, cache_read_input_tokens: 3, cache_creation_input_tokens: 2 },
    });
  });

  test('guardrail and content-filter stops read as refusal; unknown as end_turn', () => {
    expect(converseStopToAnthropic('guardrail_intervened')).toBe('refusal');
    expect(converseStopToAnthropic('content_filtered')).toBe('refusal');
    expect(converseStopToAnthropic('something_new')).toBe('end_turn');
  });

  test.each([[null], [{}], [{ output: {} }], [{ output: { message: { content: 'x' } } }], [{ output: { message: { content: [{ toolUse: { name: 'f' } }] } } }], [{ output: { message: { content: [7] } } }]])(
    'malformed answer %j is an UpstreamProtocolError',
    (json) => {
      expect(() => converseResponseToAnthropic(json, ids)).toThrow(UpstreamProtocolError);
    },
  );

  test('negative or non-numeric usage counts as zero', () => {
    const out = converseResponseToAnthropic({ output: { message: { content: [] } }, stopReason: 'end_turn', usage: { inputTokens: -5, outputTokens: 'x' } }, ids);
    expect(out.usage).toEqual({ input_tokens: 0, output_tokens: 0, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 });
  });
});

describe('ConverseToAnthropicStream', () => {
  const run = (events: Array<[string, unknown]>) => {
    const tr = new ConverseToAnthropicStream(ids);
    const out = events.flatMap(([t, p]) => tr.push(t, p));
    return { out, tr };
  };

  test('text: implicit block start, deltas, stop, then message_delta with usage on metadata', () => {
    const { out, tr } = run([
      ['messageStart', { role: 'assistant', p: 'pad' }],
      ['contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hel' } }],
      ['contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'lo' } }],
      ['contentBlockStop', { contentBlockIndex: 0 }],
      ['messageStop', { stopReason: 'max_tokens' }],
      ['metadata', { usage: { inputTokens: 7, outputTokens: 2 }, metrics: { latencyMs: 1 } }],
    ]);
    expect(out.map((e) => e.type)).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    expect(out[5]).toEqual({ type: 'message_delta', delta: { stop_reason: 'max_tokens', stop_sequence: null }, usage: { input_tokens: 7, output_tokens: 2, cache_read_input_tokens: 0, cache_creation_input_tokens: 0 } });
    expect(tr.complete).toBe(true);
  });

  test('tool use: explicit start, input_json deltas; reasoning with signature; blocks left open are closed at messageStop', () => {
    const { out } = run([
      ['messageStart', { role: 'assistant' }],
      ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { text: 'think' } } }],
      ['contentBlockDelta', { contentBlockIndex: 0, delta: { reasoningContent: { signature: 'sig' } } }],
      ['contentBlockStart', { contentBlockIndex: 1, start: { toolUse: { toolUseId: 't', name: 'f' } } }],
      ['contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '{"a":' } } }],
      ['contentBlockDelta', { contentBlockIndex: 1, delta: { toolUse: { input: '1}' } } }],
      ['messageStop', { stopReason: 'tool_use' }],
    ]);
    expect(out.slice(1)).toEqual([
      { type: 'content_block_start', index: 0, content_block: { type: 'thinking', thinking: '', signature: '' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'thinking_delta', thinking: 'think' } },
      { type: 'content_block_delta', index: 0, delta: { type: 'signature_delta', signature: 'sig' } },
      { type: 'content_block_start', index: 1, content_block: { type: 'tool_use', id: 't', name: 'f', input: {} } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '{"a":' } },
      { type: 'content_block_delta', index: 1, delta: { type: 'input_json_delta', partial_json: '1}' } },
      { type: 'content_block_stop', index: 0 },
      { type: 'content_block_stop', index: 1 },
    ]);
  });

  test('no metadata after messageStop: not complete (the router settles nothing on a guess)', () => {
    const { tr, out } = run([
      ['messageStart', { role: 'assistant' }],
      ['contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'x' } }],
      ['messageStop', { stopReason: 'end_turn' }],
    ]);
    expect(tr.complete).toBe(false);
    expect(out.map((e) => e.type)).not.toContain('message_stop');
    // Usage before messageStop is not a finished message either.
    expect(run([['metadata', { usage: { inputTokens: 1, outputTokens: 1 } }]]).tr.complete).toBe(false);
  });

  test('exception events are mid-stream errors carrying their type; malformed events are protocol errors', () => {
    const tr = new ConverseToAnthropicStream(ids);
    expect(() => tr.push('throttlingException', { message: 'slow down' })).toThrow(UpstreamStreamError);
    try {
      new ConverseToAnthropicStream(ids).push('modelStreamErrorException', {});
    } catch (e) {
      expect((e as UpstreamStreamError).errorType).toBe('modelStreamErrorException');
    }
    for (const [t, p] of [
      ['contentBlockDelta', { delta: { text: 'x' } }],
      ['contentBlockDelta', { contentBlockIndex: -1, delta: { text: 'x' } }],
      ['contentBlockDelta', { contentBlockIndex: 1e9, delta: { text: 'x' } }],
      ['contentBlockDelta', { contentBlockIndex: 0, delta: { toolUse: { input: '{}' } } }],
      ['contentBlockStart', { contentBlockIndex: 0, start: { toolUse: { name: 'f' } } }],
      ['messageStart', 'not an object'],
    ] as Array<[string, unknown]>) {
      expect(() => new ConverseToAnthropicStream(ids).push(t, p)).toThrow(UpstreamProtocolError);
    }
  });

  test('unknown event types are skipped', () => {
    const tr = new ConverseToAnthropicStream(ids);
    expect(tr.push('messageStart', {}).map((e) => e.type)).toEqual(['message_start']);
    expect(tr.push('somethingNew', { x: 1 })).toEqual([]);
  });
});
