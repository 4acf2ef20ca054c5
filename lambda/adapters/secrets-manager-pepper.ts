import { GetSecretValueCommand, type SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { systemClock, type Clock, type PepperSource } from '../core/ports';
import { awsErrorName } from './aws-errors';

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
  clock?: Clock;
}

/** HMAC-SHA256 keys shorter than the hash output add no strength to the verifier. */
export const MIN_PEPPER_BYTES = 32;
const DEFAULT_TTL_MS = 15 * 60 * 1000;

/**
 * The region's verifier pepper, read from Secrets Manager once per TTL per process. It is not
 * tenant plaintext (DESIGN section 2), so caching it across requests is allowed.
 */
export class SecretsManagerPepperSource implements PepperSource {
  private readonly ttlMs: number;
  private readonly clock: Clock;
  private cached?: { pepper: Buffer; expiresAt: number };
  private inFlight?: Promise<Buffer>;

  constructor(
    private readonly client: SecretsManagerClient,
    private readonly secretId: string,
    opts: PepperSourceOptions = {},
  ) {
    this.ttlMs = opts.ttlMs ?? DEFAULT_TTL_MS;
    this.clock = opts.clock ?? systemClock;
    if (!Number.isFinite(this.ttlMs) || this.ttlMs < 0) throw new Error('ttlMs must be a finite number >= 0');
  }

  /** Returns a copy: a caller that zero-fills its pepper must not wipe the cached one. */
  async getPepper(): Promise<Buffer> {
    if (this.cached && this.clock.now().getTime() < this.cached.expiresAt) {
      return Buffer.from(this.cached.pepper);
    }
    // Concurrent cold starts share one request; a failed read clears the slot and is not cached.
    this.inFlight ??= this.read().finally(() => {
      this.inFlight = undefined;
    });
    return Buffer.from(await this.inFlight);
  }

  private async read(): Promise<Buffer> {
    let secretString: string | undefined;
    try {
      const out = await this.client.send(new GetSecretValueCommand({ SecretId: this.secretId }));
      secretString = out.SecretString;
    } catch (err) {
      const code = awsErrorName(err);
      if (code === 'ResourceNotFoundException') {
        throw new PepperError('not_found', `pepper secret not found: ${this.secretId}`, code);
      }
      throw new PepperError('unavailable', `cannot read pepper secret ${this.secretId} (${code ?? 'unknown error'})`, code);
    }
    const pepper = Buffer.from(secretString ?? '', 'utf8');
    if (pepper.length < MIN_PEPPER_BYTES) {
      const what = pepper.length === 0 ? 'has no SecretString' : `is shorter than ${MIN_PEPPER_BYTES} bytes`;
      throw new PepperError('invalid', `pepper secret ${this.secretId} ${what}`);
    }
    this.cached = { pepper, expiresAt: this.clock.now().getTime() + this.ttlMs };
    return pepper;
  }
}
