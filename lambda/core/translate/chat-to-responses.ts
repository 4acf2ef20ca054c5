/**
 * Chat Completions answers as OpenAI Responses API objects (buffered), and the usage helpers of
 * the Responses format. Shapes are the official `openai` SDK's types (type-only import: nothing
 * of the SDK reaches the Lambda bundle).
 */
import { randomBytes } from 'node:crypto';
import type {
  Response as OpenAiResponse,
  ResponseFunctionToolCall,
  ResponseOutputItem,
  ResponseOutputMessage,
  ResponseUsage,
  Tool,
} from 'openai/resources/responses/responses';
import { UpstreamProtocolError } from './errors';
import { isRecord } from './guards';
import type { OpenAiChatResponse, OpenAiFinishReason } from './openai-types';
import { usageFromOpenAi, type TokenUsage } from './usage';

/** The wire object: the SDK adds `output_text` on the client side. */
export type ResponsesObject = Omit<OpenAiResponse, 'output_text'>;

/** What the client asked, echoed on the Response object as OpenAI does. */
export interface ResponsesEcho {
  readonly id: string;
  readonly model: string;
  readonly createdAt: number;
  readonly request: Record<string, unknown>;
}

export function newResponseId(): string {
  return `resp_${randomBytes(24).toString('hex')}`;
}
export function newItemId(prefix: 'msg' | 'fc'): string {
  return `${prefix}_${randomBytes(24).toString('hex')}`;
}

/** Responses usage from the neutral shape. */
export function toResponsesUsage(t: TokenUsage): ResponseUsage {
  return {
    input_tokens: t.inputTokens,
    input_tokens_details: { cached_tokens: t.cacheReadInputTokens ?? 0, cache_write_tokens: t.cacheCreationInputTokens ?? 0 },
    output_tokens: t.outputTokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: t.inputTokens + t.outputTokens,
  };
}

/** The neutral shape from a Responses `usage` object (which counts cached tokens inside input_tokens). */
export function usageFromResponses(u: unknown): TokenUsage | undefined {
  if (!isRecord(u)) return undefined;
  const n = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) && v > 0 ? Math.floor(v) : 0);
  const usage: TokenUsage = { inputTokens: n(u.input_tokens), outputTokens: n(u.output_tokens) };
  const cached = isRecord(u.input_tokens_details) ? n(u.input_tokens_details.cached_tokens) : 0;
  if (cached) usage.cacheReadInputTokens = cached;
  return usage;
}

/** The Response object skeleton for a request: status, output and usage filled by the caller. */
export function responseShell(echo: ResponsesEcho, status: ResponsesObject['status']): ResponsesObject {
  const r = echo.request;
  const num = (v: unknown) => (typeof v === 'number' && Number.isFinite(v) ? v : null);
  return {
    id: echo.id,
    object: 'response',
    created_at: echo.createdAt,
    status,
    background: false,
    error: null,
    incomplete_details: null,
    instructions: typeof r.instructions === 'string' ? r.instructions : null,
    max_output_tokens: num(r.max_output_tokens),
    model: echo.model,
    output: [],
    parallel_tool_calls: r.parallel_tool_calls !== false,
    previous_response_id: null,
    reasoning: { effort: null, summary: null },
    // Nothing is stored: a translated target keeps no response state.
    store: false,
    temperature: num(r.temperature),
    text: { format: { type: 'text' } },
    tool_choice: (r.tool_choice ?? 'auto') as ResponsesObject['tool_choice'],
    tools: (Array.isArray(r.tools) ? r.tools : []) as Tool[],
    top_p: num(r.top_p),
    truncation: 'disabled',
    metadata: isRecord(r.metadata) ? (r.metadata as Record<string, string>) : {},
    ...(typeof r.user === 'string' ? { user: r.user } : {}),
  } as ResponsesObject;
}

/** The status (and why incomplete) a chat finish reason means. */
export function finishToStatus(finish: OpenAiFinishReason | null | undefined): Pick<ResponsesObject, 'status' | 'incomplete_details'> {
  if (finish === 'length') return { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } };
  if (finish === 'content_filter') return { status: 'incomplete', incomplete_details: { reason: 'content_filter' } };
  return { status: 'completed', incomplete_details: null };
}

/** A buffered chat completion as a Response object. */
export function chatResponseToResponses(chat: OpenAiChatResponse, echo: ResponsesEcho): { body: ResponsesObject; usage?: TokenUsage } {
  if (!isRecord(chat) || !Array.isArray(chat.choices) || !isRecord(chat.choices[0]) || !isRecord(chat.choices[0].message)) {
    throw new UpstreamProtocolError('upstream chat completion has no choices');
  }
  const choice = chat.choices[0];
  const message = choice.message;
  const { status, incomplete_details } = finishToStatus(choice.finish_reason);
  const output: ResponseOutputItem[] = [];
  const text = typeof message.content === 'string' ? message.content : '';
  const refusal = typeof message.refusal === 'string' ? message.refusal : '';
  if (text !== '' || refusal !== '') {
    const item: ResponseOutputMessage = {
      id: newItemId('msg'),
      type: 'message',
      role: 'assistant',
      status: status === 'completed' ? 'completed' : 'incomplete',
      content: [
        ...(text !== '' ? [{ type: 'output_text' as const, text, annotations: [], logprobs: [] }] : []),
        ...(refusal !== '' ? [{ type: 'refusal' as const, refusal }] : []),
      ],
    };
    output.push(item);
  }
  for (const call of Array.isArray(message.tool_calls) ? message.tool_calls : []) {
    if (!isRecord(call) || !isRecord(call.function) || typeof call.function.name !== 'string') {
      throw new UpstreamProtocolError('upstream tool call is malformed');
    }
    const fc: ResponseFunctionToolCall = {
      id: newItemId('fc'),
      type: 'function_call',
      status: 'completed',
      call_id: typeof call.id === 'string' ? call.id : newItemId('fc'),
      name: call.function.name,
      arguments: typeof call.function.arguments === 'string' ? call.function.arguments : '{}',
    };
    output.push(fc);
  }
  const usage = chat.usage ? usageFromOpenAi(chat.usage) : undefined;
  const body: ResponsesObject = {
    ...responseShell(echo, status),
    incomplete_details,
    output,
    ...(usage ? { usage: toResponsesUsage(usage) } : {}),
  };
  return { body, usage };
}
