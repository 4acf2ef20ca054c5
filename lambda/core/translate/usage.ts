/** Token usage in one neutral shape, so the caller settles cost the same way for every provider. */
import type { AnthropicUsage } from './anthropic-types';
import type { OpenAiUsage } from './openai-types';

export interface TokenUsage {
  /** Every input token the model read, cached or not (OpenAI `prompt_tokens` semantics). */
  inputTokens: number;
  outputTokens: number;
  /** Part of `inputTokens` served from the prompt cache (cheaper at both providers). */
  cacheReadInputTokens?: number;
  /** Part of `inputTokens` written to Anthropic's prompt cache (dearer than plain input). */
  cacheCreationInputTokens?: number;
}

type AnthropicUsageLike = Partial<AnthropicUsage> | null | undefined;

function count(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

export function usageFromAnthropic(u: AnthropicUsageLike): TokenUsage {
  const cacheRead = count(u?.cache_read_input_tokens);
  const cacheCreation = count(u?.cache_creation_input_tokens);
  const usage: TokenUsage = {
    // Anthropic's input_tokens excludes cache reads and writes; add them back.
    inputTokens: count(u?.input_tokens) + cacheRead + cacheCreation,
    outputTokens: count(u?.output_tokens),
  };
  if (cacheRead) usage.cacheReadInputTokens = cacheRead;
  if (cacheCreation) usage.cacheCreationInputTokens = cacheCreation;
  return usage;
}

export function usageFromOpenAi(u: Partial<OpenAiUsage> | null | undefined): TokenUsage {
  const usage: TokenUsage = { inputTokens: count(u?.prompt_tokens), outputTokens: count(u?.completion_tokens) };
  const cached = count(u?.prompt_tokens_details?.cached_tokens);
  if (cached) usage.cacheReadInputTokens = cached;
  return usage;
}

export function toOpenAiUsage(t: TokenUsage): OpenAiUsage {
  const usage: OpenAiUsage = {
    prompt_tokens: t.inputTokens,
    completion_tokens: t.outputTokens,
    total_tokens: t.inputTokens + t.outputTokens,
  };
  if (t.cacheReadInputTokens) usage.prompt_tokens_details = { cached_tokens: t.cacheReadInputTokens };
  return usage;
}

export function toAnthropicUsage(t: TokenUsage): AnthropicUsage {
  const cacheRead = t.cacheReadInputTokens ?? 0;
  const cacheCreation = t.cacheCreationInputTokens ?? 0;
  return {
    input_tokens: Math.max(0, t.inputTokens - cacheRead - cacheCreation),
    output_tokens: t.outputTokens,
    cache_creation_input_tokens: cacheCreation,
    cache_read_input_tokens: cacheRead,
  };
}

/**
 * Anthropic streams report usage in two places: message_start (input, cache, a provisional
 * output count) and message_delta (cumulative totals that overwrite when present).
 */
export class AnthropicStreamUsage {
  private seen = false;
  private readonly raw: Partial<AnthropicUsage> = {};

  observe(ev: { type?: unknown; message?: unknown; usage?: unknown }): void {
    const src = ev.type === 'message_start' ? (ev.message as { usage?: unknown } | undefined)?.usage : ev.type === 'message_delta' ? ev.usage : undefined;
    if (typeof src !== 'object' || src === null) return;
    this.seen = true;
    const u = src as Record<string, unknown>;
    for (const key of ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const) {
      if (typeof u[key] === 'number') this.raw[key] = u[key] as number;
    }
  }

  get(): TokenUsage | undefined {
    return this.seen ? usageFromAnthropic(this.raw) : undefined;
  }
}
