/** Between SSE events and typed stream payloads, for both formats. */
import type { SseEvent } from '../sse';
import type { AnthropicStreamEvent } from './anthropic-types';
import { UpstreamProtocolError, UpstreamStreamError } from './errors';
import { isRecord } from './guards';
import type { OpenAiChunk, OpenAiErrorBody } from './openai-types';

/** Anthropic SDKs ignore events without an `event:` line, so it is always set. */
export function anthropicEventToSse(ev: AnthropicStreamEvent): SseEvent {
  return { event: ev.type, data: JSON.stringify(ev) };
}

export function openAiChunkToSse(chunk: OpenAiChunk | OpenAiErrorBody): SseEvent {
  return { data: JSON.stringify(chunk) };
}

/**
 * Parses one upstream OpenAI-format event: a chunk, or `done` for `[DONE]`.
 * Throws UpstreamStreamError on an error payload and UpstreamProtocolError on bad JSON.
 */
export function parseOpenAiSseEvent(ev: SseEvent): OpenAiChunk | 'done' {
  if (ev.data.trim() === '[DONE]') return 'done';
  const payload = parseJson(ev.data);
  if (isRecord(payload.error)) throw streamError(payload.error, 'server_error');
  return payload as unknown as OpenAiChunk;
}

/**
 * Parses one upstream Anthropic event; undefined for pings and empty events.
 * Throws UpstreamStreamError on an `error` event and UpstreamProtocolError on bad JSON.
 */
export function parseAnthropicSseEvent(ev: SseEvent): AnthropicStreamEvent | undefined {
  if (ev.event === 'ping' || ev.data.trim() === '') return undefined;
  const payload = parseJson(ev.data);
  if (ev.event === 'error' || payload.type === 'error') {
    throw streamError(isRecord(payload.error) ? payload.error : {}, 'api_error');
  }
  if (typeof payload.type !== 'string') throw new UpstreamProtocolError('upstream stream event has no type');
  return payload as unknown as AnthropicStreamEvent;
}

function parseJson(data: string): Record<string, unknown> {
  let payload: unknown;
  try {
    payload = JSON.parse(data);
  } catch {
    throw new UpstreamProtocolError('upstream stream event is not valid JSON');
  }
  if (!isRecord(payload)) throw new UpstreamProtocolError('upstream stream event is not a JSON object');
  return payload;
}

function streamError(error: Record<string, unknown>, fallbackType: string): UpstreamStreamError {
  const message = typeof error.message === 'string' ? error.message : 'upstream stream error';
  const type = typeof error.type === 'string' ? error.type : fallbackType;
  return new UpstreamStreamError(message, type);
}
