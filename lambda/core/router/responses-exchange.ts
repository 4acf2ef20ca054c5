/**
 * `POST /v1/responses` between the client and a target. OpenAI-kind targets (OpenAI,
 * OpenAI-compatible, Azure OpenAI) get the request as it came and their stream is forwarded
 * unchanged. Every other kind is served through the chat route: the request becomes a Chat
 * Completions request (translate/responses-to-chat), which the chat exchange takes to the target
 * in its own format, and the answer comes back as a Response object or Responses events.
 */
import { formatSse, SseEvent, SseParser } from '../sse';
import type { Target } from '../routing/types';
import { ApiError } from '../http';
import {
  chatResponseToResponses,
  newResponseId,
  responseShell,
  usageFromResponses,
  type ResponsesEcho,
  type ResponsesObject,
} from '../translate/chat-to-responses';
import { TranslationError } from '../translate/errors';
import type { OpenAiChatResponse } from '../translate/openai-types';
import { responsesRequestToChat } from '../translate/responses-to-chat';
import { parseOpenAiSseEvent } from '../translate/stream-framing';
import { ChatToResponsesStream } from '../translate/stream-chat-to-responses';
import { ResponsesPassthroughStream } from '../translate/stream-responses-passthrough';
import type { TokenUsage } from '../translate/usage';
import type { ClientRequest } from './client-request';
import type { ProviderRequest } from './provider-port';
import type { StreamBridge } from './upstream-exchange';

/** The chat exchange, handed in by upstream-exchange (which dispatches here) to avoid an import cycle. */
export interface ChatExchange {
  upstreamRequest(client: ClientRequest, target: Target): Pick<ProviderRequest, 'path' | 'body'>;
  clientResponse(client: ClientRequest, target: Target, json: unknown): { body: unknown; usage?: TokenUsage };
  streamBridge(client: ClientRequest, target: Target, createdSeconds: number): StreamBridge;
}

const NATIVE_KINDS: ReadonlySet<string> = new Set(['openai', 'openai-compatible', 'azure-openai']);

/** Does this target speak the Responses API itself? */
export function servesResponsesNatively(target: Pick<Target, 'kind'>): boolean {
  return NATIVE_KINDS.has(target.kind);
}

/**
 * The targets that can serve this Responses request, before any KMS or provider call. A request
 * that cannot be translated keeps only the OpenAI-kind targets; with none left it is refused
 * (400) with the reason. `background` is refused for every target: its answer is fetched later
 * from GET /v1/responses/{id}, which this gateway does not route.
 */
export function responsesTargets<T extends Target>(client: ClientRequest, targets: readonly T[]): T[] {
  if (client.body.background === true) {
    throw new ApiError(400, 'unsupported_parameter', 'background: background mode is not supported; its result would have to be fetched from a stored response, which this gateway does not offer.');
  }
  const translated = targets.find((t) => !servesResponsesNatively(t));
  if (!translated) return [...targets];
  try {
    responsesRequestToChat(client.body, { targetKind: translated.kind });
    return [...targets];
  } catch (err) {
    if (!(err instanceof TranslationError)) throw err;
    const native = targets.filter(servesResponsesNatively);
    if (native.length === 0) throw new ApiError(400, 'unsupported_parameter', err.message);
    return native;
  }
}

/** The chat request a translated target receives, as the chat exchange expects it. */
function chatClient(client: ClientRequest, target: Target): ClientRequest {
  const body = responsesRequestToChat(client.body, { targetKind: target.kind }) as unknown as Record<string, unknown>;
  // Mistral's dialect names the cap max_tokens; the others take max_completion_tokens.
  if (target.kind === 'mistral' && body.max_completion_tokens !== undefined) {
    body.max_tokens = body.max_completion_tokens;
    delete body.max_completion_tokens;
  }
  return { ...client, route: 'chat', body };
}

export function responsesUpstreamRequest(client: ClientRequest, target: Target, chat: ChatExchange): Pick<ProviderRequest, 'path' | 'body'> {
  if (!servesResponsesNatively(target)) return chat.upstreamRequest(chatClient(client, target), target);
  const body: Record<string, unknown> = { ...client.body, model: target.model };
  // A cap the client did not send (the policy's max_tokens) still reaches the provider.
  if (client.maxTokens !== undefined && body.max_output_tokens === undefined) body.max_output_tokens = client.maxTokens;
  return { path: '/v1/responses', body };
}

function echoOf(client: ClientRequest, createdSeconds: number): ResponsesEcho {
  return { id: newResponseId(), model: client.model, createdAt: createdSeconds, request: client.body };
}

export function responsesClientResponse(client: ClientRequest, target: Target, json: unknown, chat: ChatExchange, createdSeconds: number): { body: unknown; usage?: TokenUsage } {
  if (servesResponsesNatively(target)) {
    const usage = typeof json === 'object' && json !== null ? usageFromResponses((json as { usage?: unknown }).usage) : undefined;
    return { body: json, usage };
  }
  const inner = chat.clientResponse(chatClient(client, target), target, json);
  const { body } = chatResponseToResponses(inner.body as OpenAiChatResponse, echoOf(client, createdSeconds));
  return { body, usage: inner.usage };
}

const sse = (ev: { type: string }): string => formatSse({ event: ev.type, data: JSON.stringify(ev) });

export function responsesStreamBridge(client: ClientRequest, target: Target, createdSeconds: number, chat: ChatExchange): StreamBridge {
  if (servesResponsesNatively(target)) return passthroughBridge(client, createdSeconds);
  const inner = chatClient(client, target);
  // The chat bridge forwards usage chunks only to clients that asked for them: this one does.
  const chatBridge = chat.streamBridge({ ...inner, body: { ...inner.body, stream_options: { include_usage: true } } }, target, createdSeconds);
  const events = new ChatToResponsesStream(echoOf(client, createdSeconds));
  const parser = new SseParser();
  const convert = (texts: string[]): string[] => {
    const out: string[] = [];
    for (const text of texts) {
      for (const ev of parser.push(text)) {
        const chunk = parseOpenAiSseEvent(ev);
        if (chunk !== 'done') out.push(...events.push(chunk).map(sse));
      }
    }
    return out;
  };
  return {
    push: (ev) => convert(chatBridge.push(ev)),
    finish: () => [...convert(chatBridge.finish()), ...events.finishEvents().map(sse)],
    get complete() {
      return chatBridge.complete;
    },
    usage: () => chatBridge.usage() ?? events.usage(),
    errorEvent: (message) => events.failedEvent(message).map(sse).join(''),
  };
}

function passthroughBridge(client: ClientRequest, createdSeconds: number): StreamBridge {
  const pass = new ResponsesPassthroughStream();
  let lastSeq = -1;
  return {
    push(ev: SseEvent) {
      pass.observe(ev);
      const seq = /"sequence_number"\s*:\s*(\d+)/.exec(ev.data)?.[1];
      if (seq !== undefined) lastSeq = Math.max(lastSeq, Number(seq));
      return [formatSse(ev)];
    },
    finish: () => [],
    get complete() {
      return pass.complete;
    },
    usage: () => pass.usage(),
    errorEvent(message) {
      const shell: ResponsesObject = responseShell({ id: pass.id ?? newResponseId(), model: client.model, createdAt: createdSeconds, request: client.body }, 'failed');
      return sse({ type: 'response.failed', sequence_number: lastSeq + 1, response: { ...shell, error: { code: 'server_error', message } } } as { type: string });
    },
  };
}
