/**
 * Log lines of the local gateway, batched. stdout is a synchronous write on Linux (file, pipe or
 * terminal), so a write per line puts a syscall (and a wakeup of whatever reads the pipe) on every
 * request; here lines are kept for up to `maxDelayMs` and leave in one write, in order, or sooner
 * (after the current turn's responses, setImmediate) once `maxBytes` are pending. `flush` writes
 * what is pending at once: the caller wires it to process exit (a stop by signal, an uncaught
 * error), so a stop loses nothing. A kill -9 can lose the lines of the last `maxDelayMs`; the usage
 * records, not log lines, are the durable account.
 */
export interface BatchedWriter {
  (line: string): void;
  flush(): void;
}

export interface LineBatchOptions {
  /** Longest time a line waits; 0 writes the lines of one event-loop turn together, after it. @default 50 */
  readonly maxDelayMs?: number;
  /** Pending bytes (UTF-16 code units) that make the batch leave after the current turn. @default 16_384 */
  readonly maxBytes?: number;
}

export const LOG_FLUSH_MS = 50;
export const LOG_FLUSH_BYTES = 16_384;

export function batchedLines(write: (text: string) => void, opts: LineBatchOptions = {}): BatchedWriter {
  const maxDelayMs = opts.maxDelayMs ?? LOG_FLUSH_MS;
  const maxBytes = opts.maxBytes ?? LOG_FLUSH_BYTES;
  let pending = '';
  let timer: NodeJS.Timeout | undefined;
  let soon = false;
  const flush = (): void => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    soon = false;
    if (pending.length === 0) return;
    const text = pending;
    pending = '';
    write(text);
  };
  const writer = (line: string): void => {
    pending += `${line}\n`;
    if (soon) return;
    if (maxDelayMs === 0 || pending.length >= maxBytes) {
      soon = true;
      setImmediate(flush);
    } else if (timer === undefined) {
      // Unref'd: pending lines never keep the process alive; exit flushes them.
      timer = setTimeout(flush, maxDelayMs);
      timer.unref();
    }
  };
  return Object.assign(writer, { flush });
}

/**
 * The local gateway's stdout lines: batched as above and flushed when the process exits for any
 * reason node reports with 'exit' (the end of the event loop, process.exit after a stop signal,
 * an uncaught exception). Only SIGKILL, or a crash of node itself, skips it.
 */
export function stdoutLines(opts: LineBatchOptions = {}): BatchedWriter {
  const lines = batchedLines((text) => process.stdout.write(text), opts);
  process.on('exit', () => lines.flush());
  return lines;
}
