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
import { Cancellation, type DeadlineSignal } from '../routing/fallback';
import type { SseEvent } from '../sse';
import type { TokenUsage } from '../translate/usage';

/**
 * Fires at the deadline (a TimeoutError, as AbortSignal.timeout) or when the client goes away,
 * whichever comes first. A Cancellation (no AbortController: routing/fallback.ts) with one timer
 * that does not hold the event loop and one listener on the client's signal; the attempts'
 * cancellations hang off it (AbortSignal.timeout + AbortSignal.any cost several times more).
 * `dispose` when the request is over clears the timer and the client listener.
 */
export function requestSignal(deadlineAt: number, now: () => number, client: AbortSignal | undefined): { readonly signal: DeadlineSignal; dispose(): void } {
  const signal = new Cancellation();
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
