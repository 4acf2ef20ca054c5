/**
 * Anthropic Messages stream → OpenAI chat.completion.chunk stream, for an OpenAI-format client
 * routed to an Anthropic model. Fed parsed upstream SSE events one at a time; returns the chunks to
 * send. The caller writes `data: [DONE]` after `finish()`.
 */
import type { SseEvent } from '../sse';
import type { AnthropicStopReason } from './anthropic-types';
import { UpstreamProtocolError } from './errors';
import { isRecord } from './guards';
import type { OpenAiChunk, OpenAiDelta, OpenAiFinishReason } from './openai-types';
import { anthropicStopToOpenAiFinish } from './stop-reasons';
import { parseAnthropicSseEvent } from './stream-framing';
import { AnthropicStreamUsage, toOpenAiUsage, type TokenUsage } from './usage';

export interface AnthropicToOpenAiStreamOptions {
  id: string;
  model: string;
  /** Unix seconds, the same on every chunk as OpenAI does. */
  created: number;
  /** The client asked for `stream_options.include_usage`: add `usage: null` and a usage chunk. */
  includeUsage: boolean;
}

export class AnthropicToOpenAiStream {
  private roleSent = false;
  private finished = false;
  private stopped = false;
  private stopReason: AnthropicStopReason | null = null;
  private readonly usageTally = new AnthropicStreamUsage();
  /** Anthropic block index → OpenAI tool_calls index (which counts tool calls only). */
  private readonly toolIndex = new Map<number, number>();

  constructor(private readonly opts: AnthropicToOpenAiStreamOptions) {}

  /**
   * Translates one upstream event. Throws UpstreamStreamError when the upstream sends an error
   * event and UpstreamProtocolError on malformed data; end the client stream with an error chunk.
   */
  push(sse: SseEvent): OpenAiChunk[] {
    if (this.finished) return [];
    const ev = parseAnthropicSseEvent(sse);
    if (!ev) return [];
    const out: OpenAiChunk[] = [];
    switch (ev.type) {
      case 'message_start':
        this.usageTally.observe(ev);
        this.ensureRole(out);
        break;
      case 'content_block_start': {
        this.ensureRole(out);
        const block = ev.content_block;
        if (!isRecord(block)) throw new UpstreamProtocolError('content_block_start without content_block');
        if (block.type === 'text' && block.text) out.push(this.chunk({ content: block.text }));
        else if (block.type === 'tool_use') {
          const index = this.toolIndex.size;
          this.toolIndex.set(ev.index, index);
          out.push(
            this.chunk({
              tool_calls: [{ index, id: block.id, type: 'function', function: { name: block.name, arguments: '' } }],
            }),
          );
          // Streams normally start tool input as {} and send it as deltas; keep a non-empty one.
          if (isRecord(block.input) && Object.keys(block.input).length > 0) {
            out.push(this.argsChunk(index, JSON.stringify(block.input)));
          }
        }
        // thinking, redacted_thinking and server-tool blocks have no Chat Completions form.
        break;
      }
      case 'content_block_delta': {
        const delta = ev.delta;
        if (!isRecord(delta)) throw new UpstreamProtocolError('content_block_delta without delta');
        this.ensureRole(out);
        if (delta.type === 'text_delta' && delta.text) out.push(this.chunk({ content: delta.text }));
        else if (delta.type === 'input_json_delta' && delta.partial_json) {
          const index = this.toolIndex.get(ev.index);
          if (index !== undefined) out.push(this.argsChunk(index, delta.partial_json));
        }
        break;
      }
      case 'message_delta':
        this.usageTally.observe(ev);
        if (isRecord(ev.delta) && ev.delta.stop_reason) this.stopReason = ev.delta.stop_reason;
        break;
      case 'message_stop':
        this.stopped = true;
        break;
      default:
        // content_block_stop and event types added later carry nothing to translate.
        break;
    }
    return out;
  }

  /**
   * The closing chunks: the finish_reason chunk, then the usage chunk (`choices: []`) when the
   * client asked for usage. Check `complete` first: if the upstream ended without message_stop,
   * send `openAiStreamErrorChunk` instead, as a truncated answer must not look finished.
   */
  finish(): { chunks: OpenAiChunk[]; done: true } {
    if (this.finished) return { chunks: [], done: true };
    this.finished = true;
    const chunks: OpenAiChunk[] = [];
    this.ensureRole(chunks);
    chunks.push(this.chunk({}, anthropicStopToOpenAiFinish(this.stopReason)));
    if (this.opts.includeUsage) {
      const usage = this.usageTally.get() ?? { inputTokens: 0, outputTokens: 0 };
      chunks.push({ ...this.base(), choices: [], usage: toOpenAiUsage(usage) });
    }
    return { chunks, done: true };
  }

  /** True once the upstream sent message_stop. */
  get complete(): boolean {
    return this.stopped;
  }

  /** Tokens so far, for settling cost even when the stream broke. */
  usage(): TokenUsage | undefined {
    return this.usageTally.get();
  }

  private ensureRole(out: OpenAiChunk[]): void {
    if (this.roleSent) return;
    this.roleSent = true;
    out.push(this.chunk({ role: 'assistant', content: '' }));
  }

  private argsChunk(index: number, args: string): OpenAiChunk {
    return this.chunk({ tool_calls: [{ index, function: { arguments: args } }] });
  }

  private base(): Omit<OpenAiChunk, 'choices'> {
    const base: Omit<OpenAiChunk, 'choices'> = {
      id: this.opts.id,
      object: 'chat.completion.chunk',
      created: this.opts.created,
      model: this.opts.model,
    };
    return base;
  }

  private chunk(delta: OpenAiDelta, finishReason: OpenAiFinishReason | null = null): OpenAiChunk {
    const chunk: OpenAiChunk = { ...this.base(), choices: [{ index: 0, delta, finish_reason: finishReason, logprobs: null }] };
    if (this.opts.includeUsage) chunk.usage = null;
    return chunk;
  }
}
