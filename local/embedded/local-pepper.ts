/**
 * The local gateway's verifier pepper, standing in for the Secrets Manager secret: 48 random
 * bytes, base64url, in `<state dir>/pepper` (mode 0600), read once. Like the deployed pepper it
 * is not tenant plaintext, so it is kept in memory for the life of the process.
 *
 * Versions: the file holds either the first pepper as a bare string (version 1, as written
 * before versions existed) or, after a rotation, a JSON object with the current and the previous
 * version, each in the format of lambda/core/pepper-ring.ts. A rotation writes a temporary file
 * and renames it over the old one, so a crash leaves either the old or the new state.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, existsSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { PepperError } from '../../lambda/adapters/secrets-manager-pepper';
import { formatStoredPepper, MIN_PEPPER_BYTES, parseStoredPepper, ringOf, type StoredPepperVersion } from '../../lambda/core/pepper-ring';
import { PepperRotationConflict, systemClock, type Clock, type PepperRing, type PepperRotator, type PepperSource } from '../../lambda/core/ports';

const PEPPER_FILE = 'pepper';
const STATE_FORMAT = 'sovereign-router/local-pepper-state/v1';

interface LocalPepperState {
  current: StoredPepperVersion;
  previous?: StoredPepperVersion;
}

function parseState(text: string): LocalPepperState {
  if (text.startsWith('{')) {
    let o: { format?: unknown; current?: unknown; previous?: unknown } | undefined;
    try {
      o = JSON.parse(text) as typeof o;
    } catch {
      o = undefined;
    }
    if (o?.format === STATE_FORMAT) {
      try {
        const current = parseStoredPepper(JSON.stringify(o.current));
        const previous = o.previous === undefined ? undefined : parseStoredPepper(JSON.stringify(o.previous));
        return { current, ...(previous ? { previous } : {}) };
      } catch {
        throw new PepperError('invalid', 'the local pepper state is not valid');
      }
    }
  }
  const first = text;
  if (Buffer.byteLength(first, 'utf8') < MIN_PEPPER_BYTES) throw new PepperError('invalid', `the local pepper is shorter than ${MIN_PEPPER_BYTES} bytes`);
  return { current: { version: 1, pepper: first } };
}

function formatState(s: LocalPepperState): string {
  const v = (x: StoredPepperVersion) => JSON.parse(formatStoredPepper(x)) as unknown;
  return JSON.stringify({ format: STATE_FORMAT, current: v(s.current), ...(s.previous ? { previous: v(s.previous) } : {}) });
}

export class LocalPepper implements PepperSource, PepperRotator {
  private state: LocalPepperState;

  /** `value`: the contents of a pepper file (a bare first pepper or a rotated state). */
  constructor(
    value: string,
    private readonly file?: string,
    private readonly clock: Clock = systemClock,
  ) {
    this.state = parseState(value);
  }

  /** The pepper of a state directory, created on first use, or a new in-memory one. */
  static open(dir?: string, clock?: Clock): LocalPepper {
    if (!dir) return new LocalPepper(randomBytes(48).toString('base64url'), undefined, clock);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const file = join(dir, PEPPER_FILE);
    if (!existsSync(file)) writeFileSync(file, randomBytes(48).toString('base64url'), { mode: 0o600, flag: 'wx' });
    chmodSync(file, 0o600);
    return new LocalPepper(readFileSync(file, 'utf8'), file, clock);
  }

  /** A copy of the current pepper: a caller that zero-fills its pepper must not wipe this one. */
  async getPepper(): Promise<Buffer> {
    return Buffer.from(this.state.current.pepper, 'utf8');
  }

  /** One process holds the only copy, so a new version is issued at once (no settling time). */
  async getPeppers(): Promise<PepperRing> {
    return ringOf(this.state.current, this.state.previous, true);
  }

  /** Always in memory here: the same ring (fresh copies, which the caller zero-fills) without a promise. */
  peppersNow(): PepperRing {
    return ringOf(this.state.current, this.state.previous, true);
  }

  async rotate(expectedCurrent: number): Promise<{ version: number; rotatedAt: string }> {
    const { current } = this.state;
    if (current.version !== expectedCurrent) throw new PepperRotationConflict(current.version);
    const next: StoredPepperVersion = { version: current.version + 1, pepper: randomBytes(48).toString('base64url'), createdAt: this.clock.now().toISOString() };
    const state: LocalPepperState = { current: next, previous: current };
    if (this.file) {
      // Durable before it is used: a token moved to the new version must find it after a crash.
      const tmp = `${this.file}.${process.pid}.tmp`;
      const fd = openSync(tmp, 'w', 0o600);
      try {
        writeFileSync(fd, formatState(state));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
      renameSync(tmp, this.file);
      const dirFd = openSync(dirname(this.file), 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    }
    this.state = state;
    return { version: next.version, rotatedAt: next.createdAt! };
  }
}
