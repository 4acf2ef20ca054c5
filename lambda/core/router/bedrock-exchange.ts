/**
 * Amazon Bedrock targets, between the client's format and Converse. Both client formats go through
 * the Anthropic Messages shape: OpenAI → Anthropic (existing translation) → Converse on the way
 * up; Converse → Anthropic → the client's format on the way down, streaming included. The
 * Bedrock adapter re-frames ConverseStream's binary event stream as SSE (`event: <type>`), so
 * the router's stream loop is the same for every provider.
 */
import { randomBytes } from 'node:crypto';
import type { SseEvent } from '../sse';
import {
  anthropicEventToSse,
  anthropicRequestToConverse,
  AnthropicResponse,
  anthropicResponseToOpenAi,
  converseResponseToAnthropic,
  ConverseToAnthropicStream,
  OpenAiChatRequest,
  openAiRequestToAnthropic,
  TokenUsage,
  UpstreamProtocolError,
  usageFromAnthropic,
} from '../translate';
import type { ClientRequest } from './client-request';
import type { ProviderRequest } from './provider-port';

/** The Converse request for a client's chat or messages request (the model id goes in the URL). */
export function bedrockUpstreamRequest(client: ClientRequest, model: string, defaultMaxTokens: number): Pick<ProviderRequest, 'path' | 'body'> {
  const anthropic =
    client.route === 'messages'
      ? { ...client.body, model }
      : openAiRequestToAnthropic(client.body as unknown as OpenAiChatRequest, model, { defaultMaxTokens: client.maxTokens ?? defaultMaxTokens });
  return converseCall(anthropic, client.stream);
}

/** An Anthropic Messages body as the Converse call (reusable by other client formats, e.g. Responses). */
export function converseCall(anthropicBody: unknown, stream: boolean): Pick<ProviderRequest, 'path' | 'body'> {
  return { path: stream ? '/converse-stream' : '/converse', body: anthropicRequestToConverse(anthropicBody) };
}

/** A buffered Converse answer in the client's format, with the usage to settle. */
export function bedrockClientResponse(client: Pick<ClientRequest, 'route' | 'model'>, json: unknown): { body: unknown; usage: TokenUsage } {
  const message: AnthropicResponse = converseResponseToAnthropic(json, { id: `msg_bdrk_${randomBytes(12).toString('hex')}`, model: client.model });
  const usage = usageFromAnthropic(message.usage);
  return { body: client.route === 'messages' ? message : anthropicResponseToOpenAi(message, client.model), usage };
}

/**
 * Converse SSE events (as the adapter frames them) → Anthropic SSE events, handed to `inner`, the
 * bridge for an Anthropic target in the client's format.
 */
export function converseEventsToAnthropic(model: string, inner: (ev: SseEvent) => string[]): { push(ev: SseEvent): string[] } {
  const tr = new ConverseToAnthropicStream({ id: `msg_bdrk_${randomBytes(12).toString('hex')}`, model });
  return {
    push(ev) {
      let payload: unknown;
      try {
        payload = JSON.parse(ev.data);
      } catch {
        throw new UpstreamProtocolError('Bedrock stream event is not valid JSON');
      }
      return tr.push(ev.event ?? 'message', payload).flatMap((e) => inner(anthropicEventToSse(e)));
    },
  };
}
