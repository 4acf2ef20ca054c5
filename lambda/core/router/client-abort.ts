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
import type { DeadlineSignal } from '../routing/fallback';
import type { SseEvent } from '../sse';
import type { TokenUsage } from '../translate/usage';

/**
 * Fires at the deadline (a TimeoutError, as AbortSignal.timeout) or when the client goes away,
 * whichever comes first. A plain object with one timer that does not hold the event loop and one
 * listener on the client's signal: the attempts' own AbortControllers hang off it (an
 * AbortController costs about 3 µs to make on node 20; AbortSignal.timeout + AbortSignal.any
 * several times more). Its listeners run once, in order, like an AbortSignal's `once` listeners.
 * `dispose` when the request is over clears the timer and the client listener.
 */
export function requestSignal(deadlineAt: number, now: () => number, client: AbortSignal | undefined): { readonly signal: DeadlineSignal; dispose(): void } {
  const signal = new RequestDeadline();
  const onClient = (): void => signal.abort(client?.reason);
  const timer = setTimeout(() => signal.abort(new DOMException('The request deadline passed', 'TimeoutError')), Math.max(0, deadlineAt - now()));
  timer.unref();
  if (client?.aborted) onClient();
  else client?.addEventListener('abort', onClient, { once: true });
  return {
    signal,
    dispose() {
      clearTimeout(timer);
      client?.removeEventListener('abort', onClient);
    },
  };
}

class RequestDeadline implements DeadlineSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: (() => void)[] = [];

  abort(reason: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason;
    const listeners = this.listeners;
    this.listeners = [];
    for (const l of listeners) l();
  }

  /** Every listener runs at most once (as with `{ once: true }`); none is added once aborted, as with AbortSignal. */
  addEventListener(_type: 'abort', listener: () => void): void {
    if (!this.aborted && !this.listeners.includes(listener)) this.listeners.push(listener);
  }

  removeEventListener(_type: 'abort', listener: () => void): void {
    const i = this.listeners.indexOf(listener);
    if (i >= 0) this.listeners.splice(i, 1);
  }
}

/** A JSON string member whose value is generated text, in the stream formats the router reads. */
const TEXT_MEMBER = /"(?:content|text|delta|partial_json|arguments|thinking|reasoning_content|input)":"((?:[^"\\]|\\.)*)"/g;

/**
 * Counts the characters of generated text in upstream stream events, whatever the format:
 * OpenAI chat chunks (`choices[].delta.content`, tool-call `arguments`), Anthropic
 * (`delta.text`, `delta.partial_json`, `delta.thinking`), Responses (`delta` strings of *.delta
 * events) and Converse (`delta.text`, `delta.toolUse.input`). Every text-bearing event of these
 * formats names a delta, so other events are skipped with one substring test; values are
 * measured on the JSON text (escapes count as written) without parsing it: this runs on every
 * streamed event, and an estimate needs no more (one regex pass is about 4x cheaper than
 * JSON.parse on a typical chunk).
 */
export class StreamTally {
  private chars = 0;

  observe(ev: SseEvent): void {
    const d = ev.data;
    if (!d.includes('delta')) return;
    TEXT_MEMBER.lastIndex = 0;
    for (let m = TEXT_MEMBER.exec(d); m !== null; m = TEXT_MEMBER.exec(d)) this.chars += m[1].length;
  }

  /** Output tokens streamed so far, estimated as characters / 4 rounded up. */
  get outputTokenEstimate(): number {
    return Math.ceil(this.chars / 4);
  }
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
