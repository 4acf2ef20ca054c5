/**
 * OpenAI chat.completion.chunk stream → Anthropic Messages stream, for an Anthropic-format client
 * routed to an OpenAI-compatible model. Fed parsed upstream chunks (see parseOpenAiSseEvent);
 * returns the events to send, each written with `anthropicEventToSse`.
 */
import { randomUUID } from 'node:crypto';
import type { AnthropicStreamEvent } from './anthropic-types';
import { UpstreamProtocolError, UpstreamStreamError } from './errors';
import { isRecord } from './guards';
import type { OpenAiChunk, OpenAiFinishReason } from './openai-types';
import { openAiFinishToAnthropicStop } from './stop-reasons';
import { toAnthropicUsage, usageFromOpenAi, type TokenUsage } from './usage';

export interface OpenAiToAnthropicStreamOptions {
  /** The Anthropic message id shown to the client (msg_...). */
  id: string;
  model: string;
}

type OpenBlock = { kind: 'text'; index: number } | { kind: 'tool'; index: number; openAiIndex: number };

export class OpenAiToAnthropicStream {
  private started = false;
  private finished = false;
  private nextBlock = 0;
  private open: OpenBlock | undefined;
  /** OpenAI tool_calls indexes already given a block; their block may be closed since. */
  private readonly toolsSeen = new Set<number>();
  private finishReason: OpenAiFinishReason | null = null;
  private tokenUsage: TokenUsage | undefined;

  constructor(private readonly opts: OpenAiToAnthropicStreamOptions) {}

  /**
   * Translates one upstream chunk. Throws UpstreamStreamError on an `{"error":...}` chunk and
   * UpstreamProtocolError on data that cannot be expressed as an Anthropic stream.
   */
  push(chunk: OpenAiChunk): AnthropicStreamEvent[] {
    if (this.finished) return [];
    if (!isRecord(chunk)) throw new UpstreamProtocolError('upstream chunk is not an object');
    const maybeError = (chunk as unknown as { error?: unknown }).error;
    if (isRecord(maybeError)) {
      throw new UpstreamStreamError(String(maybeError.message ?? 'upstream stream error'), String(maybeError.type ?? 'server_error'));
    }
    const out: AnthropicStreamEvent[] = [];
    this.ensureStart(out);
    // Usage comes in the final chunk (choices: []) with include_usage, or on the last chunk (Mistral).
    if (isRecord(chunk.usage)) this.tokenUsage = usageFromOpenAi(chunk.usage);
    const choice = Array.isArray(chunk.choices) ? chunk.choices.find((c) => isRecord(c) && (c.index ?? 0) === 0) : undefined;
    if (!choice) return out;
    const delta = isRecord(choice.delta) ? choice.delta : {};
    if (typeof delta.content === 'string' && delta.content !== '') this.text(delta.content, out);
    if (typeof delta.refusal === 'string' && delta.refusal !== '') this.text(delta.refusal, out);
    if (Array.isArray(delta.tool_calls)) {
      for (const tc of delta.tool_calls) {
        if (!isRecord(tc)) throw new UpstreamProtocolError('upstream tool call delta is malformed');
        this.toolCall(tc, out);
      }
    }
    if (choice.finish_reason) this.finishReason = choice.finish_reason;
    return out;
  }

  /**
   * Closes the open block, then message_delta (stop_reason, usage) and message_stop. Check
   * `complete` first: if the upstream ended without a finish_reason, send
   * `anthropicStreamErrorEvent` instead, as a truncated answer must not look finished.
   */
  finish(): AnthropicStreamEvent[] {
    if (this.finished) return [];
    this.finished = true;
    const out: AnthropicStreamEvent[] = [];
    this.ensureStart(out);
    this.closeOpen(out);
    const usage = toAnthropicUsage(this.tokenUsage ?? { inputTokens: 0, outputTokens: 0 });
    out.push({
      type: 'message_delta',
      delta: { stop_reason: openAiFinishToAnthropicStop(this.finishReason), stop_sequence: null },
      // Cumulative totals: the SDK overwrites message_start's provisional zeros with these.
      usage: {
        output_tokens: usage.output_tokens,
        input_tokens: usage.input_tokens,
        cache_creation_input_tokens: usage.cache_creation_input_tokens,
        cache_read_input_tokens: usage.cache_read_input_tokens,
      },
    });
    out.push({ type: 'message_stop' });
    return out;
  }

  /** True once the upstream sent a finish_reason. */
  get complete(): boolean {
    return this.finishReason !== null;
  }

  /** Tokens reported by the upstream, if it reported any yet. */
  usage(): TokenUsage | undefined {
    return this.tokenUsage;
  }

  private ensureStart(out: AnthropicStreamEvent[]): void {
    if (this.started) return;
    this.started = true;
    out.push({
      type: 'message_start',
      message: {
        id: this.opts.id,
        type: 'message',
        role: 'assistant',
        model: this.opts.model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        // OpenAI reports input tokens only at the end; message_delta carries the real counts.
        usage: { input_tokens: 0, output_tokens: 0 },
      },
    });
  }

  private text(text: string, out: AnthropicStreamEvent[]): void {
    if (this.open?.kind !== 'text') {
      this.closeOpen(out);
      this.open = { kind: 'text', index: this.nextBlock++ };
      out.push({ type: 'content_block_start', index: this.open.index, content_block: { type: 'text', text: '' } });
    }
    out.push({ type: 'content_block_delta', index: this.open.index, delta: { type: 'text_delta', text } });
  }

  private toolCall(tc: Record<string, unknown>, out: AnthropicStreamEvent[]): void {
    const openAiIndex = typeof tc.index === 'number' ? tc.index : 0;
    const fn = isRecord(tc.function) ? tc.function : {};
    const args = typeof fn.arguments === 'string' ? fn.arguments : '';
    if (!this.toolsSeen.has(openAiIndex)) {
      if (typeof fn.name !== 'string' || fn.name === '') {
        throw new UpstreamProtocolError('upstream tool call starts without a function name');
      }
      this.toolsSeen.add(openAiIndex);
      this.closeOpen(out);
      this.open = { kind: 'tool', index: this.nextBlock++, openAiIndex };
      const id = typeof tc.id === 'string' && tc.id !== '' ? tc.id : `toolu_${randomUUID().replace(/-/g, '')}`;
      out.push({
        type: 'content_block_start',
        index: this.open.index,
        content_block: { type: 'tool_use', id, name: fn.name, input: {} },
      });
    } else if (this.open?.kind !== 'tool' || this.open.openAiIndex !== openAiIndex) {
      // Anthropic blocks stream one after another; a closed block cannot take more input.
      throw new UpstreamProtocolError('upstream interleaved arguments of parallel tool calls');
    }
    if (args !== '') {
      out.push({ type: 'content_block_delta', index: this.open.index, delta: { type: 'input_json_delta', partial_json: args } });
    }
  }

  private closeOpen(out: AnthropicStreamEvent[]): void {
    if (!this.open) return;
    out.push({ type: 'content_block_stop', index: this.open.index });
    this.open = undefined;
  }
}
