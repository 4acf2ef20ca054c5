import { randomBytes } from 'node:crypto';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { formatStoredPepper, MIN_PEPPER_BYTES, parseStoredPepper, PepperFormatError, ringOf, type StoredPepperVersion } from '../core/pepper-ring';
import { PepperRotationConflict, systemClock, type Clock, type PepperRing, type PepperRotator, type PepperSource } from '../core/ports';
import { awsErrorName } from './aws-errors';
import { rpcOf, SECRETS_MANAGER, type AwsRpc } from './aws-rpc';

/** `not_found`: no such secret; `invalid`: empty or too short; `unavailable`: anything else. */
export type PepperErrorReason = 'not_found' | 'invalid' | 'unavailable';

/** Names the secret (an id, not secret) but never its value or the SDK's message. */
export class PepperError extends Error {
  override readonly name = 'PepperError';

  constructor(
    readonly reason: PepperErrorReason,
    message: string,
    readonly awsCode?: string,
  ) {
    super(message);
  }
}

export interface PepperSourceOptions {
  /** How long one read is reused; default 15 minutes. */
  ttlMs?: number;
  /**
   * How long after a rotation new verifiers are still written under the previous version:
   * until every process's cache has expired and knows the new one. Default: ttlMs.
   */
  settleMs?: number;
  clock?: Clock;
  /** Random bytes for new versions (tests). */
  randomBytes?: (n: number) => Buffer;
}

export { MIN_PEPPER_BYTES };
const DEFAULT_TTL_MS = 15 * 60 * 1000;
const PREVIOUS = 'AWSPREVIOUS';

/** Idempotency token of the PutSecretValue that creates `version`: a second rotator from the same version collides. */
export const rotationRequestToken = (version: number) => `sovereign-router-pepper-v${String(version).padStart(10, '0')}`;

interface CachedRing {
  current: StoredPepperVersion;
  previous?: StoredPepperVersion;
}

/**
 * The region's verifier pepper, read from Secrets Manager once per TTL per process: the
 * AWSCURRENT version and, once a rotation happened, AWSPREVIOUS. It is
 * not tenant plaintext (DESIGN section 2), so caching it across requests is allowed. A rotation
 * is a PutSecretValue of the next version, which moves AWSCURRENT to it and AWSPREVIOUS to the
 * version before.
 */
export class SecretsManagerPepperSource implements PepperSource, PepperRotator {
  private readonly ttlMs: number;
  private readonly settleMs: number;
  private readonly clock: Clock;
  private readonly random: (n: number) => Buffer;
  private cached?: { ring: CachedRing; expiresAt: number };
  private inFlight?: Promise<CachedRing>;
  private readonly rpc: AwsRpc;

  /** `client`: the lean client (aws-json-client.ts) or any rpc of the seam; an SDK SecretsManagerClient still works. */
  constructor(
    client: AwsRpc | SecretsManagerClient,
    private readonly secretId: string,
    opts: PepperSourceOptions = {},
  ) {
    this.rpc = rpcOf(client, SECRETS_MANAGER);
    this.ttlMs = opts.ttlMs ?? DEFAULT_TTL_MS;
    this.settleMs = opts.settleMs ?? this.ttlMs;
    this.clock = opts.clock ?? systemClock;
    this.random = opts.randomBytes ?? randomBytes;
    if (!Number.isFinite(this.ttlMs) || this.ttlMs < 0) throw new Error('ttlMs must be a finite number >= 0');
    if (!Number.isFinite(this.settleMs) || this.settleMs < 0) throw new Error('settleMs must be a finite number >= 0');
  }

  /** The current pepper, a copy: a caller that zero-fills its pepper must not wipe the cached one. */
  async getPepper(): Promise<Buffer> {
    return Buffer.from((await this.ring()).current.pepper, 'utf8');
  }

  /** Current and previous, copies. */
  async getPeppers(): Promise<PepperRing> {
    return this.ringCopies(await this.ring());
  }

  /** The same as getPeppers while the cached versions are within their TTL; undefined when they must be read. */
  peppersNow(): PepperRing | undefined {
    if (!this.cached || this.clock.now().getTime() >= this.cached.expiresAt) return undefined;
    return this.ringCopies(this.cached.ring);
  }

  private ringCopies(r: CachedRing): PepperRing {
    const created = r.current.createdAt ? Date.parse(r.current.createdAt) : undefined;
    const settled = created === undefined || this.clock.now().getTime() >= created + this.settleMs;
    return ringOf(r.current, r.previous, settled);
  }

  async rotate(expectedCurrent: number): Promise<{ version: number; rotatedAt: string }> {
    this.cached = undefined;
    const { current } = await this.ring();
    if (current.version !== expectedCurrent) throw new PepperRotationConflict(current.version);
    const next: StoredPepperVersion = {
      version: current.version + 1,
      pepper: this.random(48).toString('base64url'),
      createdAt: this.clock.now().toISOString(),
    };
    try {
      await this.rpc.send('PutSecretValue', { SecretId: this.secretId, SecretString: formatStoredPepper(next), ClientRequestToken: rotationRequestToken(next.version) });
    } catch (err) {
      const code = awsErrorName(err);
      // Another rotator created this version first (same idempotency token, other value).
      if (code === 'ResourceExistsException') {
        this.cached = undefined;
        throw new PepperRotationConflict((await this.ring()).current.version);
      }
      throw new PepperError('unavailable', `cannot rotate pepper secret ${this.secretId} (${code ?? 'unknown error'})`, code);
    } finally {
      this.cached = undefined;
    }
    return { version: next.version, rotatedAt: next.createdAt! };
  }

  private async ring(): Promise<CachedRing> {
    if (this.cached && this.clock.now().getTime() < this.cached.expiresAt) return this.cached.ring;
    // Concurrent cold starts share one request; a failed read clears the slot and is not cached.
    this.inFlight ??= this.read().finally(() => {
      this.inFlight = undefined;
    });
    return this.inFlight;
  }

  private async read(): Promise<CachedRing> {
    const current = await this.readStage(undefined);
    if (!current) throw new PepperError('not_found', `pepper secret not found: ${this.secretId}`, 'ResourceNotFoundException');
    // The first pepper (version 1) has no previous: a cell never rotated reads one version. After
    // a rotation AWSPREVIOUS counts only if it is exactly current - 1.
    const previous = current.version > 1 ? await this.readStage(PREVIOUS) : undefined;
    const ring: CachedRing = { current, ...(previous && previous.version === current.version - 1 ? { previous } : {}) };
    this.cached = { ring, expiresAt: this.clock.now().getTime() + this.ttlMs };
    return ring;
  }

  /** One staged version; undefined when the secret (or, for AWSPREVIOUS, the stage) does not exist. */
  private async readStage(stage: string | undefined): Promise<StoredPepperVersion | undefined> {
    let secretString: string | undefined;
    try {
      const out = await this.rpc.send<{ SecretString?: string }>('GetSecretValue', { SecretId: this.secretId, ...(stage ? { VersionStage: stage } : {}) });
      secretString = typeof out.SecretString === 'string' ? out.SecretString : undefined;
    } catch (err) {
      const code = awsErrorName(err);
      if (code === 'ResourceNotFoundException') {
        if (stage) return undefined;
        throw new PepperError('not_found', `pepper secret not found: ${this.secretId}`, code);
      }
      throw new PepperError('unavailable', `cannot read pepper secret ${this.secretId} (${code ?? 'unknown error'})`, code);
    }
    const label = stage ? ` (${stage})` : '';
    const text = secretString ?? '';
    if (text.length === 0) throw new PepperError('invalid', `pepper secret ${this.secretId}${label} has no SecretString`);
    try {
      return parseStoredPepper(text);
    } catch (err) {
      if (err instanceof PepperFormatError && err.field === 'pepper') {
        throw new PepperError('invalid', `pepper secret ${this.secretId}${label} is shorter than ${MIN_PEPPER_BYTES} bytes`);
      }
      throw new PepperError('invalid', `pepper secret ${this.secretId}${label} is not a valid pepper value`);
    }
  }
}
