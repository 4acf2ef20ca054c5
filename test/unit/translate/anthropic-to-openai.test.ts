import {
  anthropicRequestToOpenAi,
  anthropicResponseToOpenAi,
  mistralToolId,
} from '../../../lambda/core/translate/anthropic-to-openai';
import type { AnthropicRequest, AnthropicResponse } from '../../../lambda/core/translate/anthropic-types';
import { TranslationError, UpstreamProtocolError } from '../../../lambda/core/translate/errors';

function translate(req: Partial<AnthropicRequest> & Record<string, unknown>, dialect?: 'openai' | 'mistral') {
  return anthropicRequestToOpenAi({ model: 'alias', max_tokens: 256, messages: [], ...req } as AnthropicRequest, 'gpt-x', { dialect });
}

function paramOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TranslationError);
    return (err as TranslationError).param;
  }
  throw new Error('expected a TranslationError');
}

describe('anthropicRequestToOpenAi', () => {
  it('maps system (string or blocks), messages, limits and sampling', () => {
    expect(
      translate({
        system: 'Be terse.',
        messages: [{ role: 'user', content: 'Hi' }],
        temperature: 0.2,
        top_p: 0.8,
        top_k: 5,
        stop_sequences: ['END'],
        metadata: { user_id: 'u1' },
      }),
    ).toEqual({
      model: 'gpt-x',
      messages: [
        { role: 'system', content: 'Be terse.' },
        { role: 'user', content: 'Hi' },
      ],
      max_completion_tokens: 256,
      temperature: 0.2,
      top_p: 0.8,
      stop: ['END'],
    });
    const blocks = translate({
      system: [
        { type: 'text', text: 'A' },
        { type: 'text', text: 'B', cache_control: { type: 'ephemeral' } },
      ],
      messages: [{ role: 'user', content: 'x' }],
    });
    expect(blocks.messages[0]).toEqual({ role: 'system', content: 'A\n\nB' });
  });

  it('maps system turns inside messages (API version 2026-10-21) in place', () => {
    const out = translate({
      messages: [
        { role: 'system', content: 'First rule.' },
        { role: 'user', content: 'x' },
        { role: 'system', content: [{ type: 'text', text: 'Later rule.' }] },
        { role: 'user', content: 'y' },
      ],
    });
    expect(out.messages).toEqual([
      { role: 'system', content: 'First rule.' },
      { role: 'user', content: 'x' },
      { role: 'system', content: 'Later rule.' },
      { role: 'user', content: 'y' },
    ]);
  });

  it('maps structured outputs to a json_schema response_format', () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } } };
    const out = translate({ messages: [{ role: 'user', content: 'x' }], output_config: { format: { type: 'json_schema', schema }, effort: 'low' } });
    expect(out.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'response', schema } });
    expect(translate({ messages: [{ role: 'user', content: 'x' }], output_config: { effort: 'high' } })).not.toHaveProperty('response_format');
  });

  it('uses max_tokens and no stream_options for the Mistral dialect', () => {
    const out = translate({ messages: [{ role: 'user', content: 'x' }], stream: true }, 'mistral');
    expect(out.max_tokens).toBe(256);
    expect(out).not.toHaveProperty('max_completion_tokens');
    expect(out).not.toHaveProperty('stream_options');
    expect(translate({ messages: [{ role: 'user', content: 'x' }], stream: true }).stream_options).toEqual({ include_usage: true });
  });

  it('maps a tool round trip, tool results first, then the rest of the user turn', () => {
    const out = translate({
      messages: [
        { role: 'user', content: [{ type: 'text', text: 'Weather?' }] },
        {
          role: 'assistant',
          content: [
            { type: 'thinking', thinking: 'hmm', signature: 'sig' },
            { type: 'text', text: 'Let me check.' },
            { type: 'tool_use', id: 'toolu_1', name: 'weather', input: { city: 'Paris' } },
          ],
        },
        {
          role: 'user',
          content: [
            { type: 'tool_result', tool_use_id: 'toolu_1', content: [{ type: 'text', text: '18C' }] },
            { type: 'text', text: 'And tomorrow?' },
          ],
        },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_2', name: 'weather', input: {} }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_2', content: 'timeout', is_error: true }] },
      ],
    });
    expect(out.messages).toEqual([
      { role: 'user', content: 'Weather?' },
      {
        role: 'assistant',
        content: 'Let me check.',
        tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } }],
      },
      { role: 'tool', tool_call_id: 'toolu_1', content: '18C' },
      { role: 'user', content: 'And tomorrow?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'toolu_2', type: 'function', function: { name: 'weather', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'toolu_2', content: 'Error: timeout' },
    ]);
  });

  it('rewrites tool ids consistently for Mistral', () => {
    const out = translate(
      {
        messages: [
          { role: 'user', content: 'x' },
          { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_01ABC', name: 'f', input: {} }] },
          { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_01ABC', content: 'r' }] },
        ],
      },
      'mistral',
    );
    const id = mistralToolId('toolu_01ABC');
    expect(id).toMatch(/^[a-zA-Z0-9]{9}$/);
    expect(out.messages[1]).toMatchObject({ tool_calls: [{ id }] });
    expect(out.messages[2]).toEqual({ role: 'tool', tool_call_id: id, content: 'r' });
    expect(mistralToolId('abcDEF123')).toBe('abcDEF123');
  });

  it('maps images to image_url parts', () => {
    const out = translate({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'text', text: 'What is this?' },
            { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'AAA' } },
            { type: 'image', source: { type: 'url', url: 'https://example.com/x.png' } },
          ],
        },
      ],
    });
    expect(out.messages[0]).toEqual({
      role: 'user',
      content: [
        { type: 'text', text: 'What is this?' },
        { type: 'image_url', image_url: { url: 'data:image/png;base64,AAA' } },
        { type: 'image_url', image_url: { url: 'https://example.com/x.png' } },
      ],
    });
  });

  it('maps tools and every tool_choice', () => {
    const tools: AnthropicRequest['tools'] = [
      { name: 'f', description: 'does f', input_schema: { type: 'object', properties: { a: { type: 'number' } } } },
    ];
    const messages: AnthropicRequest['messages'] = [{ role: 'user', content: 'x' }];
    const out = translate({ messages, tools, tool_choice: { type: 'any', disable_parallel_tool_use: true } });
    expect(out.tools).toEqual([
      { type: 'function', function: { name: 'f', description: 'does f', parameters: { type: 'object', properties: { a: { type: 'number' } } } } },
    ]);
    expect(out.tool_choice).toBe('required');
    expect(out.parallel_tool_calls).toBe(false);
    expect(translate({ messages, tools, tool_choice: { type: 'auto' } }).tool_choice).toBe('auto');
    expect(translate({ messages, tools, tool_choice: { type: 'none' } }).tool_choice).toBe('none');
    expect(translate({ messages, tools, tool_choice: { type: 'tool', name: 'f' } }).tool_choice).toEqual({
      type: 'function',
      function: { name: 'f' },
    });
    expect(translate({ messages, tool_choice: { type: 'auto' } })).not.toHaveProperty('tool_choice');
  });

  it.each([
    ['missing max_tokens', { max_tokens: undefined, messages: [{ role: 'user', content: 'x' }] }, 'max_tokens'],
    ['no messages', { messages: [] }, 'messages'],
    ['bad role', { messages: [{ role: 'tool', content: 'x' }] }, 'messages.0.role'],
    ['only system turns', { messages: [{ role: 'system', content: 'x' }] }, 'messages'],
    ['image in a system turn', { messages: [{ role: 'system', content: [{ type: 'image' }] }] }, 'messages.0.content.0.type'],
    ['bad output format', { messages: [{ role: 'user', content: 'x' }], output_config: { format: { type: 'regex' } } }, 'output_config.format.type'],
    ['document block', { messages: [{ role: 'user', content: [{ type: 'document', source: {} }] }] }, 'messages.0.content.0.type'],
    [
      'image in tool result',
      { messages: [{ role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'image', source: { type: 'url', url: 'u' } }] }] }] },
      'messages.0.content.0.content.0.type',
    ],
    ['server tool', { messages: [{ role: 'user', content: 'x' }], tools: [{ type: 'web_search_20250305', name: 'web_search' }] }, 'tools.0.type'],
    ['tool without schema', { messages: [{ role: 'user', content: 'x' }], tools: [{ name: 'f' }] }, 'tools.0.input_schema'],
    ['bad tool_choice', { messages: [{ role: 'user', content: 'x' }], tools: [{ name: 'f', input_schema: { type: 'object' } }], tool_choice: { type: 'maybe' } }, 'tool_choice.type'],
    ['bad system block', { system: [{ type: 'image' }], messages: [{ role: 'user', content: 'x' }] }, 'system.0.type'],
    ['bad stop_sequences', { stop_sequences: 'END', messages: [{ role: 'user', content: 'x' }] }, 'stop_sequences'],
  ])('rejects %s with a TranslationError naming the field', (_name, req, param) => {
    expect(paramOf(() => translate(req as never))).toBe(param);
  });
});

describe('anthropicResponseToOpenAi', () => {
  const base: AnthropicResponse = {
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-x',
    content: [
      { type: 'text', text: 'Hello ' },
      { type: 'text', text: 'world' },
    ],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 10, output_tokens: 4 },
  };

  it('concatenates text and maps usage', () => {
    expect(anthropicResponseToOpenAi(base, 'alias', { created: 123 })).toEqual({
      id: 'msg_1',
      object: 'chat.completion',
      created: 123,
      model: 'alias',
      choices: [{ index: 0, message: { role: 'assistant', content: 'Hello world', refusal: null }, finish_reason: 'stop', logprobs: null }],
      usage: { prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 },
    });
  });

  it('maps tool_use to tool_calls with stringified input, dropping thinking', () => {
    const out = anthropicResponseToOpenAi(
      {
        ...base,
        content: [
          { type: 'thinking', thinking: 't', signature: 's' },
          { type: 'tool_use', id: 'toolu_1', name: 'f', input: { a: 1 } },
        ],
        stop_reason: 'tool_use',
      },
      'm',
    );
    expect(out.choices[0].message).toEqual({
      role: 'assistant',
      content: null,
      refusal: null,
      tool_calls: [{ id: 'toolu_1', type: 'function', function: { name: 'f', arguments: '{"a":1}' } }],
    });
    expect(out.choices[0].finish_reason).toBe('tool_calls');
  });

  it.each([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['max_tokens', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
    ['pause_turn', 'stop'],
    ['model_context_window_exceeded', 'length'],
  ] as const)('maps stop_reason %s to %s', (stop, finish) => {
    expect(anthropicResponseToOpenAi({ ...base, stop_reason: stop }, 'm').choices[0].finish_reason).toBe(finish);
  });

  it('counts cache reads and writes into prompt_tokens', () => {
    const out = anthropicResponseToOpenAi(
      { ...base, usage: { input_tokens: 10, output_tokens: 4, cache_read_input_tokens: 100, cache_creation_input_tokens: 20 } },
      'm',
    );
    expect(out.usage).toEqual({ prompt_tokens: 130, completion_tokens: 4, total_tokens: 134, prompt_tokens_details: { cached_tokens: 100 } });
  });

  it('blames the upstream for a message without content', () => {
    expect(() => anthropicResponseToOpenAi({ ...base, content: undefined } as never, 'm')).toThrow(UpstreamProtocolError);
  });
});
