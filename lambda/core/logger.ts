/**
 * A small structured logger (JSON lines). It takes only scalar fields chosen by the caller,
 * never request bodies or headers, so a secret cannot reach a log line by accident.
 */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

export interface Logger {
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

export function errorFields(err: unknown): LogFields {
  const e = err as { name?: unknown; reason?: unknown; code?: unknown } | undefined;
  // Names and reason codes only: SDK messages can quote request parameters.
  return {
    errorName: typeof e?.name === 'string' ? e.name : typeof err,
    errorReason: typeof e?.reason === 'string' ? e.reason : typeof e?.code === 'string' ? e.code : undefined,
  };
}

export function jsonLogger(service: string, write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Logger {
  const emit = (level: string, message: string, fields?: LogFields) =>
    write(JSON.stringify({ level, service, message, timestamp: new Date().toISOString(), ...fields }));
  return {
    info: (m, f) => emit('INFO', m, f),
    warn: (m, f) => emit('WARN', m, f),
    error: (m, f) => emit('ERROR', m, f),
  };
}
