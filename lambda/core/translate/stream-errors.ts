/**
 * Well-formed error events to end a client stream when the upstream breaks after the first byte,
 * when the HTTP status is already sent. Both SDKs turn these into a thrown API error.
 */
import type { AnthropicErrorEvent } from './anthropic-types';
import type { OpenAiErrorBody } from './openai-types';

/** Written as `data: {"error":...}`; the OpenAI SDK throws on a chunk with an `error` key. */
export function openAiStreamErrorChunk(message: string, type = 'server_error', code: string | null = null): OpenAiErrorBody {
  return { error: { message, type, param: null, code } };
}

/** Written as `event: error`; the Anthropic SDK throws on it. Types: api_error, overloaded_error... */
export function anthropicStreamErrorEvent(message: string, type = 'api_error'): AnthropicErrorEvent {
  return { type: 'error', error: { type, message } };
}
