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
import { callEach, Cancellation, type DeadlineSignal } from '../routing/fallback';
import type { SseEvent } from '../sse';
import { TimeoutQueue } from '../timeout-queue';
import type { TokenUsage } from '../translate/usage';

/**
 * Fires at the deadline (a TimeoutError, as AbortSignal.timeout) or when the client goes away,
 * whichever comes first. A Cancellation (no AbortController: routing/fallback.ts) on two shared
 * watchers instead of a timer and an EventTarget listener of its own: node's setTimeout and
 * clearTimeout, and addEventListener and removeEventListener on the client's AbortSignal, were
 * about a tenth of the router's own CPU per request. `dispose` when the request is over takes it
 * off both (it then never fires).
 */
export function requestSignal(deadlineAt: number, now: () => number, client: AbortSignal | undefined): { readonly signal: DeadlineSignal; dispose(): void } {
  const signal = new Cancellation();
  const deadline = deadlines.add(Math.max(0, deadlineAt - now()), () => signal.abort(new DOMException('The request deadline passed', 'TimeoutError')));
  if (client?.aborted) signal.abort(client.reason);
  else if (client) watchClient(client, signal);
  return {
    signal,
    dispose() {
      deadlines.remove(deadline);
      if (client) clientWatch.get(client)?.delete(signal);
    },
  };
}

/**
 * The requests in flight on each client signal (the local gateway hands every request of one
 * connection the same signal): one listener per signal, added by its first request, aborts them
 * all in the order they came. Held weakly by the signal; a request leaves its set at dispose.
 * Nothing secret is held: Cancellations only.
 */
const clientWatch = new WeakMap<AbortSignal, Set<Cancellation>>();

function watchClient(client: AbortSignal, signal: Cancellation): void {
  let set = clientWatch.get(client);
  if (set === undefined) {
    const watched = (set = new Set());
    clientWatch.set(client, watched);
    client.addEventListener(
      'abort',
      () => {
        clientWatch.delete(client);
        abortAll([...watched], () => client.reason);
        watched.clear();
      },
      { once: true },
    );
  }
  set.add(signal);
}

/** Aborts each (all of them, even if one throws: a later one may be what cuts an upstream call); then the first error. */
function abortAll(signals: readonly Cancellation[], reason: () => unknown): void {
  callEach(signals, (s) => s.abort(reason()));
}

/**
 * Every request's deadline on one timer (timeout-queue.ts): it fires with the TimeoutError of
 * AbortSignal.timeout.
 */
const deadlines = new TimeoutQueue();

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
