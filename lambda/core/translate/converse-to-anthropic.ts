/**
 * Amazon Bedrock Converse response and ConverseStream events → Anthropic Messages. From there the
 * existing Anthropic → OpenAI translation serves OpenAI-format clients, streaming included.
 */
import type { AnthropicResponse, AnthropicResponseBlock, AnthropicStopReason, AnthropicStreamEvent, AnthropicUsage } from './anthropic-types';
import type { ConverseStopReason } from './converse-types';
import { UpstreamProtocolError, UpstreamStreamError } from './errors';
import { isRecord } from './guards';

export function converseStopToAnthropic(reason: ConverseStopReason | null | undefined): AnthropicStopReason {
  switch (reason) {
    case 'tool_use':
    case 'max_tokens':
    case 'stop_sequence':
    case 'model_context_window_exceeded':
      return reason as AnthropicStopReason;
    // A Bedrock guardrail or content filter stopped the answer: Anthropic's policy stop.
    case 'guardrail_intervened':
    case 'content_filtered':
      return 'refusal';
    default:
      return 'end_turn';
  }
}

function count(n: unknown): number {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

/** Converse usage as Anthropic's (both count cache reads and writes apart from plain input). */
export function converseUsageToAnthropic(u: unknown): AnthropicUsage {
  const r = isRecord(u) ? u : {};
  return {
    input_tokens: count(r.inputTokens),
    output_tokens: count(r.outputTokens),
    cache_creation_input_tokens: count(r.cacheWriteInputTokens),
    cache_read_input_tokens: count(r.cacheReadInputTokens),
  };
}

/** A buffered Converse answer as an Anthropic message (`id` and `model` are the gateway's). */
export function converseResponseToAnthropic(json: unknown, ids: { id: string; model: string }): AnthropicResponse {
  if (!isRecord(json) || !isRecord(json.output)) throw new UpstreamProtocolError('Converse response without output');
  const message = json.output.message;
  if (!isRecord(message) || !Array.isArray(message.content)) throw new UpstreamProtocolError('Converse response without a message');
  const content: AnthropicResponseBlock[] = [];
  for (const block of message.content) {
    const b = responseBlock(block);
    if (b) content.push(b);
  }
  return {
    id: ids.id,
    type: 'message',
    role: 'assistant',
    model: ids.model,
    content,
    stop_reason: converseStopToAnthropic(typeof json.stopReason === 'string' ? json.stopReason : undefined),
    stop_sequence: null,
    usage: converseUsageToAnthropic(json.usage),
  };
}

function responseBlock(block: unknown): AnthropicResponseBlock | undefined {
  if (!isRecord(block)) throw new UpstreamProtocolError('Converse content block is not an object');
  if (typeof block.text === 'string') return { type: 'text', text: block.text };
  if (isRecord(block.toolUse)) {
    const t = block.toolUse;
    if (typeof t.toolUseId !== 'string' || typeof t.name !== 'string') throw new UpstreamProtocolError('Converse toolUse without id or name');
    return { type: 'tool_use', id: t.toolUseId, name: t.name, input: isRecord(t.input) ? t.input : {} };
  }
  if (isRecord(block.reasoningContent)) {
    const r = block.reasoningContent;
    if (isRecord(r.reasoningText) && typeof r.reasoningText.text === 'string') {
      return { type: 'thinking', thinking: r.reasoningText.text, signature: typeof r.reasoningText.signature === 'string' ? r.reasoningText.signature : '' };
    }
    if (typeof r.redactedContent === 'string') return { type: 'redacted_thinking', data: r.redactedContent };
  }
  // Blocks Anthropic clients have no type for (e.g. citations content) are left out.
  return undefined;
}

/**
 * ConverseStream events → Anthropic stream events. Converse opens text blocks implicitly (first
 * delta) and reports usage in `metadata` after `messageStop`; Anthropic's message_delta carries
 * both stop reason and usage, so it goes out on `metadata`. A stream that ends before that is
 * incomplete (no message_stop), and the caller treats it as broken: nothing settles on a guess.
 */
export class ConverseToAnthropicStream {
  private started = false;
  private readonly open = new Map<number, 'text' | 'tool_use' | 'thinking' | 'redacted_thinking'>();
  private stopReason: AnthropicStopReason | undefined;
  private stopped = false;

  constructor(private readonly ids: { id: string; model: string }) {}

  /** True once message_stop went out. */
  get complete(): boolean {
    return this.stopped;
  }

  /** One Converse event (its `:event-type` and JSON payload) → zero or more Anthropic events. */
  push(eventType: string, payload: unknown): AnthropicStreamEvent[] {
    if (!isRecord(payload)) throw new UpstreamProtocolError('ConverseStream event is not an object');
    const out: AnthropicStreamEvent[] = [];
    if (!this.started && eventType !== 'metadata') this.start(out);
    switch (eventType) {
      case 'messageStart':
        break;
      case 'contentBlockStart': {
        const index = blockIndex(payload);
        const start = isRecord(payload.start) ? payload.start : {};
        if (isRecord(start.toolUse)) {
          const t = start.toolUse;
          if (typeof t.toolUseId !== 'string' || typeof t.name !== 'string') throw new UpstreamProtocolError('contentBlockStart toolUse without id or name');
          this.open.set(index, 'tool_use');
          out.push({ type: 'content_block_start', index, content_block: { type: 'tool_use', id: t.toolUseId, name: t.name, input: {} } });
        }
        break;
      }
      case 'contentBlockDelta':
        this.delta(blockIndex(payload), isRecord(payload.delta) ? payload.delta : {}, out);
        break;
      case 'contentBlockStop': {
        const index = blockIndex(payload);
        if (this.open.delete(index)) out.push({ type: 'content_block_stop', index });
        break;
      }
      case 'messageStop':
        this.closeAll(out);
        this.stopReason = converseStopToAnthropic(typeof payload.stopReason === 'string' ? payload.stopReason : undefined);
        break;
      case 'metadata': {
        if (this.stopReason === undefined) break; // usage without a finished message: not complete
        const usage = converseUsageToAnthropic(payload.usage);
        out.push({ type: 'message_delta', delta: { stop_reason: this.stopReason, stop_sequence: null }, usage });
        out.push({ type: 'message_stop' });
        this.stopped = true;
        break;
      }
      default:
        // Exceptions arrive as their own event types (throttlingException...): a mid-stream error.
        if (/Exception$/.test(eventType)) {
          throw new UpstreamStreamError(typeof payload.message === 'string' ? payload.message : 'Bedrock stream error', eventType);
        }
    }
    return out;
  }

  private start(out: AnthropicStreamEvent[]): void {
    this.started = true;
    out.push({
      type: 'message_start',
      message: { id: this.ids.id, type: 'message', role: 'assistant', model: this.ids.model, content: [], stop_reason: null, stop_sequence: null, usage: { input_tokens: 0, output_tokens: 0 } },
    });
  }

  private delta(index: number, delta: Record<string, unknown>, out: AnthropicStreamEvent[]): void {
    const ensure = (kind: 'text' | 'thinking' | 'redacted_thinking', block: AnthropicResponseBlock) => {
      if (this.open.has(index)) return;
      this.open.set(index, kind);
      out.push({ type: 'content_block_start', index, content_block: block });
    };
    if (typeof delta.text === 'string') {
      ensure('text', { type: 'text', text: '' });
      out.push({ type: 'content_block_delta', index, delta: { type: 'text_delta', text: delta.text } });
    } else if (isRecord(delta.toolUse)) {
      if (this.open.get(index) !== 'tool_use') throw new UpstreamProtocolError('toolUse delta before its contentBlockStart');
      const input = delta.toolUse.input;
      if (typeof input !== 'string') throw new UpstreamProtocolError('toolUse delta input is not a string');
      out.push({ type: 'content_block_delta', index, delta: { type: 'input_json_delta', partial_json: input } });
    } else if (isRecord(delta.reasoningContent)) {
      const r = delta.reasoningContent;
      if (typeof r.redactedContent === 'string') {
        ensure('redacted_thinking', { type: 'redacted_thinking', data: r.redactedContent });
        return;
      }
      ensure('thinking', { type: 'thinking', thinking: '', signature: '' });
      if (typeof r.text === 'string') out.push({ type: 'content_block_delta', index, delta: { type: 'thinking_delta', thinking: r.text } });
      if (typeof r.signature === 'string') out.push({ type: 'content_block_delta', index, delta: { type: 'signature_delta', signature: r.signature } });
    }
    // Other deltas (citations...) have no Anthropic client shape here and are skipped.
  }

  private closeAll(out: AnthropicStreamEvent[]): void {
    for (const index of [...this.open.keys()].sort((a, b) => a - b)) out.push({ type: 'content_block_stop', index });
    this.open.clear();
  }
}

function blockIndex(payload: Record<string, unknown>): number {
  const i = payload.contentBlockIndex;
  if (typeof i !== 'number' || !Number.isInteger(i) || i < 0 || i > 10_000) throw new UpstreamProtocolError('ConverseStream event without a valid contentBlockIndex');
  return i;
}
