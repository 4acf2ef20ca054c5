/**
 * Log lines of the local gateway, batched. stdout is a synchronous write on Linux (file, pipe or
 * terminal), so a write per line puts a syscall (and a wakeup of whatever reads the pipe) on every
 * request; here lines are kept for up to `maxDelayMs` and leave in one write, in order, or sooner
 * (after the current turn's responses, setImmediate) once `maxBytes` are pending. `flush` writes
 * what is pending at once: the caller wires it to process exit (a stop by signal, an uncaught
 * error), so a stop loses nothing. A kill -9 can lose the lines of the last `maxDelayMs`; the usage
 * records, not log lines, are the durable account.
 */
import type { LogFields, Logger } from '../lambda/core/logger';

export interface BatchedWriter {
  (line: string): void;
  flush(): void;
}

export interface LineBatchOptions {
  /** Longest time a line waits; 0 writes the lines of one event-loop turn together, after it. @default 50 */
  readonly maxDelayMs?: number;
  /** Pending size (UTF-16 code units, estimated for records) that makes the batch leave after the current turn. @default 16_384 */
  readonly maxBytes?: number;
}

export const LOG_FLUSH_MS = 50;
export const LOG_FLUSH_BYTES = 16_384;

/** Items kept in order and turned into text only when they leave. */
function batched<T>(toText: (items: readonly T[]) => string, sizeOf: (item: T) => number, write: (text: string) => void, opts: LineBatchOptions) {
  const maxDelayMs = opts.maxDelayMs ?? LOG_FLUSH_MS;
  const maxBytes = opts.maxBytes ?? LOG_FLUSH_BYTES;
  let pending: T[] = [];
  let size = 0;
  let timer: NodeJS.Timeout | undefined;
  let soon = false;
  const flush = (): void => {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    soon = false;
    if (pending.length === 0) return;
    const items = pending;
    pending = [];
    size = 0;
    write(toText(items));
  };
  const add = (item: T): void => {
    pending.push(item);
    size += sizeOf(item);
    if (soon) return;
    if (maxDelayMs === 0 || size >= maxBytes) {
      soon = true;
      setImmediate(flush);
    } else if (timer === undefined) {
      // Unref'd: pending lines never keep the process alive; exit flushes them.
      timer = setTimeout(flush, maxDelayMs);
      timer.unref();
    }
  };
  return { add, flush };
}

export function batchedLines(write: (text: string) => void, opts: LineBatchOptions = {}): BatchedWriter {
  const b = batched<string>(
    (lines) => `${lines.join('\n')}\n`,
    (line) => line.length + 1,
    write,
    opts,
  );
  return Object.assign((line: string) => b.add(line), { flush: b.flush });
}

type LogRecord = readonly [level: string, message: string, at: number, fields: LogFields | undefined];

/** About one request line's length: what counts towards maxBytes before a record is formatted. */
const RECORD_SIZE_ESTIMATE = 400;

/**
 * A JSON-lines logger with the lines of `jsonLogger` (lambda/core/logger.ts: level, service,
 * message, timestamp, then the fields), formatted when the batch leaves rather than when a line
 * is logged: JSON.stringify and the timestamp's text (about 2 µs a request line) move off the
 * request's path (the local gateway logs a request's line before its last byte). The timestamp is
 * taken at the call; the fields object is read when the batch leaves, so callers pass a fresh one
 * (every call site builds it in the call; LogFields is read-only).
 */
export function batchedJsonLogger(service: string, write: (text: string) => void, opts: LineBatchOptions = {}): Logger & { flush(): void } {
  const line = ([level, message, at, fields]: LogRecord): string => JSON.stringify({ level, service, message, timestamp: new Date(at).toISOString(), ...fields });
  const b = batched<LogRecord>(
    (records) => `${records.map(line).join('\n')}\n`,
    () => RECORD_SIZE_ESTIMATE,
    write,
    opts,
  );
  return {
    info: (m, f) => b.add(['INFO', m, Date.now(), f]),
    warn: (m, f) => b.add(['WARN', m, Date.now(), f]),
    error: (m, f) => b.add(['ERROR', m, Date.now(), f]),
    flush: b.flush,
  };
}

/**
 * The local gateway's stdout log: batched as above and flushed when the process exits for any
 * reason node reports with 'exit' (the end of the event loop, process.exit after a stop signal,
 * an uncaught exception). Only SIGKILL, or a crash of node itself, skips it.
 */
export function stdoutLog(service: string, opts: LineBatchOptions = {}): Logger & { flush(): void } {
  const log = batchedJsonLogger(service, (text) => process.stdout.write(text), opts);
  process.on('exit', () => log.flush());
  return log;
}
