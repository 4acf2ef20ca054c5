/**
 * Many timeouts on one timer: the router's request deadlines (router/client-abort.ts) and the
 * provider transport's first-byte timeouts (adapters/node-http-transport.ts). A node timer per
 * call costs, at one request at a time, a timer list made and dropped per request (its heap entry,
 * libuv's timer re-armed, the loop's ref taken and given back: four calls into node's C++ per
 * request, all before the answer). Here a call joins a list ordered by time (from the end, where
 * the latest are: with one timeout for every call, joining is O(1)) and leaves it when its answer
 * starts; one unref'd timer is armed for the earliest and left running when the list empties, so
 * at one request at a time there is one setTimeout per timeout period. It fires what is due and
 * re-arms for the next.
 */
import { callEach } from './routing/fallback';

export interface QueuedTimeout {
  readonly at: number;
  readonly fire: () => void;
  prev?: QueuedTimeout;
  next?: QueuedTimeout;
  linked: boolean;
}

export class TimeoutQueue {
  private head?: QueuedTimeout;
  private tail?: QueuedTimeout;
  private timer?: ReturnType<typeof setTimeout>;
  private timerAt = Number.POSITIVE_INFINITY;

  /** Calls `fire` once, `delayMs` from now, unless removed before. */
  add(delayMs: number, fire: () => void): QueuedTimeout {
    const t: QueuedTimeout = { at: Date.now() + delayMs, fire, linked: true };
    let after = this.tail;
    while (after !== undefined && after.at > t.at) after = after.prev;
    t.prev = after;
    t.next = after === undefined ? this.head : after.next;
    if (t.next) t.next.prev = t;
    else this.tail = t;
    if (after) after.next = t;
    else this.head = t;
    // Armed for a later time than this one, or overdue by a second (a timer that can no longer
    // fire, e.g. one made under a test's fake clock): armed again for the earliest.
    if (t.at < this.timerAt || this.timerAt + 1000 < Date.now()) this.arm(this.head!.at);
    return t;
  }

  remove(t: QueuedTimeout): void {
    if (!t.linked) return;
    t.linked = false;
    if (t.prev) t.prev.next = t.next;
    else this.head = t.next;
    if (t.next) t.next.prev = t.prev;
    else this.tail = t.prev;
    t.prev = t.next = undefined;
  }

  private arm(at: number): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => this.due(), Math.max(0, at - Date.now()));
    this.timer.unref();
  }

  private due(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const due: QueuedTimeout[] = [];
    const now = Date.now();
    while (this.head !== undefined && this.head.at <= now) {
      due.push(this.head);
      this.remove(this.head);
    }
    if (this.head !== undefined) this.arm(this.head.at);
    // Each fires even if an earlier one throws (a later one may be what cuts an upstream call).
    callEach(due, (t) => t.fire());
  }
}
