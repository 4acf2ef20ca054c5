/**
 * Log lines of the local gateway, one event-loop turn's worth per write. stdout is a synchronous
 * write on Linux (file, pipe or terminal), so a write per line puts a syscall (and, with a slow
 * reader, a wait) on every request's path; here the lines of a turn go out together, after that
 * turn's responses were handed to their sockets (setImmediate). `flush` writes what is pending
 * at once: the caller wires it to process exit, so a stop loses nothing. A kill -9 can lose the
 * lines of the turn it lands in; the usage records, not log lines, are the durable account.
 */
export interface BatchedWriter {
  (line: string): void;
  flush(): void;
}

export function turnBatched(write: (text: string) => void): BatchedWriter {
  let pending: string[] = [];
  const flush = (): void => {
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    write(text);
  };
  const writer = (line: string): void => {
    if (pending.length === 0) setImmediate(flush);
    pending.push(`${line}\n`);
  };
  return Object.assign(writer, { flush });
}
