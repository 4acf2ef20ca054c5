import { installLifecycle, Lifecycle } from '../../../local/lifecycle';

let lc: Lifecycle | undefined;
afterEach(() => lc?.dispose());

function setup(opts: { graceMs?: number } = {}) {
  let t = 0;
  const exits: number[] = [];
  const lines: string[] = [];
  lc = installLifecycle({ ...opts, now: () => t, exit: (c) => void exits.push(c), say: (l) => void lines.push(l) });
  return { exits, lines, advance: (ms: number) => (t += ms) };
}

const flush = () => new Promise((r) => setImmediate(r));
const signal = (s: 'SIGINT' | 'SIGTERM' | 'SIGHUP') => process.emit(s as never);

test('one signal runs one graceful stop, then exits 0', async () => {
  const { exits, lines } = setup();
  const stop = jest.fn(async () => undefined);
  lc!.attach(stop);
  signal('SIGTERM');
  await flush();
  expect(stop).toHaveBeenCalledTimes(1);
  expect(exits).toEqual([0]);
  expect(lines.join('\n')).toContain('SIGTERM: stopping');
});

test("npm's forwarded copy of Ctrl-C is the same request, not a forced exit", async () => {
  const { exits } = setup();
  let finish!: () => void;
  const stop = jest.fn(() => new Promise<void>((r) => (finish = r)));
  lc!.attach(stop);
  signal('SIGINT');
  signal('SIGINT');
  await flush();
  expect(stop).toHaveBeenCalledTimes(1);
  expect(exits).toEqual([]);
  finish();
  await flush();
  expect(exits).toEqual([0]);
});

test('a later second signal forces the exit while a stop hangs', async () => {
  const { exits, advance, lines } = setup();
  lc!.attach(() => new Promise<void>(() => undefined));
  signal('SIGINT');
  advance(5_000);
  signal('SIGINT');
  expect(exits).toEqual([1]);
  expect(lines.join('\n')).toContain('again: exiting now');
});

test('a stop that hangs past the grace period exits 1', async () => {
  jest.useFakeTimers();
  try {
    const { exits } = setup({ graceMs: 300 });
    lc!.attach(() => new Promise<void>(() => undefined));
    signal('SIGHUP');
    jest.advanceTimersByTime(299);
    expect(exits).toEqual([]);
    jest.advanceTimersByTime(1);
    expect(exits).toEqual([1]);
  } finally {
    jest.useRealTimers();
  }
});

test('a failing stop exits 1 and says why', async () => {
  const { exits, lines } = setup();
  lc!.attach(async () => {
    throw new Error('disk full');
  });
  signal('SIGTERM');
  await flush();
  expect(exits).toEqual([1]);
  expect(lines.join('\n')).toContain('stopping failed: disk full');
});

test('a signal during start-up exits at once, and nothing runs later', async () => {
  const { exits } = setup();
  signal('SIGTERM');
  expect(exits).toEqual([0]);
  const stop = jest.fn(async () => undefined);
  lc!.attach(stop);
  await flush();
  expect(stop).not.toHaveBeenCalled();
});
