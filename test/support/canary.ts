/**
 * Canary secrets: a distinctive provider key that must never show up anywhere observable (log
 * lines, response bodies, error messages, stored attributes), in clear, base64 or hex.
 */
import { randomBytes } from 'node:crypto';
import { format, inspect } from 'node:util';

/** `sk-CANARY-<random>`: valid as a provider key (printable, no spaces), unique per call. */
export function makeCanary(tag = ''): string {
  return `sk-CANARY-${tag}${randomBytes(18).toString('base64url').replace(/[-_]/g, 'x')}`;
}

/**
 * Forms in which the canary could leak: clear text, and the base64 / base64url / hex encodings at
 * every byte alignment (a base64 substring depends on where the value starts in the encoded
 * buffer, so each of the three offsets is checked by its stable middle part).
 */
export function canaryForms(canary: string): string[] {
  const bytes = Buffer.from(canary, 'utf8');
  const forms = new Set<string>([canary, bytes.toString('hex'), bytes.toString('hex').toUpperCase(), encodeURIComponent(canary)]);
  for (let shift = 0; shift < 3; shift++) {
    const padded = Buffer.concat([Buffer.alloc(shift, 0x41), bytes]);
    for (const enc of ['base64', 'base64url'] as const) {
      const text = padded.toString(enc).replace(/=+$/, '');
      // Drop the first group (mixes in the padding bytes) and the last (mixes in what follows).
      const start = shift === 0 ? 0 : 4;
      const end = Math.floor(padded.length / 3) * 4;
      forms.add(text.slice(start, Math.max(start + 8, end)));
    }
  }
  return [...forms].filter((f) => f.length >= 8);
}

/** Which forms of any canary occur in the text (empty when clean). */
export function canaryHits(text: string, canaries: readonly string[]): string[] {
  const hits: string[] = [];
  for (const c of canaries) for (const form of canaryForms(c)) if (text.includes(form)) hits.push(form);
  return hits;
}

/** Renders an error (or anything) as fully as a logger could: message, stack, own properties, cause. */
export function renderAll(value: unknown): string {
  const parts = [inspect(value, { depth: 8, showHidden: true, maxStringLength: Infinity, maxArrayLength: Infinity })];
  if (value instanceof Error) parts.push(value.message, value.stack ?? '');
  try {
    parts.push(JSON.stringify(value) ?? '');
  } catch {
    // circular: inspect above covers it
  }
  return parts.join('\n');
}

export interface OutputCapture {
  /** Everything written to stdout/stderr and every console call while capturing. */
  readonly lines: string[];
  text(): string;
  restore(): void;
}

/**
 * Captures process.stdout/stderr writes and console calls (suppressing stdout and console, so the
 * test run stays quiet; stderr is passed through).
 */
export function captureOutput(): OutputCapture {
  const lines: string[] = [];
  const asText = (chunk: unknown): string => (typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) || chunk instanceof Uint8Array ? Buffer.from(chunk).toString('utf8') : String(chunk));
  const origStderr = process.stderr.write.bind(process.stderr);
  const spies: jest.SpyInstance[] = [
    jest.spyOn(process.stdout, 'write').mockImplementation(((chunk: unknown) => {
      lines.push(asText(chunk));
      return true;
    }) as never),
    jest.spyOn(process.stderr, 'write').mockImplementation(((chunk: unknown, ...rest: unknown[]) => {
      lines.push(asText(chunk));
      return origStderr(chunk as string, ...(rest as []));
    }) as never),
  ];
  for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
    spies.push(
      jest.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        lines.push(format(...args));
      }),
    );
  }
  return {
    lines,
    text: () => lines.join('\n'),
    restore: () => {
      for (const s of spies) s.mockRestore();
    },
  };
}
