/**
 * Stopping the local gateway however it is run: Ctrl-C in a terminal (SIGINT to the whole
 * process group: npm forwards its own copy, so node sees SIGINT twice), SIGTERM to npm (npm
 * forwards it), SIGTERM/SIGINT/SIGHUP to node itself. The first signal starts one graceful stop;
 * copies arriving within `duplicateWindowMs` are that same request; a later one forces the exit.
 * A stop that hangs is cut off after `graceMs`. A signal during start-up exits at once: nothing is
 * answered yet, and children go with the process ('exit' handlers, moto's stdin watchdog).
 */

export type StopSignal = 'SIGINT' | 'SIGTERM' | 'SIGHUP';

export const STOP_SIGNALS: readonly StopSignal[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface LifecycleOptions {
  /** Longest graceful stop before a forced exit. @default 10_000 */
  readonly graceMs?: number;
  /** Repeats of a signal within this window are the same stop request (npm's forwarded copy). @default 1_500 */
  readonly duplicateWindowMs?: number;
  /** One line to the operator (stderr). */
  readonly say?: (line: string) => void;
  /** @default process.exit */
  readonly exit?: (code: number) => void;
  readonly now?: () => number;
}

export interface Lifecycle {
  /** What stopping means, once the gateway is up. */
  attach(stop: () => Promise<void>): void;
  /** True once a stop signal arrived. */
  readonly stopping: boolean;
  /** Removes the signal handlers (tests). */
  dispose(): void;
}

export function installLifecycle(opts: LifecycleOptions = {}): Lifecycle {
  const graceMs = opts.graceMs ?? 10_000;
  const window = opts.duplicateWindowMs ?? 1_500;
  const say = opts.say ?? ((line: string) => process.stderr.write(`${line}\n`));
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const now = opts.now ?? Date.now;
  let stopFn: (() => Promise<void>) | undefined;
  let first: { signal: StopSignal; at: number } | undefined;
  let running = false;

  const run = (): void => {
    if (running || !stopFn || !first) return;
    running = true;
    const stop = stopFn;
    const force = setTimeout(() => {
      say(`the gateway did not stop within ${graceMs} ms; exiting anyway`);
      exit(1);
    }, graceMs);
    force.unref();
    void stop().then(
      () => {
        clearTimeout(force);
        exit(0);
      },
      (err: unknown) => {
        clearTimeout(force);
        say(`stopping failed: ${(err as Error)?.message ?? String(err)}`);
        exit(1);
      },
    );
  };

  const onSignal = (signal: StopSignal): void => {
    if (!first) {
      first = { signal, at: now() };
      say(`\n${signal}: stopping...`);
      if (stopFn) return run();
      running = true; // nothing to stop yet; attach() must not start anything after this
      exit(0);
      return;
    }
    if (now() - first.at < window) return; // npm's forwarded copy of the same Ctrl-C
    say(`${signal} again: exiting now`);
    exit(1);
  };

  const handlers = STOP_SIGNALS.map((s) => [s, () => onSignal(s)] as const);
  for (const [s, h] of handlers) process.on(s, h);

  return {
    attach(stop) {
      stopFn = stop;
      run();
    },
    get stopping() {
      return first !== undefined;
    },
    dispose() {
      for (const [s, h] of handlers) process.removeListener(s, h);
    },
  };
}
