/**
 * Anthropic Messages → OpenAI Chat Completions: the request a client sent in Anthropic format for
 * an OpenAI-compatible model (OpenAI or Mistral), and an Anthropic model's response for a client
 * speaking OpenAI format.
 */
import { createHash } from 'node:crypto';
import type { AnthropicRequest, AnthropicResponse } from './anthropic-types';
import { TranslationError, UpstreamProtocolError } from './errors';
import { isRecord, optionalNumber, optionalPositiveInt, requireRecord, requireString } from './guards';
import type {
  OpenAiChatRequest,
  OpenAiChatResponse,
  OpenAiFunctionTool,
  OpenAiMessage,
  OpenAiTextPart,
  OpenAiToolCall,
  OpenAiToolChoice,
  OpenAiUserContentPart,
} from './openai-types';
import { anthropicStopToOpenAiFinish } from './stop-reasons';
import { toOpenAiUsage, usageFromAnthropic } from './usage';

export interface AnthropicToOpenAiOptions {
  /**
   * Which OpenAI-compatible API receives the request. `mistral` sends `max_tokens` (OpenAI's
   * reasoning models reject it and want `max_completion_tokens`), omits `stream_options` (Mistral
   * always reports usage in its last chunk) and rewrites tool-call ids to the 9 alphanumerics
   * Mistral insists on. Default `openai`.
   */
  dialect?: 'openai' | 'mistral';
}

export function anthropicRequestToOpenAi(
  req: AnthropicRequest,
  targetModel: string,
  opts: AnthropicToOpenAiOptions = {},
): OpenAiChatRequest {
  const mistral = opts.dialect === 'mistral';
  const toolId = mistral ? mistralToolId : (id: string) => id;
  const body = requireRecord(req, 'body');
  if (!Array.isArray(body.messages)) throw new TranslationError('must be an array', 'messages');
  const maxTokens = optionalPositiveInt(body.max_tokens, 'max_tokens');
  if (maxTokens === undefined) throw new TranslationError('is required', 'max_tokens');

  const messages: OpenAiMessage[] = [];
  const system = systemText(body.system, 'system');
  if (system !== '') messages.push({ role: 'system', content: system });

  body.messages.forEach((raw: unknown, i: number) => {
    const p = `messages.${i}`;
    const m = requireRecord(raw, p);
    if (m.role === 'user') messages.push(...userMessages(m.content, `${p}.content`, toolId));
    else if (m.role === 'assistant') {
      const msg = assistantMessage(m.content, `${p}.content`, toolId);
      if (msg) messages.push(msg);
    } else if (m.role === 'system') {
      const text = systemText(m.content, `${p}.content`);
      if (text !== '') messages.push({ role: 'system', content: text });
    } else throw new TranslationError('must be "user", "assistant" or "system"', `${p}.role`);
  });
  if (messages.every((m) => m.role === 'system')) {
    throw new TranslationError('at least one message is required', 'messages');
  }

  const out: OpenAiChatRequest = { model: targetModel, messages };
  if (mistral) out.max_tokens = maxTokens;
  else out.max_completion_tokens = maxTokens;

  const tools = mapTools(body.tools);
  if (tools) {
    out.tools = tools;
    const choice = body.tool_choice;
    if (choice !== undefined && choice !== null) {
      const c = requireRecord(choice, 'tool_choice');
      out.tool_choice = mapToolChoice(c);
      if (c.disable_parallel_tool_use === true) out.parallel_tool_calls = false;
    }
  }

  if (body.stop_sequences !== undefined && body.stop_sequences !== null) {
    if (!Array.isArray(body.stop_sequences)) throw new TranslationError('must be an array', 'stop_sequences');
    const stop = body.stop_sequences.map((s: unknown, i: number) => requireString(s, `stop_sequences.${i}`));
    if (stop.length > 0) out.stop = stop;
  }
  const temperature = optionalNumber(body.temperature, 'temperature');
  if (temperature !== undefined) out.temperature = temperature;
  const topP = optionalNumber(body.top_p, 'top_p');
  if (topP !== undefined) out.top_p = topP;
  if (isRecord(body.output_config) && isRecord(body.output_config.format)) {
    const format = body.output_config.format;
    if (format.type !== 'json_schema') throw new TranslationError('must be json_schema', 'output_config.format.type');
    // Not `strict`: OpenAI's strict mode demands schema rules Anthropic schemas need not follow.
    out.response_format = {
      type: 'json_schema',
      json_schema: { name: 'response', schema: requireRecord(format.schema, 'output_config.format.schema') },
    };
  }
  if (body.stream === true) {
    out.stream = true;
    // Usage is needed for the Anthropic-side message_delta and for settling cost.
    if (!mistral) out.stream_options = { include_usage: true };
  }
  // top_k, metadata, thinking and output_config.effort have no Chat Completions equivalent.
  return out;
}

function systemText(system: unknown, param: string): string {
  if (system === undefined || system === null) return '';
  if (typeof system === 'string') return system;
  if (!Array.isArray(system)) throw new TranslationError('must be a string or an array of text blocks', param);
  return system
    .map((raw: unknown, i: number) => {
      const b = requireRecord(raw, `${param}.${i}`);
      if (b.type !== 'text') throw new TranslationError('only text blocks are allowed', `${param}.${i}.type`);
      return requireString(b.text, `${param}.${i}.text`);
    })
    .filter((t) => t !== '')
    .join('\n\n');
}

/** A user turn becomes tool messages (answering the previous assistant turn) then a user message. */
function userMessages(content: unknown, param: string, toolId: (id: string) => string): OpenAiMessage[] {
  if (typeof content === 'string') return [{ role: 'user', content }];
  if (!Array.isArray(content)) throw new TranslationError('must be a string or an array of content blocks', param);
  const toolMessages: OpenAiMessage[] = [];
  const parts: OpenAiUserContentPart[] = [];
  content.forEach((raw: unknown, j: number) => {
    const p = `${param}.${j}`;
    const block = requireRecord(raw, p);
    switch (block.type) {
      case 'text':
        parts.push({ type: 'text', text: requireString(block.text, `${p}.text`) });
        break;
      case 'image':
        parts.push({ type: 'image_url', image_url: { url: imageUrl(block.source, `${p}.source`) } });
        break;
      case 'tool_result':
        toolMessages.push({
          role: 'tool',
          tool_call_id: toolId(requireString(block.tool_use_id, `${p}.tool_use_id`)),
          content: toolResultText(block, p),
        });
        break;
      default:
        throw new TranslationError(`unsupported content block type ${JSON.stringify(block.type)} for this model`, `${p}.type`);
    }
  });
  if (parts.length === 0) return toolMessages;
  const allText = parts.every((x) => x.type === 'text');
  const user: OpenAiMessage = {
    role: 'user',
    content: allText ? (parts as OpenAiTextPart[]).map((x) => x.text).join('\n') : parts,
  };
  return [...toolMessages, user];
}

function imageUrl(source: unknown, param: string): string {
  const s = requireRecord(source, param);
  if (s.type === 'base64') {
    return `data:${requireString(s.media_type, `${param}.media_type`)};base64,${requireString(s.data, `${param}.data`)}`;
  }
  if (s.type === 'url') return requireString(s.url, `${param}.url`);
  throw new TranslationError('must be a base64 or url image source', `${param}.type`);
}

function toolResultText(block: Record<string, unknown>, p: string): string {
  let text: string;
  const content = block.content;
  if (content === undefined || content === null) text = '';
  else if (typeof content === 'string') text = content;
  else if (Array.isArray(content)) {
    text = content
      .map((raw: unknown, k: number) => {
        const b = requireRecord(raw, `${p}.content.${k}`);
        if (b.type !== 'text') {
          throw new TranslationError('only text is supported in tool results for this model', `${p}.content.${k}.type`);
        }
        return requireString(b.text, `${p}.content.${k}.text`);
      })
      .join('\n');
  } else throw new TranslationError('must be a string or an array of blocks', `${p}.content`);
  // Chat Completions has no error flag on tool results; say it in the text so the model knows.
  return block.is_error === true ? `Error: ${text}` : text;
}

function assistantMessage(content: unknown, param: string, toolId: (id: string) => string): OpenAiMessage | undefined {
  if (typeof content === 'string') return { role: 'assistant', content };
  if (!Array.isArray(content)) throw new TranslationError('must be a string or an array of content blocks', param);
  let text = '';
  const toolCalls: OpenAiToolCall[] = [];
  content.forEach((raw: unknown, j: number) => {
    const p = `${param}.${j}`;
    const block = requireRecord(raw, p);
    switch (block.type) {
      case 'text':
        text += requireString(block.text, `${p}.text`);
        break;
      case 'tool_use':
        toolCalls.push({
          id: toolId(requireString(block.id, `${p}.id`)),
          type: 'function',
          function: {
            name: requireString(block.name, `${p}.name`),
            arguments: JSON.stringify(requireRecord(block.input ?? {}, `${p}.input`)),
          },
        });
        break;
      case 'thinking':
      case 'redacted_thinking':
        // Reasoning traces are Anthropic-specific and signed; other models cannot use them.
        break;
      default:
        throw new TranslationError(`unsupported content block type ${JSON.stringify(block.type)} for this model`, `${p}.type`);
    }
  });
  if (text === '' && toolCalls.length === 0) return undefined;
  const msg: OpenAiMessage = { role: 'assistant', content: text === '' ? null : text };
  if (toolCalls.length > 0) msg.tool_calls = toolCalls;
  return msg;
}

function mapTools(tools: unknown): OpenAiFunctionTool[] | undefined {
  if (tools === undefined || tools === null) return undefined;
  if (!Array.isArray(tools)) throw new TranslationError('must be an array', 'tools');
  if (tools.length === 0) return undefined;
  return tools.map((raw: unknown, i: number): OpenAiFunctionTool => {
    const t = requireRecord(raw, `tools.${i}`);
    if (t.type !== undefined && t.type !== null && t.type !== 'custom') {
      throw new TranslationError(`server tool ${JSON.stringify(t.type)} is not supported for this model`, `tools.${i}.type`);
    }
    const fn: OpenAiFunctionTool['function'] = {
      name: requireString(t.name, `tools.${i}.name`),
      parameters: requireRecord(t.input_schema, `tools.${i}.input_schema`),
    };
    if (typeof t.description === 'string') fn.description = t.description;
    return { type: 'function', function: fn };
  });
}

function mapToolChoice(c: Record<string, unknown>): OpenAiToolChoice {
  switch (c.type) {
    case 'auto':
      return 'auto';
    case 'any':
      return 'required';
    case 'none':
      return 'none';
    case 'tool':
      return { type: 'function', function: { name: requireString(c.name, 'tool_choice.name') } };
    default:
      throw new TranslationError('must be of type auto, any, tool or none', 'tool_choice.type');
  }
}

/** Mistral accepts only ids of 9 characters [a-zA-Z0-9]; hash others deterministically. */
export function mistralToolId(id: string): string {
  if (/^[a-zA-Z0-9]{9}$/.test(id)) return id;
  const alphabet = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  const digest = createHash('sha256').update(id).digest();
  let out = '';
  for (let i = 0; i < 9; i++) out += alphabet[digest[i] % alphabet.length];
  return out;
}

/** An Anthropic model's message, shown to a client that speaks OpenAI format. */
export function anthropicResponseToOpenAi(
  resp: AnthropicResponse,
  model: string,
  opts: { created?: number } = {},
): OpenAiChatResponse {
  if (!isRecord(resp) || !Array.isArray(resp.content)) {
    throw new UpstreamProtocolError('upstream message has no content array');
  }
  let text = '';
  const toolCalls: OpenAiToolCall[] = [];
  for (const block of resp.content) {
    if (!isRecord(block)) throw new UpstreamProtocolError('upstream content block is malformed');
    if (block.type === 'text' && typeof block.text === 'string') text += block.text;
    else if (block.type === 'tool_use') {
      toolCalls.push({
        id: String(block.id),
        type: 'function',
        function: { name: String(block.name), arguments: JSON.stringify(block.input ?? {}) },
      });
    }
    // thinking and redacted_thinking blocks have no place in a chat completion.
  }
  const message: OpenAiChatResponse['choices'][number]['message'] = {
    role: 'assistant',
    content: text === '' && toolCalls.length > 0 ? null : text,
    refusal: null,
  };
  if (toolCalls.length > 0) message.tool_calls = toolCalls;
  return {
    id: typeof resp.id === 'string' ? resp.id : '',
    object: 'chat.completion',
    created: opts.created ?? Math.floor(Date.now() / 1000),
    model,
    choices: [{ index: 0, message, finish_reason: anthropicStopToOpenAiFinish(resp.stop_reason), logprobs: null }],
    usage: toOpenAiUsage(usageFromAnthropic(resp.usage)),
  };
}
