/**
 * Timeouts on one timer (lambda/core/timeout-queue.ts: the router's deadlines, the transport's first-byte timeouts): each fires
 * once, not before its time, in time order; a removed one never fires; one call at a time arms
 * one node timer, not one per call.
 */
import { TimeoutQueue } from '../../../lambda/core/timeout-queue';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('each timeout fires once, not before its time, in time order (one added later for an earlier time too); a removed one never fires', async () => {
  const q = new TimeoutQueue();
  const fired: [string, number][] = [];
  const t0 = Date.now();
  const at = (name: string) => () => fired.push([name, Date.now() - t0]);
  q.add(80, at('c'));
  q.add(40, at('b'));
  const gone = q.add(60, at('removed'));
  q.add(20, at('a'));
  q.remove(gone);
  q.remove(gone);
  await sleep(200);
  expect(fired.map(([n]) => n)).toEqual(['a', 'b', 'c']);
  for (const [name, ms] of fired) expect(ms).toBeGreaterThanOrEqual({ a: 20, b: 40, c: 80 }[name]! - 1);
});

test('one call at a time: one node timer for many calls, and it does not keep the process alive', () => {
  const q = new TimeoutQueue();
  const spy = jest.spyOn(global, 'setTimeout');
  try {
    for (let i = 0; i < 100; i++) q.remove(q.add(60_000, () => undefined));
    expect(spy).toHaveBeenCalledTimes(1);
    const timer = spy.mock.results[0].value as NodeJS.Timeout;
    expect(timer.hasRef()).toBe(false);
  } finally {
    spy.mockRestore();
  }
});

test('a timeout that throws keeps none of the others due with it from firing; its error reaches the timer\'s caller', () => {
  jest.useFakeTimers();
  try {
    const q = new TimeoutQueue();
    const fired: string[] = [];
    q.add(10, () => {
      fired.push('first');
      throw new Error('boom');
    });
    q.add(10, () => fired.push('second'));
    q.add(30, () => fired.push('later'));
    expect(() => jest.advanceTimersByTime(15)).toThrow('boom');
    expect(fired).toEqual(['first', 'second']);
    jest.advanceTimersByTime(20);
    expect(fired).toEqual(['first', 'second', 'later']);
  } finally {
    jest.useRealTimers();
  }
});

test('after the list empties, a later call is still timed from its own start', async () => {
  const q = new TimeoutQueue();
  q.remove(q.add(30, () => undefined));
  await sleep(50);
  let firedAt: number | undefined;
  const t0 = Date.now();
  q.add(40, () => (firedAt = Date.now() - t0));
  await sleep(120);
  expect(firedAt).toBeGreaterThanOrEqual(39);
});
