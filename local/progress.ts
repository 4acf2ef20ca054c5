/**
 * Start-up progress for `npm start`: one line per stage on stderr, with the time since start, so a
 * first start that prepares things (a new state directory, a new root key, a venv for moto) is
 * never silent, and a slow stage is visible by name.
 */
export interface Progress {
  /** A stage begins: prints `  [1.2 s] <what>...`. */
  stage(what: string): void;
  /** All stages done: prints `  [3.4 s] ready`. */
  ready(): void;
}

export function startProgress(write: (line: string) => void = (l) => process.stderr.write(`${l}\n`), now: () => number = () => performance.now()): Progress {
  const t0 = now();
  const stamp = () => `  [${((now() - t0) / 1000).toFixed(1)} s]`;
  return {
    stage(what) {
      write(`${stamp()} ${what}...`);
    },
    ready() {
      write(`${stamp()} ready`);
    },
  };
}
