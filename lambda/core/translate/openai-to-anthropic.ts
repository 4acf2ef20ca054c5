/**
 * OpenAI Chat Completions → Anthropic Messages: the request a client sent in OpenAI format for an
 * Anthropic model, and an OpenAI model's response for a client speaking Anthropic format.
 */
import type {
  AnthropicContentBlockParam,
  AnthropicMessageParam,
  AnthropicRequest,
  AnthropicResponse,
  AnthropicResponseBlock,
  AnthropicTextBlock,
  AnthropicTool,
  AnthropicToolChoice,
  AnthropicToolResultBlock,
} from './anthropic-types';
import { TranslationError, UpstreamProtocolError } from './errors';
import {
  isRecord,
  optionalNumber,
  optionalPositiveInt,
  parseBase64DataUrl,
  requireRecord,
  requireString,
} from './guards';
import type { OpenAiChatRequest, OpenAiChatResponse } from './openai-types';
import { openAiFinishToAnthropicStop } from './stop-reasons';
import { toAnthropicUsage, usageFromOpenAi } from './usage';

export interface OpenAiToAnthropicOptions {
  /** Anthropic requires max_tokens; used when the client set neither max_tokens field. */
  defaultMaxTokens: number;
}

export function openAiRequestToAnthropic(
  req: OpenAiChatRequest,
  targetModel: string,
  opts: OpenAiToAnthropicOptions,
): AnthropicRequest {
  const body = requireRecord(req, 'body');
  if (!Array.isArray(body.messages)) throw new TranslationError('must be an array', 'messages');
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw new TranslationError('only n=1 is supported for this model', 'n');
  }

  const system: AnthropicTextBlock[] = [];
  const turns: Array<{ role: 'user' | 'assistant'; content: AnthropicContentBlockParam[] }> = [];
  const append = (role: 'user' | 'assistant', blocks: AnthropicContentBlockParam[]): void => {
    if (blocks.length === 0) return;
    const last = turns[turns.length - 1];
    // Anthropic wants alternating turns: OpenAI's consecutive same-role messages (e.g. several
    // tool results) become one turn.
    if (last && last.role === role) last.content.push(...blocks);
    else turns.push({ role, content: [...blocks] });
  };

  body.messages.forEach((raw: unknown, i: number) => {
    const p = `messages.${i}`;
    const m = requireRecord(raw, p);
    switch (m.role) {
      case 'system':
      case 'developer':
        system.push(...textBlocks(m.content, `${p}.content`));
        break;
      case 'user':
        append('user', userBlocks(m.content, `${p}.content`));
        break;
      case 'assistant':
        append('assistant', assistantBlocks(m, p));
        break;
      case 'tool':
        append('user', [toolResultBlock(m, p)]);
        break;
      case 'function':
        throw new TranslationError('the legacy function role is not supported; use tools', `${p}.role`);
      default:
        throw new TranslationError(`unknown role ${JSON.stringify(m.role)}`, `${p}.role`);
    }
  });
  if (turns.length === 0) {
    throw new TranslationError('at least one user or assistant message is required', 'messages');
  }

  const out: AnthropicRequest = {
    model: targetModel,
    messages: turns.map(toolResultsFirst),
    max_tokens:
      optionalPositiveInt(body.max_completion_tokens, 'max_completion_tokens') ??
      optionalPositiveInt(body.max_tokens, 'max_tokens') ??
      opts.defaultMaxTokens,
  };
  if (system.length === 1) out.system = system[0].text;
  else if (system.length > 1) out.system = system;

  const tools = mapTools(body.tools);
  if (tools) out.tools = tools;
  const toolChoice = mapToolChoice(body.tool_choice, body.parallel_tool_calls, tools !== undefined);
  if (toolChoice) out.tool_choice = toolChoice;

  const stop = mapStop(body.stop);
  if (stop) out.stop_sequences = stop;
  const temperature = optionalNumber(body.temperature, 'temperature');
  // OpenAI's range is 0..2, Anthropic's 0..1: clamp to the nearest value Anthropic accepts.
  if (temperature !== undefined) out.temperature = Math.min(1, Math.max(0, temperature));
  const topP = optionalNumber(body.top_p, 'top_p');
  if (topP !== undefined) out.top_p = topP;
  if (body.stream === true) out.stream = true;
  const schema = jsonSchemaFormat(body.response_format);
  if (schema) out.output_config = { format: { type: 'json_schema', schema } };
  // `user` is not forwarded: clients often put e-mail addresses there, and it has no effect.
  return out;
}

/** Anthropic rejects tool_result blocks that do not open their user turn. */
function toolResultsFirst(turn: { role: 'user' | 'assistant'; content: AnthropicContentBlockParam[] }): AnthropicMessageParam {
  if (turn.role !== 'user') return turn;
  const results = turn.content.filter((b) => b.type === 'tool_result');
  if (results.length === 0) return turn;
  return { role: 'user', content: [...results, ...turn.content.filter((b) => b.type !== 'tool_result')] };
}

/** Text of a content field that may only hold text (system, tool). Empty text is dropped. */
function textBlocks(content: unknown, param: string): AnthropicTextBlock[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw new TranslationError('must be a string or an array of content parts', param);
  return content.flatMap((raw: unknown, j: number) => {
    const part = requireRecord(raw, `${param}.${j}`);
    if (part.type !== 'text') throw new TranslationError('only text parts are allowed here', `${param}.${j}.type`);
    const text = requireString(part.text, `${param}.${j}.text`);
    return text === '' ? [] : [{ type: 'text' as const, text }];
  });
}

function userBlocks(content: unknown, param: string): AnthropicContentBlockParam[] {
  if (typeof content === 'string') return content === '' ? [] : [{ type: 'text', text: content }];
  if (!Array.isArray(content)) throw new TranslationError('must be a string or an array of content parts', param);
  return content.flatMap((raw: unknown, j: number): AnthropicContentBlockParam[] => {
    const p = `${param}.${j}`;
    const part = requireRecord(raw, p);
    switch (part.type) {
      case 'text': {
        const text = requireString(part.text, `${p}.text`);
        return text === '' ? [] : [{ type: 'text', text }];
      }
      case 'image_url': {
        const url = requireString(requireRecord(part.image_url, `${p}.image_url`).url, `${p}.image_url.url`);
        const inline = parseBase64DataUrl(url);
        if (inline) return [{ type: 'image', source: { type: 'base64', media_type: inline.mediaType, data: inline.data } }];
        if (/^https?:\/\//i.test(url)) return [{ type: 'image', source: { type: 'url', url } }];
        throw new TranslationError('must be an http(s) URL or a base64 data URL', `${p}.image_url.url`);
      }
      case 'file': {
        const file = requireRecord(part.file, `${p}.file`);
        const inline = typeof file.file_data === 'string' ? parseBase64DataUrl(file.file_data) : undefined;
        if (inline?.mediaType === 'application/pdf') {
          const block: AnthropicContentBlockParam = {
            type: 'document',
            source: { type: 'base64', media_type: 'application/pdf', data: inline.data },
          };
          if (typeof file.filename === 'string') block.title = file.filename;
          return [block];
        }
        throw new TranslationError('only inline PDF files (file_data as a data URL) are supported for this model', `${p}.file`);
      }
      case 'input_audio':
        throw new TranslationError('audio input is not supported for this model', `${p}.type`);
      default:
        throw new TranslationError(`unsupported content part type ${JSON.stringify(part.type)}`, `${p}.type`);
    }
  });
}

function assistantBlocks(m: Record<string, unknown>, p: string): AnthropicContentBlockParam[] {
  const blocks: AnthropicContentBlockParam[] = [];
  const content = m.content;
  if (typeof content === 'string') {
    if (content !== '') blocks.push({ type: 'text', text: content });
  } else if (Array.isArray(content)) {
    content.forEach((raw: unknown, j: number) => {
      const part = requireRecord(raw, `${p}.content.${j}`);
      const text =
        part.type === 'text'
          ? requireString(part.text, `${p}.content.${j}.text`)
          : part.type === 'refusal'
            ? requireString(part.refusal, `${p}.content.${j}.refusal`)
            : undefined;
      if (text === undefined) {
        throw new TranslationError(`unsupported content part type ${JSON.stringify(part.type)}`, `${p}.content.${j}.type`);
      }
      if (text !== '') blocks.push({ type: 'text', text });
    });
  } else if (content !== undefined && content !== null) {
    throw new TranslationError('must be a string, an array of content parts or null', `${p}.content`);
  }
  if (typeof m.refusal === 'string' && m.refusal !== '' && blocks.length === 0) {
    blocks.push({ type: 'text', text: m.refusal });
  }
  if (m.function_call !== undefined && m.function_call !== null) {
    throw new TranslationError('legacy function_call is not supported; use tool_calls', `${p}.function_call`);
  }
  if (m.tool_calls !== undefined && m.tool_calls !== null) {
    if (!Array.isArray(m.tool_calls)) throw new TranslationError('must be an array', `${p}.tool_calls`);
    m.tool_calls.forEach((raw: unknown, j: number) => {
      const tp = `${p}.tool_calls.${j}`;
      const call = requireRecord(raw, tp);
      const fn = requireRecord(call.function, `${tp}.function`);
      blocks.push({
        type: 'tool_use',
        id: anthropicToolId(requireString(call.id, `${tp}.id`), `${tp}.id`),
        name: requireString(fn.name, `${tp}.function.name`),
        input: parseArguments(fn.arguments, `${tp}.function.arguments`),
      });
    });
  }
  return blocks;
}

function toolResultBlock(m: Record<string, unknown>, p: string): AnthropicToolResultBlock {
  const id = anthropicToolId(requireString(m.tool_call_id, `${p}.tool_call_id`), `${p}.tool_call_id`);
  const text = textBlocks(m.content, `${p}.content`).map((b) => b.text).join('');
  return { type: 'tool_result', tool_use_id: id, content: text };
}

/**
 * Anthropic only accepts ids matching [a-zA-Z0-9_-]+. Ids minted by other providers earlier in the
 * conversation may not, so map them deterministically: tool_use and tool_result stay paired.
 */
function anthropicToolId(id: string, param: string): string {
  if (id === '') throw new TranslationError('must not be empty', param);
  return id.replace(/[^a-zA-Z0-9_-]/g, '_');
}

function parseArguments(args: unknown, param: string): Record<string, unknown> {
  if (args === undefined || args === null) return {};
  const text = requireString(args, param);
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new TranslationError('is not valid JSON', param);
  }
  if (!isRecord(parsed)) throw new TranslationError('must encode a JSON object', param);
  return parsed;
}

function mapTools(tools: unknown): AnthropicTool[] | undefined {
  if (tools === undefined || tools === null) return undefined;
  if (!Array.isArray(tools)) throw new TranslationError('must be an array', 'tools');
  if (tools.length === 0) return undefined;
  return tools.map((raw: unknown, i: number): AnthropicTool => {
    const t = requireRecord(raw, `tools.${i}`);
    if (t.type !== 'function') throw new TranslationError('only function tools are supported', `tools.${i}.type`);
    const fn = requireRecord(t.function, `tools.${i}.function`);
    const tool: AnthropicTool = {
      name: requireString(fn.name, `tools.${i}.function.name`),
      input_schema: inputSchema(fn.parameters, `tools.${i}.function.parameters`),
    };
    if (typeof fn.description === 'string') tool.description = fn.description;
    return tool;
  });
}

/** OpenAI allows a tool without parameters; Anthropic needs an object schema. */
function inputSchema(parameters: unknown, param: string): AnthropicTool['input_schema'] {
  if (parameters === undefined || parameters === null) return { type: 'object', properties: {} };
  const schema = requireRecord(parameters, param);
  if (schema.type !== undefined && schema.type !== 'object') {
    throw new TranslationError('must be a JSON Schema of type object', param);
  }
  return { ...schema, type: 'object' };
}

function mapToolChoice(choice: unknown, parallel: unknown, hasTools: boolean): AnthropicToolChoice | undefined {
  const noParallel = parallel === false;
  if (choice === undefined || choice === null) {
    return hasTools && noParallel ? { type: 'auto', disable_parallel_tool_use: true } : undefined;
  }
  if (choice === 'none') return hasTools ? { type: 'none' } : undefined;
  if (choice === 'auto') {
    if (!hasTools) return undefined;
    return noParallel ? { type: 'auto', disable_parallel_tool_use: true } : { type: 'auto' };
  }
  if (!hasTools) throw new TranslationError('requires tools to be specified', 'tool_choice');
  const extra = noParallel ? { disable_parallel_tool_use: true } : {};
  if (choice === 'required') return { type: 'any', ...extra };
  if (isRecord(choice) && choice.type === 'function' && isRecord(choice.function)) {
    return { type: 'tool', name: requireString(choice.function.name, 'tool_choice.function.name'), ...extra };
  }
  throw new TranslationError('must be "none", "auto", "required" or a named function', 'tool_choice');
}

/**
 * json_schema maps to Anthropic structured outputs. json_object is a soft hint the prompt must
 * repeat anyway, so dropping it degrades gracefully.
 */
function jsonSchemaFormat(format: unknown): Record<string, unknown> | undefined {
  if (format === undefined || format === null) return undefined;
  const f = requireRecord(format, 'response_format');
  if (f.type === 'text' || f.type === 'json_object') return undefined;
  if (f.type !== 'json_schema') throw new TranslationError('must be of type text, json_object or json_schema', 'response_format.type');
  return requireRecord(requireRecord(f.json_schema, 'response_format.json_schema').schema, 'response_format.json_schema.schema');
}

function mapStop(stop: unknown): string[] | undefined {
  if (stop === undefined || stop === null) return undefined;
  if (typeof stop === 'string') return stop === '' ? undefined : [stop];
  if (!Array.isArray(stop)) throw new TranslationError('must be a string or an array of strings', 'stop');
  const list = stop.map((s: unknown, i: number) => requireString(s, `stop.${i}`)).filter((s) => s !== '');
  return list.length > 0 ? list : undefined;
}

/** An OpenAI model's completion, shown to a client that speaks Anthropic format. */
export function openAiResponseToAnthropic(resp: OpenAiChatResponse, model: string): AnthropicResponse {
  if (!isRecord(resp) || !Array.isArray(resp.choices) || !isRecord(resp.choices[0])) {
    throw new UpstreamProtocolError('upstream response has no choices');
  }
  const choice = resp.choices[0];
  const message = isRecord(choice.message) ? choice.message : undefined;
  if (!message) throw new UpstreamProtocolError('upstream response choice has no message');

  const content: AnthropicResponseBlock[] = [];
  const text = typeof message.content === 'string' ? message.content : '';
  if (text !== '') content.push({ type: 'text', text });
  else if (typeof message.refusal === 'string' && message.refusal !== '') {
    content.push({ type: 'text', text: message.refusal });
  }
  for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
    if (!isRecord(call) || !isRecord(call.function) || typeof call.function.name !== 'string') {
      throw new UpstreamProtocolError('upstream tool call is malformed');
    }
    let input: Record<string, unknown>;
    try {
      input = parseArguments(call.function.arguments, 'arguments');
    } catch {
      // The model produced invalid arguments: the provider's fault, not the client's.
      throw new UpstreamProtocolError(`upstream tool call ${call.function.name} has arguments that are not a JSON object`);
    }
    content.push({ type: 'tool_use', id: String(call.id ?? ''), name: call.function.name, input });
  }

  return {
    id: typeof resp.id === 'string' ? resp.id : '',
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: openAiFinishToAnthropicStop(choice.finish_reason),
    stop_sequence: null,
    usage: toAnthropicUsage(usageFromOpenAi(resp.usage)),
  };
}
