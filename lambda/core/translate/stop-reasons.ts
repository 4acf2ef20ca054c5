/** Stop-reason mapping between the two formats. Lossy where one side has no equivalent. */
import type { AnthropicStopReason } from './anthropic-types';
import type { OpenAiFinishReason } from './openai-types';

export function anthropicStopToOpenAiFinish(reason: AnthropicStopReason | null | undefined): OpenAiFinishReason {
  switch (reason) {
    case 'max_tokens':
    case 'model_context_window_exceeded':
      return 'length';
    case 'tool_use':
      return 'tool_calls';
    case 'refusal':
      return 'content_filter';
    // end_turn, stop_sequence (OpenAI reports a matched stop as plain `stop`), pause_turn, unknown.
    default:
      return 'stop';
  }
}

export function openAiFinishToAnthropicStop(reason: OpenAiFinishReason | null | undefined): AnthropicStopReason {
  switch (reason) {
    case 'length':
      return 'max_tokens';
    case 'tool_calls':
    case 'function_call':
      return 'tool_use';
    // Anthropic's own stop reason for a policy stop; the SDK types know it.
    case 'content_filter':
      return 'refusal';
    // OpenAI does not say whether `stop` came from a stop sequence, so it reads as a natural end.
    default:
      return 'end_turn';
  }
}
