/** Small runtime checks: translated bodies come from untrusted JSON despite their static types. */
import { TranslationError } from './errors';

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function requireRecord(value: unknown, param: string): Record<string, unknown> {
  if (!isRecord(value)) throw new TranslationError('must be an object', param);
  return value;
}

export function requireString(value: unknown, param: string): string {
  if (typeof value !== 'string') throw new TranslationError('must be a string', param);
  return value;
}

export function optionalNumber(value: unknown, param: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw new TranslationError('must be a number', param);
  return value;
}

export function optionalPositiveInt(value: unknown, param: string): number | undefined {
  const n = optionalNumber(value, param);
  if (n !== undefined && (!Number.isInteger(n) || n < 1)) {
    throw new TranslationError('must be a positive integer', param);
  }
  return n;
}

/** Parses a `data:<mime>;base64,<payload>` URL; undefined for anything else. */
export function parseBase64DataUrl(url: string): { mediaType: string; data: string } | undefined {
  const m = /^data:([^;,]+);base64,(.*)$/s.exec(url);
  return m ? { mediaType: m[1], data: m[2] } : undefined;
}
