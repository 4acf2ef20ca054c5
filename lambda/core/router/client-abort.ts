/**
 * A client that goes away mid-request: the signal that cuts the upstream call, the tally of what
 * was streamed before it went, and the usage the reservation is then settled to.
 *
 * Settlement after a disconnect (documented in the README):
 * - input tokens: the provider's reported count if it sent one before the cut (OpenAI-format
 *   streams report usage only at the end; Anthropic reports input at message_start), else the
 *   request's estimate (body bytes / 4, the same estimate the reservation used);
 * - output tokens: the larger of the provider's reported count and the text streamed so far
 *   (characters of text, tool-argument and reasoning deltas / 4, rounded up). A non-streamed
 *   request that is cut streamed nothing, so it settles its input estimate only.
 * The usage record says `aborted: true` and, when any part was estimated, `usageEstimated: true`.
 */
import type { SseEvent } from '../sse';
import { isRecord } from '../translate/guards';
import type { TokenUsage } from '../translate/usage';

/** Fires at the deadline or when the client goes away, whichever comes first. */
export function requestSignal(deadlineAt: number, now: () => number, client: AbortSignal | undefined): AbortSignal {
  const deadline = AbortSignal.timeout(Math.max(0, deadlineAt - now()));
  return client ? AbortSignal.any([deadline, client]) : deadline;
}

/** Keys of a delta object that carry no generated text. */
const NOT_TEXT = new Set(['type', 'role', 'id', 'index', 'name', 'stop_reason', 'stop_sequence', 'signature', 'call_id', 'item_id']);

/**
 * Counts the characters of generated text in upstream stream events, whatever the format:
 * OpenAI chat chunks (`choices[].delta`), Anthropic (`delta` of content_block_delta), Responses
 * (`delta` strings of *.delta events), and Converse-style `contentBlockDelta.delta`.
 */
export class StreamTally {
  private chars = 0;

  observe(ev: SseEvent): void {
    // Cheap filter: only events that carry a delta are parsed.
    if (!ev.data.includes('"delta"')) return;
    let payload: unknown;
    try {
      payload = JSON.parse(ev.data);
    } catch {
      return;
    }
    if (!isRecord(payload)) return;
    if (typeof payload.delta === 'string') this.chars += payload.delta.length;
    else if (isRecord(payload.delta)) this.chars += textLength(payload.delta, 0);
    if (isRecord(payload.contentBlockDelta) && isRecord(payload.contentBlockDelta.delta)) this.chars += textLength(payload.contentBlockDelta.delta, 0);
    if (Array.isArray(payload.choices)) {
      for (const c of payload.choices) if (isRecord(c) && isRecord(c.delta)) this.chars += textLength(c.delta, 0);
    }
  }

  /** Output tokens streamed so far, estimated as characters / 4 rounded up. */
  get outputTokenEstimate(): number {
    return Math.ceil(this.chars / 4);
  }
}

function textLength(v: unknown, depth: number): number {
  if (typeof v === 'string') return v.length;
  if (depth > 4) return 0;
  if (Array.isArray(v)) return v.reduce((n: number, x) => n + textLength(x, depth + 1), 0);
  if (!isRecord(v)) return 0;
  let n = 0;
  for (const [k, x] of Object.entries(v)) if (!NOT_TEXT.has(k)) n += textLength(x, depth + 1);
  return n;
}

/** The usage to settle a disconnected request to, and whether any of it is an estimate. */
export function abortedUsage(reported: TokenUsage | undefined, promptTokenEstimate: number, streamedOutputEstimate: number): { usage: TokenUsage; estimated: boolean } {
  const inputReported = (reported?.inputTokens ?? 0) > 0;
  const outputReported = reported?.outputTokens ?? 0;
  const usage: TokenUsage = {
    ...reported,
    inputTokens: inputReported ? reported!.inputTokens : promptTokenEstimate,
    outputTokens: Math.max(outputReported, streamedOutputEstimate),
  };
  return { usage, estimated: !inputReported || streamedOutputEstimate > outputReported };
}
