import type { ClientRequest } from '../../../lambda/core/router/client-request';
import { clientResponse, DEFAULT_MAX_TOKENS, streamBridge, upstreamRequest } from '../../../lambda/core/router/upstream-exchange';
import type { Target } from '../../../lambda/core/routing/types';
import { SseParser, type SseEvent } from '../../../lambda/core/sse';

const target = (kind: Target['kind'], model: string, provider: string = kind): Target => ({ provider, kind, baseUrl: 'https://x.example', model, secret: 'default' });
const OPENAI = target('openai', 'gpt-4o');
const ANTHROPIC = target('anthropic', 'claude-sonnet-4-5');
const MISTRAL = target('mistral', 'mistral-large-latest');
const SELF = target('openai-compatible', 'llama', 'self-hosted');

const client = (route: ClientRequest['route'], body: Record<string, unknown>): ClientRequest => ({
  route,
  body,
  model: String(body.model),
  stream: body.stream === true,
  maxTokens: typeof body.max_tokens === 'number' ? body.max_tokens : undefined,
  promptTokenEstimate: 1,
});

const oaChat = (extra: Record<string, unknown> = {}) =>
  client('chat', { model: 'alias', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }], ...extra });
const anMsg = (extra: Record<string, unknown> = {}) => client('messages', { model: 'alias', max_tokens: 9, system: 'Be brief.', messages: [{ role: 'user', content: 'hi' }], ...extra });

const events = (text: string): SseEvent[] => {
  const p = new SseParser();
  return [...p.push(text), ...p.end()];
};
const oaChunk = (delta: Record<string, unknown>, finish: string | null = null, extra: Record<string, unknown> = {}) =>
  ({ data: JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [{ index: 0, delta, finish_reason: finish }], ...extra }) }) as SseEvent;
const anEvent = (type: string, payload: Record<string, unknown> = {}): SseEvent => ({ event: type, data: JSON.stringify({ type, ...payload }) });

describe('upstreamRequest', () => {
  test('OpenAI → OpenAI: the body with the target model; include_usage forced on streams only', () => {
    expect(upstreamRequest(oaChat(), OPENAI)).toEqual({ path: '/v1/chat/completions', body: { ...oaChat().body, model: 'gpt-4o' } });
    const s = upstreamRequest(oaChat({ stream: true, stream_options: { foo: 1 } }), OPENAI);
    expect(s.body).toMatchObject({ stream: true, stream_options: { foo: 1, include_usage: true } });
    // The client's own body is not mutated.
    expect(oaChat({ stream: true }).body.stream_options).toBeUndefined();
    expect((upstreamRequest(oaChat({ stream: true }), SELF).body as any).stream_options).toEqual({ include_usage: true });
  });

  test('OpenAI → Mistral: no stream_options (Mistral rejects it and always reports usage)', () => {
    const s = upstreamRequest(oaChat({ stream: true, stream_options: { include_usage: true } }), MISTRAL);
    expect(s.body).toMatchObject({ model: 'mistral-large-latest', stream: true, stream_options: { include_usage: true } });
    const t = upstreamRequest(oaChat({ stream: true }), MISTRAL);
    expect((t.body as any).stream_options).toBeUndefined();
  });

  test('OpenAI → Anthropic: /v1/messages, system lifted out, default max_tokens', () => {
    const r = upstreamRequest(oaChat(), ANTHROPIC);
    expect(r.path).toBe('/v1/messages');
    expect(r.body).toMatchObject({ model: 'claude-sonnet-4-5', system: 'Be brief.', max_tokens: DEFAULT_MAX_TOKENS, messages: [{ role: 'user' }] });
    expect((upstreamRequest(oaChat({ max_tokens: 5 }), ANTHROPIC).body as any).max_tokens).toBe(5);
  });

  test('Anthropic → OpenAI / Mistral: system message first, dialect-specific max field', () => {
    const o = upstreamRequest(anMsg(), OPENAI);
    expect(o.path).toBe('/v1/chat/completions');
    expect(o.body).toMatchObject({ model: 'gpt-4o', max_completion_tokens: 9, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'hi' }] });
    const m = upstreamRequest(anMsg(), MISTRAL);
    expect(m.body).toMatchObject({ model: 'mistral-large-latest', max_tokens: 9 });
    expect((m.body as any).max_completion_tokens).toBeUndefined();
  });

  test('Anthropic → Anthropic: passthrough with the target model', () => {
    expect(upstreamRequest(anMsg({ stop_sequences: ['x'] }), ANTHROPIC)).toEqual({ path: '/v1/messages', body: { ...anMsg({ stop_sequences: ['x'] }).body, model: 'claude-sonnet-4-5' } });
  });

  test('embeddings: the body with the target model', () => {
    expect(upstreamRequest(client('embeddings', { model: 'alias', input: 'x' }), MISTRAL)).toEqual({ path: '/v1/embeddings', body: { model: 'mistral-large-latest', input: 'x' } });
  });
});

describe('clientResponse', () => {
  const oaResp = { id: 'c1', object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'yo' }, finish_reason: 'length' }], usage: { prompt_tokens: 7, completion_tokens: 2, total_tokens: 9 } };
  const anResp = { id: 'msg_1', type: 'message', role: 'assistant', model: 'claude', content: [{ type: 'text', text: 'yo' }], stop_reason: 'max_tokens', stop_sequence: null, usage: { input_tokens: 5, output_tokens: 2, cache_read_input_tokens: 3 } };

  test('OpenAI → OpenAI passes through with usage', () => {
    expect(clientResponse(oaChat(), OPENAI, oaResp)).toEqual({ body: oaResp, usage: { inputTokens: 7, outputTokens: 2 } });
  });
  test('Anthropic target → OpenAI client: translated, cache reads counted as input', () => {
    const { body, usage } = clientResponse(oaChat(), ANTHROPIC, anResp) as { body: any; usage: any };
    expect(body).toMatchObject({ object: 'chat.completion', model: 'alias', choices: [{ finish_reason: 'length', message: { content: 'yo' } }] });
    expect(usage).toMatchObject({ inputTokens: 8, outputTokens: 2, cacheReadInputTokens: 3 });
  });
  test('OpenAI target → Anthropic client: translated', () => {
    const { body, usage } = clientResponse(anMsg(), OPENAI, oaResp) as { body: any; usage: any };
    expect(body).toMatchObject({ type: 'message', model: 'alias', stop_reason: 'max_tokens', content: [{ type: 'text', text: 'yo' }], usage: { input_tokens: 7, output_tokens: 2 } });
    expect(usage).toEqual({ inputTokens: 7, outputTokens: 2 });
  });
  test('embeddings usage: prompt tokens in, zero out; absent usage stays undefined', () => {
    expect(clientResponse(client('embeddings', { model: 'e', input: 'x' }), OPENAI, { data: [], usage: { prompt_tokens: 4 } }).usage).toEqual({ inputTokens: 4, outputTokens: 0 });
    expect(clientResponse(client('embeddings', { model: 'e', input: 'x' }), OPENAI, { data: [] }).usage).toBeUndefined();
  });
});

describe('streamBridge', () => {
  test('OpenAI passthrough: forwards chunks, hides the forced usage chunk, tracks completion and usage', () => {
    const b = streamBridge(oaChat({ stream: true }), OPENAI, 1);
    const out = [
      ...b.push(oaChunk({ role: 'assistant', content: '' }, null, { usage: null })),
      ...b.push(oaChunk({ content: 'yo' }, null, { usage: null })),
      ...b.push(oaChunk({}, 'stop', { usage: null })),
    ];
    expect(b.complete).toBe(true);
    const usageOnly = { data: JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [], usage: { prompt_tokens: 3, completion_tokens: 1 } }) };
    expect(b.push(usageOnly)).toEqual([]);
    expect(b.push({ data: '[DONE]' })).toEqual([]);
    expect(b.finish()).toEqual(['data: [DONE]\n\n']);
    expect(b.usage()).toEqual({ inputTokens: 3, outputTokens: 1 });
    const parsed = events(out.join('')).map((e) => JSON.parse(e.data));
    expect(parsed.map((c) => 'usage' in c)).toEqual([false, false, false]);
  });

  test('OpenAI passthrough: the client that asked for usage gets the usage chunk', () => {
    const b = streamBridge(oaChat({ stream: true, stream_options: { include_usage: true } }), OPENAI, 1);
    const usageOnly = { data: JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o', choices: [], usage: { prompt_tokens: 3, completion_tokens: 1 } }) };
    expect(b.push(usageOnly)).toHaveLength(1);
  });

  test('an upstream stream without a finish is not complete', () => {
    const b = streamBridge(oaChat({ stream: true }), OPENAI, 1);
    b.push(oaChunk({ content: 'partial' }));
    expect(b.complete).toBe(false);
    const c = streamBridge(oaChat({ stream: true }), ANTHROPIC, 1);
    c.push(anEvent('message_start', { message: { id: 'm', type: 'message', role: 'assistant', model: 'x', content: [], usage: { input_tokens: 4, output_tokens: 1 } } }));
    expect(c.complete).toBe(false);
    expect(c.usage()).toMatchObject({ inputTokens: 4 });
  });

  test('error events in each client format', () => {
    const oa = streamBridge(oaChat({ stream: true }), ANTHROPIC, 1).errorEvent('boom', 'upstream_stream_error');
    expect(oa).toBe(`data: ${JSON.stringify({ error: { message: 'boom', type: 'upstream_stream_error', param: null, code: null } })}\n\n`);
    const an = streamBridge(anMsg({ stream: true }), OPENAI, 1).errorEvent('boom', 'upstream_stream_error');
    expect(an).toBe(`event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'upstream_stream_error', message: 'boom' } })}\n\n`);
  });

  test('an upstream error chunk or event throws (the router ends the stream with its own error)', () => {
    const b = streamBridge(anMsg({ stream: true }), OPENAI, 1);
    expect(() => b.push({ data: JSON.stringify({ error: { message: 'x', type: 'server_error' } }) })).toThrow(expect.objectContaining({ name: 'UpstreamStreamError' }));
    const c = streamBridge(anMsg({ stream: true }), ANTHROPIC, 1);
    expect(() => c.push(anEvent('error', { error: { type: 'overloaded_error', message: 'x' } }))).toThrow(expect.objectContaining({ name: 'UpstreamStreamError' }));
    const d = streamBridge(oaChat({ stream: true }), OPENAI, 1);
    expect(() => d.push({ data: 'not json' })).toThrow(expect.objectContaining({ name: 'UpstreamProtocolError' }));
  });

  test('Anthropic passthrough forwards events byte-for-byte in SSE form', () => {
    const b = streamBridge(anMsg({ stream: true }), ANTHROPIC, 1);
    const ev = anEvent('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'hi' } });
    expect(b.push(ev)).toEqual([`event: content_block_delta\ndata: ${ev.data}\n\n`]);
    b.push(anEvent('message_stop'));
    expect(b.complete).toBe(true);
    expect(b.finish()).toEqual([]);
  });

  test('OpenAI target → Anthropic client: complete only after [DONE]; finish closes with message_stop', () => {
    const b = streamBridge(anMsg({ stream: true }), MISTRAL, 1);
    const out = [...b.push(oaChunk({ role: 'assistant', content: 'yo' })), ...b.push(oaChunk({}, 'stop', { usage: { prompt_tokens: 2, completion_tokens: 1 } }))];
    expect(b.complete).toBe(false);
    b.push({ data: '[DONE]' });
    expect(b.complete).toBe(true);
    out.push(...b.finish());
    const types = events(out.join('')).map((e) => e.event);
    expect(types).toEqual(['message_start', 'content_block_start', 'content_block_delta', 'content_block_stop', 'message_delta', 'message_stop']);
    expect(b.usage()).toEqual({ inputTokens: 2, outputTokens: 1 });
  });
});
