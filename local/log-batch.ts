/**
 * Log lines of the local gateway, batched. A write per line puts a syscall (and a wakeup of
 * whatever reads the pipe) on every request; here lines are kept for up to `maxDelayMs` and leave
 * in one write, in order, or sooner (after the current turn's responses, setImmediate) once
 * `maxBytes` are pending. `flush` writes what is pending at once: the caller wires it to process
 * exit (a stop by signal, an uncaught error), so a stop loses nothing. A kill -9 can lose the lines
 * of the last `maxDelayMs`; the usage records, not log lines, are the durable account.
 *
 * stdout is a synchronous write for a file or a terminal, but not for a pipe (`npm start | tee`,
 * a supervisor, a container runtime): node keeps what the pipe cannot take in memory without
 * bound, drops it at process.exit, and a reader that goes away (EPIPE) is an uncaught error that
 * ends the process. The stdout log therefore writes to the file descriptor itself (fdSink).
 */
import { writeSync } from 'node:fs';
import { isoTime } from '../lambda/core/iso-time';
import { logLine, type LogFields, type LogLevel, type Logger } from '../lambda/core/logger';

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

type LogRecord = readonly [level: LogLevel, message: string, at: number, fields: LogFields | undefined];

/** About one request line's length: what counts towards maxBytes before a record is formatted. */
const RECORD_SIZE_ESTIMATE = 400;

/**
 * A JSON-lines logger with the lines of `jsonLogger` (lambda/core/logger.ts: level, service,
 * message, timestamp, then the fields), formatted when the batch leaves rather than when a line
 * is logged: JSON.stringify and the timestamp's text (about 2 µs a request line) move off the
 * request's path (the local gateway logs a request's line before its last byte). The timestamp is
 * taken at the call, and so are the fields: a shallow copy (their values are strings, numbers and
 * booleans), so a caller that changes or reuses its object afterwards (a key or a token added to it)
 * changes nothing that is written.
 */
export function batchedJsonLogger(service: string, write: (text: string) => void, opts: LineBatchOptions = {}): Logger & { flush(): void } {
  const serviceJson = JSON.stringify(service);
  // jsonLogger's line (lambda/core/logger.ts); lines of one millisecond share its timestamp text.
  let lastAt = Number.NaN;
  let lastTimestamp = '';
  const line = ([level, message, at, fields]: LogRecord): string => {
    if (at !== lastAt) {
      lastAt = at;
      lastTimestamp = isoTime(at);
    }
    return logLine(service, serviceJson, level, message, lastTimestamp, fields);
  };
  const b = batched<LogRecord>(
    (records) => `${records.map(line).join('\n')}\n`,
    () => RECORD_SIZE_ESTIMATE,
    write,
    opts,
  );
  const own = (f: LogFields | undefined): LogFields | undefined => (f === undefined ? undefined : { ...f });
  return {
    info: (m, f) => b.add(['INFO', m, Date.now(), own(f)]),
    warn: (m, f) => b.add(['WARN', m, Date.now(), own(f)]),
    error: (m, f) => b.add(['ERROR', m, Date.now(), own(f)]),
    flush: b.flush,
  };
}

export interface FdSinkOptions {
  /** @default 1 (stdout) */
  readonly fd?: number;
  /** Text kept while the reader is behind; lines beyond it are dropped and counted. @default 1 MiB */
  readonly maxPendingBytes?: number;
  /** Longest wait at exit for a reader that is behind. @default 1_000 */
  readonly exitWaitMs?: number;
  /** The line that says how many lines were dropped (written in order, where they were). */
  readonly droppedLine: (count: number) => string;
  /** One note to the operator (stderr). */
  readonly say?: (line: string) => void;
}

export interface FdSink {
  (text: string): void;
  /** Writes what is pending now, waiting up to `exitWaitMs` for the reader (process exit). */
  flushSync(): void;
}

const RETRY_MS = 10;
const linesIn = (text: string): number => {
  let n = 0;
  for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) n++;
  return n;
};

/**
 * Text written to a file descriptor with non-blocking writes, in order, from a queue of its own:
 * bounded (a reader that stops reading costs at most `maxPendingBytes`; newer lines are then
 * dropped and one line counts them), written out at exit (a bounded wait for the reader, so a stop
 * right after a burst loses nothing), and a reader that is gone (EPIPE) only ends the log.
 */
export function fdSink(opts: FdSinkOptions): FdSink {
  const fd = opts.fd ?? 1;
  const maxPending = opts.maxPendingBytes ?? 1024 * 1024;
  const exitWaitMs = opts.exitWaitMs ?? 1_000;
  const say = opts.say ?? ((line: string) => console.error(line));
  const queue: Buffer[] = [];
  let offset = 0; // written part of queue[0]
  let pendingBytes = 0;
  let dropped = 0;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;

  const close = (err: unknown): void => {
    closed = true;
    for (const b of queue) dropped += linesIn(b.toString('utf8'));
    queue.length = 0;
    pendingBytes = 0;
    say(`sovereign-router local gateway: stdout is closed (${(err as { code?: string })?.code ?? 'write error'}); request log lines are no longer written`);
  };
  /** Writes until done or the reader is full; true when nothing is left. */
  const pump = (): boolean => {
    while (queue.length > 0) {
      const head = queue[0];
      let n: number;
      try {
        n = writeSync(fd, head, offset, head.length - offset);
      } catch (err) {
        if ((err as { code?: string }).code === 'EAGAIN') return false;
        close(err);
        return true;
      }
      offset += n;
      if (offset === head.length) {
        queue.shift();
        pendingBytes -= head.length;
        offset = 0;
      }
    }
    return true;
  };
  const pumpLater = (): void => {
    retry = undefined;
    if (!pump()) schedule();
  };
  const schedule = (): void => {
    if (retry !== undefined) return;
    // Unref'd: a reader that is behind never keeps the process alive; exit writes what is left.
    retry = setTimeout(pumpLater, RETRY_MS);
    retry.unref();
  };
  const enqueue = (text: string): void => {
    const buf = Buffer.from(text, 'utf8');
    queue.push(buf);
    pendingBytes += buf.length;
  };
  const sink = (text: string): void => {
    if (closed) return;
    if (pendingBytes + text.length * 3 > maxPending && pendingBytes + Buffer.byteLength(text) > maxPending) {
      dropped += linesIn(text);
      return;
    }
    if (dropped > 0) {
      enqueue(opts.droppedLine(dropped));
      dropped = 0;
    }
    enqueue(text);
    if (retry === undefined && !pump()) schedule();
  };
  sink.flushSync = (): void => {
    if (closed) return;
    if (retry !== undefined) clearTimeout(retry);
    retry = undefined;
    if (dropped > 0) {
      enqueue(opts.droppedLine(dropped));
      dropped = 0;
    }
    const wake = new Int32Array(new SharedArrayBuffer(4));
    const deadline = Date.now() + exitWaitMs;
    while (!pump()) {
      if (Date.now() >= deadline) {
        const lost = queue.reduce((n, b) => n + linesIn(b.toString('utf8')), 0);
        say(`sovereign-router local gateway: ${lost} request log lines not written at exit (stdout not read for ${exitWaitMs} ms)`);
        return;
      }
      Atomics.wait(wake, 0, 0, 1);
    }
  };
  return sink;
}

/**
 * The local gateway's stdout log: batched as above, written through fdSink, and flushed when the
 * process exits for any reason node reports with 'exit' (the end of the event loop, process.exit
 * after a stop signal, an uncaught exception). Only SIGKILL, or a crash of node itself, skips it.
 */
export function stdoutLog(service: string, opts: LineBatchOptions & Partial<Pick<FdSinkOptions, 'maxPendingBytes' | 'exitWaitMs'>> = {}): Logger & { flush(): void } {
  // Whatever console.log wrote before is handed to the pipe first (node's stdout is created here
  // if it was not: for a pipe that makes the descriptor non-blocking, so no write here blocks).
  const fd = process.stdout.fd;
  const sink = fdSink({
    fd,
    maxPendingBytes: opts.maxPendingBytes,
    exitWaitMs: opts.exitWaitMs,
    droppedLine: (count) =>
      `${JSON.stringify({ level: 'WARN', service, message: 'log lines dropped: stdout was not read fast enough', timestamp: new Date().toISOString(), dropped: count })}\n`,
  });
  const log = batchedJsonLogger(service, sink, opts);
  process.on('exit', () => {
    log.flush();
    sink.flushSync();
  });
  return log;
}
