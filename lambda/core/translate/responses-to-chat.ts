/**
 * An OpenAI Responses API request as a Chat Completions request, so that every target the chat
 * route can reach (Anthropic, Mistral, and any kind translated from chat) also serves
 * `POST /v1/responses`. Only what maps without loss is accepted: text and image input, inline
 * files, function tools and their calls and outputs. Whatever needs OpenAI's server state or its
 * built-in tools (previous_response_id, conversation, background, stored prompts, item references,
 * web_search, file_search...) is refused with a TranslationError naming the field.
 */
import { TranslationError } from './errors';
import { isRecord, optionalNumber, optionalPositiveInt, requireRecord, requireString } from './guards';
import type { OpenAiChatRequest, OpenAiFunctionTool, OpenAiMessage, OpenAiToolCall, OpenAiToolChoice, OpenAiUserContentPart } from './openai-types';

/** Request fields that have a chat equivalent or do not change the answer. */
const ACCEPTED = new Set([
  'model',
  'input',
  'instructions',
  'tools',
  'tool_choice',
  'parallel_tool_calls',
  'max_output_tokens',
  'temperature',
  'top_p',
  'stream',
  'stream_options',
  'text',
  'metadata',
  'user',
  'safety_identifier',
  'prompt_cache_key',
  // Asks OpenAI to keep the response; a translated target keeps nothing, which `store: false` states.
  'store',
  'truncation',
  'service_tier',
  'include',
  'reasoning',
]);

/** Why a field cannot be served by a translated target, for the error message. */
const REFUSED: Record<string, string> = {
  previous_response_id: 'needs the response state that only OpenAI keeps; send the whole conversation in input instead',
  conversation: 'needs conversation state that only OpenAI keeps; send the whole conversation in input instead',
  background: 'background mode needs a stored response to poll, which this gateway does not offer',
  prompt: 'stored prompt templates live at OpenAI; send the prompt text instead',
  top_logprobs: 'log probabilities cannot be produced by this model',
  context_management: 'server-side context compaction is an OpenAI feature',
  max_tool_calls: 'is an OpenAI built-in tool setting',
};

export interface ResponsesToChatOptions {
  /** The target kind, named in error messages (e.g. `anthropic`). */
  readonly targetKind: string;
}

/**
 * The chat request for a Responses request. Throws TranslationError (HTTP 400) for anything that
 * cannot be expressed; the caller has checked `model` and `input` are present.
 */
export function responsesRequestToChat(body: Record<string, unknown>, opts: ResponsesToChatOptions): OpenAiChatRequest {
  for (const key of Object.keys(body)) {
    if (key === 'background' && body.background !== true) continue;
    if (Object.prototype.hasOwnProperty.call(REFUSED, key) && body[key] !== null && body[key] !== undefined) {
      throw new TranslationError(`${REFUSED[key]} (not supported when the model is served by ${opts.targetKind})`, key);
    }
    if (!ACCEPTED.has(key) && !Object.prototype.hasOwnProperty.call(REFUSED, key)) {
      throw new TranslationError(`is not supported when the model is served by ${opts.targetKind}`, key);
    }
  }
  if (body.truncation !== undefined && body.truncation !== null && body.truncation !== 'disabled') {
    throw new TranslationError(`only "disabled" is supported when the model is served by ${opts.targetKind}`, 'truncation');
  }
  const messages: OpenAiMessage[] = [];
  if (body.instructions !== undefined && body.instructions !== null) {
    messages.push({ role: 'system', content: requireString(body.instructions, 'instructions') });
  }
  messages.push(...inputMessages(body.input));

  const chat: OpenAiChatRequest = { model: requireString(body.model, 'model'), messages };
  const tools = functionTools(body.tools);
  if (tools) chat.tools = tools;
  if (body.tool_choice !== undefined && body.tool_choice !== null) chat.tool_choice = toolChoice(body.tool_choice);
  if (typeof body.parallel_tool_calls === 'boolean') chat.parallel_tool_calls = body.parallel_tool_calls;
  const maxTokens = optionalPositiveInt(body.max_output_tokens, 'max_output_tokens');
  if (maxTokens !== undefined) chat.max_completion_tokens = maxTokens;
  const temperature = optionalNumber(body.temperature, 'temperature');
  if (temperature !== undefined) chat.temperature = temperature;
  const topP = optionalNumber(body.top_p, 'top_p');
  if (topP !== undefined) chat.top_p = topP;
  const format = responseFormat(body.text);
  if (format) chat.response_format = format;
  if (typeof body.user === 'string') chat.user = body.user;
  // The chat exchange asks each target for streamed usage in its own dialect (Mistral rejects stream_options).
  if (body.stream === true) chat.stream = true;
  return chat;
}

/** `input`: a string (one user turn) or a list of items, mapped to chat messages in order. */
function inputMessages(input: unknown): OpenAiMessage[] {
  if (typeof input === 'string') return [{ role: 'user', content: input }];
  if (!Array.isArray(input) || input.length === 0) throw new TranslationError('must be a string or a non-empty array of items', 'input');
  const out: OpenAiMessage[] = [];
  input.forEach((raw, i) => {
    const p = `input.${i}`;
    const item = requireRecord(raw, p);
    const type = item.type ?? 'message';
    if (type === 'message') {
      out.push(messageItem(item, p));
    } else if (type === 'function_call') {
      const call: OpenAiToolCall = {
        id: requireString(item.call_id, `${p}.call_id`),
        type: 'function',
        function: { name: requireString(item.name, `${p}.name`), arguments: requireString(item.arguments, `${p}.arguments`) },
      };
      // Consecutive calls (parallel tool calls) belong to one assistant turn.
      const last = out[out.length - 1];
      if (last?.role === 'assistant') last.tool_calls = [...(last.tool_calls ?? []), call];
      else out.push({ role: 'assistant', content: null, tool_calls: [call] });
    } else if (type === 'function_call_output') {
      out.push({ role: 'tool', tool_call_id: requireString(item.call_id, `${p}.call_id`), content: toolOutput(item.output, `${p}.output`) });
    } else if (type === 'reasoning') {
      // Opaque reasoning from an OpenAI model: another model cannot read it, and the turn's answer follows it.
      return;
    } else if (type === 'item_reference') {
      throw new TranslationError('refers to an item stored at OpenAI; send the item itself', `${p}.type`);
    } else {
      throw new TranslationError(`input items of type ${JSON.stringify(type)} (built-in tools) cannot be translated; only messages, function_call and function_call_output can`, `${p}.type`);
    }
  });
  if (!out.some((m) => m.role === 'user' || m.role === 'assistant' || m.role === 'tool')) {
    throw new TranslationError('needs at least one user or assistant message', 'input');
  }
  return out;
}

function messageItem(item: Record<string, unknown>, p: string): OpenAiMessage {
  const role = item.role;
  const content = item.content;
  if (role === 'system' || role === 'developer') return { role: 'system', content: textOnly(content, `${p}.content`) };
  if (role === 'assistant') {
    const text = textOnly(content, `${p}.content`);
    return { role: 'assistant', content: text };
  }
  if (role === 'user') {
    if (typeof content === 'string') return { role: 'user', content };
    if (!Array.isArray(content)) throw new TranslationError('must be a string or an array of content parts', `${p}.content`);
    return { role: 'user', content: content.map((part, j) => userPart(part, `${p}.content.${j}`)) };
  }
  throw new TranslationError(`unknown role ${JSON.stringify(role)}`, `${p}.role`);
}

/** System and assistant turns carry text only (input_text, output_text, refusal). */
function textOnly(content: unknown, param: string): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) throw new TranslationError('must be a string or an array of content parts', param);
  return content
    .map((raw, j) => {
      const part = requireRecord(raw, `${param}.${j}`);
      if (part.type === 'input_text' || part.type === 'output_text') return requireString(part.text, `${param}.${j}.text`);
      if (part.type === 'refusal') return requireString(part.refusal, `${param}.${j}.refusal`);
      throw new TranslationError('only text parts are allowed here', `${param}.${j}.type`);
    })
    .join('');
}

function userPart(raw: unknown, p: string): OpenAiUserContentPart {
  const part = requireRecord(raw, p);
  switch (part.type) {
    case 'input_text':
      return { type: 'text', text: requireString(part.text, `${p}.text`) };
    case 'input_image': {
      if (typeof part.image_url !== 'string') throw new TranslationError('only image_url (an http(s) or data URL) is supported here; file_id needs OpenAI file storage', `${p}.image_url`);
      const detail = part.detail === 'low' || part.detail === 'high' || part.detail === 'auto' ? part.detail : undefined;
      return { type: 'image_url', image_url: { url: part.image_url, ...(detail ? { detail } : {}) } };
    }
    case 'input_file': {
      if (typeof part.file_data !== 'string') throw new TranslationError('only inline files (file_data) can be translated; file_id and file_url need OpenAI file storage', `${p}`);
      return { type: 'file', file: { file_data: part.file_data, ...(typeof part.filename === 'string' ? { filename: part.filename } : {}) } };
    }
    default:
      throw new TranslationError(`unsupported content part type ${JSON.stringify(part.type)}`, `${p}.type`);
  }
}

/** A function_call_output's output: a string, or text parts. */
function toolOutput(output: unknown, param: string): string {
  if (typeof output === 'string') return output;
  if (!Array.isArray(output)) throw new TranslationError('must be a string or an array of text parts', param);
  return textOnly(output, param);
}

function functionTools(tools: unknown): OpenAiFunctionTool[] | undefined {
  if (tools === undefined || tools === null) return undefined;
  if (!Array.isArray(tools)) throw new TranslationError('must be an array', 'tools');
  if (tools.length === 0) return undefined;
  return tools.map((raw, i) => {
    const t = requireRecord(raw, `tools.${i}`);
    if (t.type !== 'function') {
      throw new TranslationError(`built-in tool ${JSON.stringify(t.type)} is an OpenAI service and cannot be translated; only function tools can`, `tools.${i}.type`);
    }
    const fn: OpenAiFunctionTool['function'] = { name: requireString(t.name, `tools.${i}.name`) };
    if (typeof t.description === 'string') fn.description = t.description;
    if (t.parameters !== undefined && t.parameters !== null) fn.parameters = requireRecord(t.parameters, `tools.${i}.parameters`);
    if (typeof t.strict === 'boolean') fn.strict = t.strict;
    return { type: 'function', function: fn };
  });
}

function toolChoice(choice: unknown): OpenAiToolChoice {
  if (choice === 'none' || choice === 'auto' || choice === 'required') return choice;
  if (isRecord(choice) && choice.type === 'function') return { type: 'function', function: { name: requireString(choice.name, 'tool_choice.name') } };
  throw new TranslationError('must be "none", "auto", "required" or a named function', 'tool_choice');
}

function responseFormat(text: unknown): OpenAiChatRequest['response_format'] | undefined {
  if (text === undefined || text === null) return undefined;
  const format = requireRecord(text, 'text').format;
  if (format === undefined || format === null) return undefined;
  const f = requireRecord(format, 'text.format');
  if (f.type === 'text') return undefined;
  if (f.type === 'json_object') return { type: 'json_object' };
  if (f.type === 'json_schema') {
    return {
      type: 'json_schema',
      json_schema: {
        name: requireString(f.name, 'text.format.name'),
        ...(typeof f.description === 'string' ? { description: f.description } : {}),
        schema: requireRecord(f.schema, 'text.format.schema'),
        ...(typeof f.strict === 'boolean' ? { strict: f.strict } : {}),
      },
    };
  }
  throw new TranslationError('must be of type text, json_object or json_schema', 'text.format.type');
}
