/**
 * Same-format streams (OpenAI client → OpenAI/Mistral, Anthropic client → Anthropic) need no
 * translation, but the caller still needs usage to settle cost and, for OpenAI, must hide the
 * usage chunk it forced upstream when the client did not ask for it.
 */
import type { AnthropicStreamEvent } from './anthropic-types';
import { isRecord } from './guards';
import type { OpenAiChunk } from './openai-types';
import { AnthropicStreamUsage, usageFromOpenAi, type TokenUsage } from './usage';

export class OpenAiPassthroughStream {
  private tokenUsage: TokenUsage | undefined;
  private finishSeen = false;

  /** clientWantsUsage: the client's own `stream_options.include_usage`. */
  constructor(private readonly opts: { clientWantsUsage: boolean }) {}

  /** Returns the chunks to forward: the chunk itself, or nothing for a forced usage chunk. */
  push(chunk: OpenAiChunk): OpenAiChunk[] {
    if (isRecord(chunk.usage)) this.tokenUsage = usageFromOpenAi(chunk.usage);
    const choices = Array.isArray(chunk.choices) ? chunk.choices : [];
    if (choices.some((c) => isRecord(c) && c.finish_reason)) this.finishSeen = true;
    if (this.opts.clientWantsUsage) return [chunk];
    // Clients that did not ask for usage often read choices[0] blindly: drop the usage-only chunk.
    if (choices.length === 0) return [];
    if (chunk.usage === null) {
      const { usage: _usage, ...rest } = chunk;
      return [rest];
    }
    return [chunk];
  }

  /** True once a finish_reason went by. */
  get complete(): boolean {
    return this.finishSeen;
  }

  usage(): TokenUsage | undefined {
    return this.tokenUsage;
  }
}

export class AnthropicPassthroughStream {
  private readonly tally = new AnthropicStreamUsage();
  private stopped = false;

  /** Observes one event; the caller forwards it unchanged. */
  observe(ev: AnthropicStreamEvent): void {
    this.tally.observe(ev);
    if (ev.type === 'message_stop') this.stopped = true;
  }

  /** True once message_stop went by. */
  get complete(): boolean {
    return this.stopped;
  }

  usage(): TokenUsage | undefined {
    return this.tally.get();
  }
}
