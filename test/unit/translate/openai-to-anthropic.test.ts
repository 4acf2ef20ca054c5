import {
  openAiRequestToAnthropic,
  openAiResponseToAnthropic,
} from '../../../lambda/core/translate/openai-to-anthropic';
import { TranslationError, UpstreamProtocolError } from '../../../lambda/core/translate/errors';
import type { OpenAiChatRequest, OpenAiChatResponse } from '../../../lambda/core/translate/openai-types';

const opts = { defaultMaxTokens: 4096 };

function translate(req: Partial<OpenAiChatRequest> & Record<string, unknown>) {
  return openAiRequestToAnthropic({ model: 'alias', messages: [], ...req } as OpenAiChatRequest, 'claude-x', opts);
}

function expectTranslationError(fn: () => unknown, param: string, message?: RegExp): void {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TranslationError);
    const e = err as TranslationError;
    expect(e.param).toBe(param);
    expect(e.status).toBe(400);
    if (message) expect(e.message).toMatch(message);
    return;
  }
  throw new Error('expected a TranslationError');
}

describe('openAiRequestToAnthropic', () => {
  it('maps a simple chat, hoisting system and developer messages', () => {
    const out = translate({
      messages: [
        { role: 'system', content: 'Be terse.' },
        { role: 'developer', content: [{ type: 'text', text: 'Answer in French.' }] },
        { role: 'user', content: 'Hi' },
      ],
      temperature: 0.3,
      top_p: 0.9,
    });
    expect(out).toEqual({
      model: 'claude-x',
      max_tokens: 4096,
      system: [
        { type: 'text', text: 'Be terse.' },
        { type: 'text', text: 'Answer in French.' },
      ],
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hi' }] }],
      temperature: 0.3,
      top_p: 0.9,
    });
  });

  it('uses a plain string for a single system message and omits system when there is none', () => {
    expect(translate({ messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'u' }] }).system).toBe('S');
    expect(translate({ messages: [{ role: 'user', content: 'u' }] })).not.toHaveProperty('system');
  });

  it('prefers max_completion_tokens, then max_tokens, then the default', () => {
    const messages: OpenAiChatRequest['messages'] = [{ role: 'user', content: 'x' }];
    expect(translate({ messages, max_completion_tokens: 10, max_tokens: 20 }).max_tokens).toBe(10);
    expect(translate({ messages, max_tokens: 20 }).max_tokens).toBe(20);
    expect(translate({ messages, max_tokens: null }).max_tokens).toBe(4096);
    expectTranslationError(() => translate({ messages, max_tokens: 0 }), 'max_tokens');
    expectTranslationError(() => translate({ messages, max_completion_tokens: 1.5 }), 'max_completion_tokens');
  });

  it('maps a tool round trip: tool_calls → tool_use, tool messages → one user turn of tool_results', () => {
    const out = translate({
      messages: [
        { role: 'user', content: 'Weather in Paris and Oslo?' },
        {
          role: 'assistant',
          content: 'Checking.',
          tool_calls: [
            { id: 'call_1', type: 'function', function: { name: 'weather', arguments: '{"city":"Paris"}' } },
            { id: 'call.2', type: 'function', function: { name: 'weather', arguments: '' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_1', content: '18C' },
        { role: 'tool', tool_call_id: 'call.2', content: [{ type: 'text', text: '9' }, { type: 'text', text: 'C' }] },
        { role: 'user', content: 'Thanks' },
      ],
    });
    expect(out.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'Weather in Paris and Oslo?' }] },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'Checking.' },
          { type: 'tool_use', id: 'call_1', name: 'weather', input: { city: 'Paris' } },
          { type: 'tool_use', id: 'call_2', name: 'weather', input: {} },
        ],
      },
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 'call_1', content: '18C' },
          { type: 'tool_result', tool_use_id: 'call_2', content: '9C' },
          { type: 'text', text: 'Thanks' },
        ],
      },
    ]);
  });

  it('merges consecutive same-role messages and puts tool results first in a user turn', () => {
    const out = translate({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'user', content: 'b' },
        { role: 'assistant', content: null, tool_calls: [{ id: 't', type: 'function', function: { name: 'f', arguments: '{}' } }] },
        { role: 'user', content: 'c' },
        { role: 'tool', tool_call_id: 't', content: 'r' },
      ],
    });
    expect(out.messages).toEqual([
      { role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't', name: 'f', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: 'r' }, { type: 'text', text: 'c' }] },
    ]);
  });

  it('drops empty text and empty assistant messages instead of sending blocks Anthropic rejects', () => {
    const out = translate({
      messages: [
        { role: 'user', content: 'a' },
        { role: 'assistant', content: '' },
        { role: 'user', content: [{ type: 'text', text: '' }, { type: 'text', text: 'b' }] },
      ],
    });
    expect(out.messages).toEqual([{ role: 'user', content: [{ type: 'text', text: 'a' }, { type: 'text', text: 'b' }] }]);
  });

  it('maps images given as data URLs and http URLs, and inline PDFs', () => {
    const out = translate({
      messages: [
        {
          role: 'user',
          content: [
            { type: 'image_url', image_url: { url: 'data:image/png;base64,iVBORw0K' } },
            { type: 'image_url', image_url: { url: 'https://example.com/cat.jpg', detail: 'low' } },
            { type: 'file', file: { file_data: 'data:application/pdf;base64,JVBERi0', filename: 'a.pdf' } },
          ],
        },
      ],
    });
    expect(out.messages[0].content).toEqual([
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0K' } },
      { type: 'image', source: { type: 'url', url: 'https://example.com/cat.jpg' } },
      { type: 'document', source: { type: 'base64', media_type: 'application/pdf', data: 'JVBERi0' }, title: 'a.pdf' },
    ]);
  });

  it('maps tools, tool_choice and parallel_tool_calls', () => {
    const tools: OpenAiChatRequest['tools'] = [
      { type: 'function', function: { name: 'f', description: 'does f', parameters: { type: 'object', properties: { a: { type: 'string' } } } } },
      { type: 'function', function: { name: 'g' } },
    ];
    const messages: OpenAiChatRequest['messages'] = [{ role: 'user', content: 'x' }];
    const out = translate({ messages, tools, tool_choice: 'required' });
    expect(out.tools).toEqual([
      { name: 'f', description: 'does f', input_schema: { type: 'object', properties: { a: { type: 'string' } } } },
      { name: 'g', input_schema: { type: 'object', properties: {} } },
    ]);
    expect(out.tool_choice).toEqual({ type: 'any' });
    expect(translate({ messages, tools, tool_choice: 'auto' }).tool_choice).toEqual({ type: 'auto' });
    expect(translate({ messages, tools, tool_choice: 'none' }).tool_choice).toEqual({ type: 'none' });
    expect(translate({ messages, tools, tool_choice: { type: 'function', function: { name: 'g' } } }).tool_choice).toEqual({
      type: 'tool',
      name: 'g',
    });
    expect(translate({ messages, tools, parallel_tool_calls: false }).tool_choice).toEqual({
      type: 'auto',
      disable_parallel_tool_use: true,
    });
    expect(translate({ messages, tools, tool_choice: 'required', parallel_tool_calls: false }).tool_choice).toEqual({
      type: 'any',
      disable_parallel_tool_use: true,
    });
    expect(translate({ messages, tool_choice: 'auto' })).not.toHaveProperty('tool_choice');
    expect(translate({ messages, tools: [] })).not.toHaveProperty('tools');
  });

  it('maps stop to stop_sequences, clamps temperature to 0..1, passes stream', () => {
    const messages: OpenAiChatRequest['messages'] = [{ role: 'user', content: 'x' }];
    expect(translate({ messages, stop: 'END' }).stop_sequences).toEqual(['END']);
    expect(translate({ messages, stop: ['a', 'b'] }).stop_sequences).toEqual(['a', 'b']);
    expect(translate({ messages, stop: null })).not.toHaveProperty('stop_sequences');
    expect(translate({ messages, temperature: 1.7 }).temperature).toBe(1);
    expect(translate({ messages, stream: true, stream_options: { include_usage: true } }).stream).toBe(true);
    expect(translate({ messages, user: 'alice@example.com' })).not.toHaveProperty('metadata');
  });

  it('maps a json_schema response_format to Anthropic structured outputs', () => {
    const schema = { type: 'object', properties: { a: { type: 'string' } }, required: ['a'], additionalProperties: false };
    const out = translate({
      messages: [{ role: 'user', content: 'x' }],
      response_format: { type: 'json_schema', json_schema: { name: 'thing', schema, strict: true } },
    });
    expect(out.output_config).toEqual({ format: { type: 'json_schema', schema } });
  });

  it('ignores unknown extra fields and tolerates response_format json_object', () => {
    const out = translate({ messages: [{ role: 'user', content: 'x' }], logprobs: true, seed: 4, response_format: { type: 'json_object' } });
    expect(Object.keys(out).sort()).toEqual(['max_tokens', 'messages', 'model']);
  });

  describe('rejects what Anthropic cannot do, naming the field', () => {
    const user = { role: 'user', content: 'x' } as const;
    it.each([
      ['body not an object', () => openAiRequestToAnthropic(null as unknown as OpenAiChatRequest, 'm', opts), 'body'],
      ['messages missing', () => translate({ messages: undefined }), 'messages'],
      ['only system messages', () => translate({ messages: [{ role: 'system', content: 's' }] }), 'messages'],
      ['unknown role', () => translate({ messages: [{ role: 'robot', content: 'x' } as never] }), 'messages.0.role'],
      ['legacy function role', () => translate({ messages: [{ role: 'function', content: 'x' } as never] }), 'messages.0.role'],
      ['n > 1', () => translate({ messages: [user], n: 2 }), 'n'],
      ['json_schema without schema', () => translate({ messages: [user], response_format: { type: 'json_schema', json_schema: { name: 'x' } } }), 'response_format.json_schema.schema'],
      ['unknown response_format', () => translate({ messages: [user], response_format: { type: 'yaml' } as never }), 'response_format.type'],
      [
        'invalid JSON arguments',
        () => translate({ messages: [user, { role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{bad' } }] }] }),
        'messages.1.tool_calls.0.function.arguments',
      ],
      [
        'non-object arguments',
        () => translate({ messages: [user, { role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '[1]' } }] }] }),
        'messages.1.tool_calls.0.function.arguments',
      ],
      ['tool message without id', () => translate({ messages: [user, { role: 'tool', content: 'r' } as never] }), 'messages.1.tool_call_id'],
      ['audio input', () => translate({ messages: [{ role: 'user', content: [{ type: 'input_audio', input_audio: { data: '', format: 'wav' } }] }] }), 'messages.0.content.0.type'],
      ['file by id', () => translate({ messages: [{ role: 'user', content: [{ type: 'file', file: { file_id: 'file-1' } }] }] }), 'messages.0.content.0.file'],
      ['ftp image', () => translate({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'ftp://x' } }] }] }), 'messages.0.content.0.image_url.url'],
      ['image in system', () => translate({ messages: [{ role: 'system', content: [{ type: 'image_url' } as never] }, user] }), 'messages.0.content.0.type'],
      ['non-function tool', () => translate({ messages: [user], tools: [{ type: 'web_search' } as never] }), 'tools.0.type'],
      ['array schema', () => translate({ messages: [user], tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'array' } } }] }), 'tools.0.function.parameters'],
      ['required without tools', () => translate({ messages: [user], tool_choice: 'required' }), 'tool_choice'],
      ['bad tool_choice', () => translate({ messages: [user], tools: [{ type: 'function', function: { name: 'f' } }], tool_choice: 'sometimes' as never }), 'tool_choice'],
      ['non-numeric temperature', () => translate({ messages: [user], temperature: 'hot' as never }), 'temperature'],
      ['bad stop', () => translate({ messages: [user], stop: [1] as never }), 'stop.0'],
    ])('%s', (_name, fn, param) => {
      expectTranslationError(fn, param);
    });

    it('has a message that names the field and the problem', () => {
      expectTranslationError(
        () => translate({ messages: [user, { role: 'assistant', tool_calls: [{ id: 'a', type: 'function', function: { name: 'f', arguments: '{' } }] }] }),
        'messages.1.tool_calls.0.function.arguments',
        /^messages\.1\.tool_calls\.0\.function\.arguments: is not valid JSON$/,
      );
    });
  });
});

describe('openAiResponseToAnthropic', () => {
  const base: OpenAiChatResponse = {
    id: 'chatcmpl-1',
    object: 'chat.completion',
    created: 1,
    model: 'gpt-4o',
    choices: [{ index: 0, message: { role: 'assistant', content: 'Hello' }, finish_reason: 'stop', logprobs: null }],
    usage: { prompt_tokens: 12, completion_tokens: 3, total_tokens: 15 },
  };

  it('maps text, stop reason and usage', () => {
    expect(openAiResponseToAnthropic(base, 'alias')).toEqual({
      id: 'chatcmpl-1',
      type: 'message',
      role: 'assistant',
      model: 'alias',
      content: [{ type: 'text', text: 'Hello' }],
      stop_reason: 'end_turn',
      stop_sequence: null,
      usage: { input_tokens: 12, output_tokens: 3, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    });
  });

  it('maps tool calls to tool_use blocks with parsed input', () => {
    const resp: OpenAiChatResponse = {
      ...base,
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: null,
            tool_calls: [{ id: 'call_9', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }],
          },
          finish_reason: 'tool_calls',
          logprobs: null,
        },
      ],
    };
    const out = openAiResponseToAnthropic(resp, 'm');
    expect(out.content).toEqual([{ type: 'tool_use', id: 'call_9', name: 'weather', input: { city: 'Oslo' } }]);
    expect(out.stop_reason).toBe('tool_use');
  });

  it.each([
    ['stop', 'end_turn'],
    ['length', 'max_tokens'],
    ['tool_calls', 'tool_use'],
    ['content_filter', 'refusal'],
    [null, 'end_turn'],
  ] as const)('maps finish_reason %s to %s', (finish, stop) => {
    const resp = { ...base, choices: [{ ...base.choices[0], finish_reason: finish }] };
    expect(openAiResponseToAnthropic(resp, 'm').stop_reason).toBe(stop);
  });

  it('separates cached prompt tokens as Anthropic does', () => {
    const out = openAiResponseToAnthropic(
      { ...base, usage: { prompt_tokens: 100, completion_tokens: 5, total_tokens: 105, prompt_tokens_details: { cached_tokens: 60 } } },
      'm',
    );
    expect(out.usage).toEqual({ input_tokens: 40, output_tokens: 5, cache_creation_input_tokens: 0, cache_read_input_tokens: 60 });
  });

  it('shows a refusal as text', () => {
    const resp = { ...base, choices: [{ ...base.choices[0], message: { role: 'assistant' as const, content: null, refusal: 'No.' } }] };
    expect(openAiResponseToAnthropic(resp, 'm').content).toEqual([{ type: 'text', text: 'No.' }]);
  });

  it('blames the upstream, not the client, for malformed answers', () => {
    expect(() => openAiResponseToAnthropic({ ...base, choices: [] }, 'm')).toThrow(UpstreamProtocolError);
    const badArgs = {
      ...base,
      choices: [
        {
          ...base.choices[0],
          message: { role: 'assistant' as const, content: null, tool_calls: [{ id: 'c', type: 'function' as const, function: { name: 'f', arguments: '{x' } }] },
        },
      ],
    };
    expect(() => openAiResponseToAnthropic(badArgs, 'm')).toThrow(UpstreamProtocolError);
  });
});
