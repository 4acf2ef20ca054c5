/**
 * Between the client's API format and the target's: the upstream request, the buffered response
 * and the streaming bridge, for the four combinations of OpenAI/Anthropic client and target.
 */
import { randomBytes } from 'node:crypto';
import { DEFAULT_AZURE_API_VERSION } from '../cell-config';
import { formatSse, SSE_DONE, SseEvent } from '../sse';
import type { Target } from '../routing/types';
import {
  AnthropicPassthroughStream,
  AnthropicRequest,
  AnthropicResponse,
  anthropicEventToSse,
  anthropicRequestToOpenAi,
  anthropicResponseToOpenAi,
  anthropicStreamErrorEvent,
  AnthropicToOpenAiStream,
  OpenAiChatRequest,
  OpenAiChatResponse,
  openAiChunkToSse,
  OpenAiPassthroughStream,
  openAiRequestToAnthropic,
  openAiResponseToAnthropic,
  openAiStreamErrorChunk,
  OpenAiToAnthropicStream,
  parseAnthropicSseEvent,
  parseOpenAiSseEvent,
  TokenUsage,
  usageFromAnthropic,
  usageFromOpenAi,
} from '../translate';
import { isRecord } from '../translate/guards';
import { bedrockClientResponse, bedrockUpstreamRequest, converseEventsToAnthropic } from './bedrock-exchange';
import type { ClientRequest } from './client-request';
import type { ProviderRequest } from './provider-port';
import { ChatExchange, responsesClientResponse, responsesStreamBridge, responsesUpstreamRequest } from './responses-exchange';

/** Anthropic requires max_tokens; OpenAI-format clients may omit it. */
export const DEFAULT_MAX_TOKENS = 4096;

type ClientFormat = 'openai' | 'anthropic';
const clientFormat = (c: ClientRequest): ClientFormat => (c.route === 'messages' ? 'anthropic' : 'openai');
/** Bedrock targets speak Converse, bridged through the Anthropic shape (bedrock-exchange.ts). */
const targetFormat = (t: Target): ClientFormat => (t.kind === 'anthropic' || t.kind === 'bedrock' ? 'anthropic' : 'openai');

export function upstreamRequest(client: ClientRequest, target: Target): Pick<ProviderRequest, 'path' | 'body'> {
  if (client.route === 'responses') return responsesUpstreamRequest(client, target, CHAT);
  if (client.route === 'embeddings') {
    return { path: '/v1/embeddings', body: { ...client.body, model: target.model } };
  }
  if (target.kind === 'bedrock') return bedrockUpstreamRequest(client, target.model, DEFAULT_MAX_TOKENS);
  const from = clientFormat(client);
  const to = targetFormat(target);
  if (from === 'openai' && to === 'openai') {
    // A cap the client did not send (the policy's max_tokens) still reaches the provider.
    const addCap = client.maxTokens !== undefined && client.body.max_tokens === undefined && client.body.max_completion_tokens === undefined;
    // Usage settles the cost: ask for it on streams (Mistral always sends it, and rejects the option;
    // Azure api-versions before 2024-09-01 reject it too).
    const askUsage = client.stream && target.kind !== 'mistral' && (target.kind !== 'azure-openai' || modernAzure(target));
    // Nothing to change (the model named as the target names it, no cap, no stream option): the
    // parsed body as it is, which the transport only serializes; no copy of it per attempt.
    if (!addCap && !askUsage && client.body.model === target.model) return { path: '/v1/chat/completions', body: client.body };
    const body: Record<string, unknown> = { ...client.body, model: target.model };
    if (addCap) body[target.kind === 'openai' || modernAzure(target) ? 'max_completion_tokens' : 'max_tokens'] = client.maxTokens;
    if (askUsage) body.stream_options = { ...(isRecord(client.body.stream_options) ? client.body.stream_options : {}), include_usage: true };
    return { path: '/v1/chat/completions', body };
  }
  if (from === 'anthropic' && to === 'anthropic') {
    return { path: '/v1/messages', body: { ...client.body, model: target.model } };
  }
  if (from === 'openai') {
    const body = openAiRequestToAnthropic(client.body as unknown as OpenAiChatRequest, target.model, {
      defaultMaxTokens: client.maxTokens ?? DEFAULT_MAX_TOKENS,
    });
    return { path: '/v1/messages', body };
  }
  const body = anthropicRequestToOpenAi(client.body as unknown as AnthropicRequest, target.model, {
    // Older Azure api-versions know neither max_completion_tokens nor stream_options: Mistral's dialect.
    dialect: target.kind === 'mistral' || (target.kind === 'azure-openai' && !modernAzure(target)) ? 'mistral' : 'openai',
  });
  return { path: '/v1/chat/completions', body };
}

/** Azure api-versions from 2024-09-01 take max_completion_tokens and stream_options (as OpenAI does). */
function modernAzure(target: Target): boolean {
  return target.kind === 'azure-openai' && (target.apiVersion ?? DEFAULT_AZURE_API_VERSION) >= AZURE_MODERN_API_VERSION;
}
const AZURE_MODERN_API_VERSION = '2024-09-01';

/** A buffered upstream 2xx body, in the client's format, with the usage to settle. */
export function clientResponse(client: ClientRequest, target: Target, json: unknown, createdSeconds = Math.floor(Date.now() / 1000)): { body: unknown; usage?: TokenUsage } {
  if (client.route === 'responses') return responsesClientResponse(client, target, json, CHAT, createdSeconds);
  if (client.route === 'embeddings') {
    const usage = isRecord(json) && isRecord(json.usage) ? json.usage : undefined;
    return { body: json, usage: usage ? { inputTokens: Number(usage.prompt_tokens) || 0, outputTokens: 0 } : undefined };
  }
  if (target.kind === 'bedrock') return bedrockClientResponse(client, json);
  const from = clientFormat(client);
  const to = targetFormat(target);
  if (to === 'anthropic') {
    const usage = usageFromAnthropic(isRecord(json) ? (json.usage as never) : undefined);
    const body = from === 'anthropic' ? json : anthropicResponseToOpenAi(json as AnthropicResponse, client.model);
    return { body, usage };
  }
  const usage = usageFromOpenAi(isRecord(json) ? (json.usage as never) : undefined);
  const body = from === 'openai' ? json : openAiResponseToAnthropic(json as OpenAiChatResponse, client.model);
  return { body, usage };
}

/** Turns upstream SSE events into the client's SSE text, tracking usage and completeness. */
export interface StreamBridge {
  push(ev: SseEvent): string[];
  finish(): string[];
  /** Did the upstream end its stream properly (finish reason / message_stop / [DONE])? */
  readonly complete: boolean;
  usage(): TokenUsage | undefined;
  /** A well-formed error event in the client's format, to end a broken stream. */
  errorEvent(message: string, type: string): string;
}

export function streamBridge(client: ClientRequest, target: Target, createdSeconds: number): StreamBridge {
  if (client.route === 'responses') return responsesStreamBridge(client, target, createdSeconds, CHAT);
  if (target.kind === 'bedrock') {
    // Converse events become Anthropic events, then take the Anthropic target's path.
    const inner = streamBridge(client, { ...target, kind: 'anthropic' }, createdSeconds);
    const converse = converseEventsToAnthropic(client.model, (ev) => inner.push(ev));
    return {
      push: (ev) => converse.push(ev),
      finish: () => inner.finish(),
      get complete() {
        return inner.complete;
      },
      usage: () => inner.usage(),
      errorEvent: (message, type) => inner.errorEvent(message, type),
    };
  }
  const from = clientFormat(client);
  const to = targetFormat(target);
  const wantsUsage = isRecord(client.body.stream_options) && client.body.stream_options.include_usage === true;
  const openAiError = (message: string, type: string) => formatSse(openAiChunkToSse(openAiStreamErrorChunk(message, type)));
  const anthropicError = (message: string, type: string) => formatSse(anthropicEventToSse(anthropicStreamErrorEvent(message, type)));

  if (from === 'openai' && to === 'openai') {
    const pass = new OpenAiPassthroughStream({ clientWantsUsage: wantsUsage });
    let done = false;
    return {
      push(ev) {
        const parsed = parseOpenAiSseEvent(ev);
        if (parsed === 'done') {
          done = true;
          return [];
        }
        return pass.push(parsed).map((c) => formatSse(openAiChunkToSse(c)));
      },
      finish: () => [SSE_DONE],
      get complete() {
        return done || pass.complete;
      },
      usage: () => pass.usage(),
      errorEvent: openAiError,
    };
  }
  if (from === 'anthropic' && to === 'anthropic') {
    const pass = new AnthropicPassthroughStream();
    return {
      push(ev) {
        const parsed = parseAnthropicSseEvent(ev);
        if (parsed) pass.observe(parsed);
        return [formatSse(ev)];
      },
      finish: () => [],
      get complete() {
        return pass.complete;
      },
      usage: () => pass.usage(),
      errorEvent: anthropicError,
    };
  }
  if (from === 'openai') {
    const tr = new AnthropicToOpenAiStream({
      id: `chatcmpl-${randomBytes(12).toString('hex')}`,
      model: client.model,
      created: createdSeconds,
      includeUsage: wantsUsage,
    });
    let stopped = false;
    return {
      push(ev) {
        if (ev.event === 'message_stop') stopped = true;
        return tr.push(ev).map((c) => formatSse(openAiChunkToSse(c)));
      },
      finish: () => [...tr.finish().chunks.map((c) => formatSse(openAiChunkToSse(c))), SSE_DONE],
      get complete() {
        return stopped;
      },
      usage: () => tr.usage(),
      errorEvent: openAiError,
    };
  }
  const tr = new OpenAiToAnthropicStream({ id: `msg_${randomBytes(12).toString('hex')}`, model: client.model });
  let done = false;
  return {
    push(ev) {
      const parsed = parseOpenAiSseEvent(ev);
      if (parsed === 'done') {
        done = true;
        return [];
      }
      return tr.push(parsed).map((e) => formatSse(anthropicEventToSse(e)));
    },
    finish: () => tr.finish().map((e) => formatSse(anthropicEventToSse(e))),
    get complete() {
      return done;
    },
    usage: () => tr.usage(),
    errorEvent: anthropicError,
  };
}

/** The chat exchange as the Responses exchange composes it (function declarations are hoisted). */
const CHAT: ChatExchange = { upstreamRequest, clientResponse, streamBridge };
