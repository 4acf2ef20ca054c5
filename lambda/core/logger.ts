/**
 * A small structured logger (JSON lines). It takes only scalar fields chosen by the caller,
 * never request bodies or headers, so a secret cannot reach a log line by accident.
 */
import { isoTime } from './iso-time';

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

/** The members every line starts with, in this order. */
const OWN_MEMBERS = ['level', 'service', 'message', 'timestamp'] as const;

/**
 * Fields that a spread would place or treat differently from appending their own text: a fixed
 * member's name (it replaces the member), a `toJSON`, or an array-index key (objects list those
 * first; for-in does too, so the first key tells).
 */
function needsSpread(fields: LogFields): boolean {
  if (OWN_MEMBERS.some((k) => k in fields) || 'toJSON' in fields) return true;
  for (const k in fields) return ARRAY_INDEX.test(k) && Number(k) < 2 ** 32 - 1;
  return false;
}
const ARRAY_INDEX = /^(?:0|[1-9]\d{0,9})$/;

export type LogLevel = 'INFO' | 'WARN' | 'ERROR';

/**
 * One line, as `JSON.stringify({ level, service, message, timestamp, ...fields })` writes it: the
 * fixed members written as text and the caller's fields stringified once, not spread into a second
 * object first (one line per request: this is on every request's path). Fields that would replace
 * a fixed member take the spread, which gives exactly the same line. `serviceJson` is
 * `JSON.stringify(service)`, made once by the caller.
 */
export function logLine(service: string, serviceJson: string, level: LogLevel, message: string, timestamp: string, fields?: LogFields): string {
  if (fields !== undefined && needsSpread(fields)) return JSON.stringify({ level, service, message, timestamp, ...fields });
  const head = `{"level":"${level}","service":${serviceJson},"message":${JSON.stringify(message)},"timestamp":"${timestamp}"`;
  const rest = fields === undefined ? '{}' : JSON.stringify(fields);
  return rest === '{}' ? `${head}}` : `${head},${rest.slice(1)}`;
}

export function jsonLogger(service: string, write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Logger {
  const serviceJson = JSON.stringify(service);
  const emit = (level: LogLevel, message: string, fields?: LogFields) => write(logLine(service, serviceJson, level, message, isoTime(Date.now()), fields));
  return {
    info: (m, f) => emit('INFO', m, f),
    warn: (m, f) => emit('WARN', m, f),
    error: (m, f) => emit('ERROR', m, f),
  };
}
