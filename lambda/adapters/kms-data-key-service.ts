import type { KMSClient } from '@aws-sdk/client-kms';
import type { DataKeyService, EncryptionContext, GeneratedDataKey } from '../core/ports';
import type { TenantKeyScoping } from '../core/tenant-keys';
import { awsErrorName, awsRequestId } from './aws-errors';
import { KMS, rpcOf, type AwsRpc } from './aws-rpc';

/**
 * Why a KMS operation failed, as far as callers need to know:
 * - `invalid_ciphertext`: the wrapped key does not authenticate under this context (tampered or
 *   swapped row). Not retryable.
 * - `denied`: the record is bound to a key we may not or will not use (IAM/key policy, a KeyId that
 *   does not match the ciphertext, a record naming another key). Not retryable.
 * - `unavailable`: the key or KMS cannot serve now (missing, disabled, pending deletion, throttled,
 *   network). Maybe retryable.
 */
export type KeyServiceErrorReason = 'denied' | 'invalid_ciphertext' | 'unavailable';
export type KeyServiceOperation = 'GenerateDataKey' | 'Decrypt' | 'ReEncrypt';

/** Carries no ciphertext, context value or SDK message: only codes that are safe to log. */
export class KeyServiceError extends Error {
  override readonly name = 'KeyServiceError';

  constructor(
    readonly reason: KeyServiceErrorReason,
    readonly operation: KeyServiceOperation,
    /** The AWS error code, e.g. 'InvalidCiphertextException'; undefined when we refused ourselves. */
    readonly awsCode?: string,
    readonly requestId?: string,
    /** The call went to a tenant-held key (bring your own key): a refusal is the tenant's doing. */
    readonly tenantKey?: boolean,
  ) {
    super(`KMS ${operation} failed: ${reason}${awsCode ? ` (${awsCode})` : ''}${tenantKey ? ' [tenant-held key]' : ''}`);
  }
}

const REASON_BY_CODE: Readonly<Record<string, KeyServiceErrorReason>> = {
  InvalidCiphertextException: 'invalid_ciphertext',
  IncorrectKeyException: 'denied',
  AccessDeniedException: 'denied',
  NotFoundException: 'unavailable',
  DisabledException: 'unavailable',
  KMSInvalidStateException: 'unavailable',
  KeyUnavailableException: 'unavailable',
};

const DATA_KEY_BYTES = 32;
// A single-Region symmetric key ARN. `mrk-` ids are multi-Region keys, which residency forbids.
const KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/(?!mrk-)[A-Za-z0-9-]+$/;

/** The region of a single-Region KMS key ARN, or undefined if `arn` is not one. */
export function regionOfKeyArn(arn: string): string | undefined {
  return KEY_ARN.exec(arn)?.[1];
}

export interface KmsDataKeyServiceOptions {
  /**
   * Root keys the cell used before the current one, in the same region. Records wrapped under
   * them still open while a root-key migration moves them to the current key; new data keys are
   * always generated under the current key.
   * @default - none
   */
  readonly previousKeyArns?: readonly string[];
}

/**
 * The regional root key through KMS. Every call names a key ARN explicitly: GenerateDataKey the
 * current key, Decrypt the key the record names, and only if it is one of the accepted keys.
 */
export class KmsDataKeyService implements DataKeyService, TenantKeyScoping {
  private readonly accepted: ReadonlySet<string>;
  private readonly rpc: AwsRpc;

  /** `client`: the lean client (aws-json-client.ts) or any rpc of the seam; an SDK KMSClient still works (aws-sdk-rpc.ts). */
  constructor(
    client: AwsRpc | KMSClient,
    private readonly keyArn: string,
    options: KmsDataKeyServiceOptions = {},
  ) {
    this.rpc = rpcOf(client, KMS);
    this.accepted = acceptedRootKeys(keyArn, options.previousKeyArns ?? [], 'KmsDataKeyService');
  }

  async generateDataKey(context: EncryptionContext): Promise<GeneratedDataKey> {
    return this.generateUnder(this.keyArn, context, false);
  }

  async decryptDataKey(wrapped: Buffer, context: EncryptionContext, keyArn: string): Promise<Buffer> {
    // A record naming a key outside the accepted set (another region's, a retired one, another
    // tenant's own key) is refused before any KMS call.
    if (!this.accepted.has(keyArn)) throw new KeyServiceError('denied', 'Decrypt');
    return this.decryptUnder(keyArn, wrapped, context, false);
  }

  /**
   * The view for one tenant holding its own key (same region as the cell): new data keys are
   * generated under that key; rows open under it or under the cell's keys (rows sealed before the
   * tenant brought its key). Only contexts naming this tenant are served. A refusal by the
   * tenant's key carries `tenantKey`, so callers answer `tenant_key_unavailable`.
   */
  forTenant(tenantId: string, tenantKeyArn: string): DataKeyService {
    const ownRegion = regionOfKeyArn(tenantKeyArn) !== undefined && regionOfKeyArn(tenantKeyArn) === regionOfKeyArn(this.keyArn);
    const refuse = (operation: KeyServiceOperation) => new KeyServiceError('denied', operation, undefined, undefined, true);
    return {
      generateDataKey: async (context) => {
        if (!ownRegion || context.tenant !== tenantId) throw refuse('GenerateDataKey');
        return this.generateUnder(tenantKeyArn, context, true);
      },
      decryptDataKey: async (wrapped, context, keyArn) => {
        if (context.tenant !== tenantId) throw new KeyServiceError('denied', 'Decrypt');
        if (keyArn !== tenantKeyArn) return this.decryptDataKey(wrapped, context, keyArn);
        if (!ownRegion) throw refuse('Decrypt');
        return this.decryptUnder(keyArn, wrapped, context, true);
      },
    };
  }

  private async generateUnder(keyArn: string, context: EncryptionContext, tenantKey: boolean): Promise<GeneratedDataKey> {
    const out = await callKms(
      'GenerateDataKey',
      () => this.rpc.send<KmsAnswer>('GenerateDataKey', { KeyId: keyArn, KeySpec: 'AES_256', EncryptionContext: { ...context } }),
      tenantKey,
    );
    const plaintext = takePlaintext(out.Plaintext, 'GenerateDataKey');
    // A record sealed under a key we would later refuse to open is worse than no record.
    const wrapped = typeof out.CiphertextBlob === 'string' ? Buffer.from(out.CiphertextBlob, 'base64') : Buffer.alloc(0);
    if (wrapped.length === 0 || out.KeyId !== keyArn) {
      plaintext.fill(0);
      throw new KeyServiceError('unavailable', 'GenerateDataKey', undefined, undefined, tenantKey || undefined);
    }
    return { plaintext, wrapped, keyArn: out.KeyId };
  }

  private async decryptUnder(keyArn: string, wrapped: Buffer, context: EncryptionContext, tenantKey: boolean): Promise<Buffer> {
    if (wrapped.length === 0) throw new KeyServiceError('invalid_ciphertext', 'Decrypt');
    const out = await callKms(
      'Decrypt',
      // KeyId pins the key: a blob wrapped by any other key fails instead of being opened by it.
      () => this.rpc.send<KmsAnswer>('Decrypt', { CiphertextBlob: wrapped.toString('base64'), EncryptionContext: { ...context }, KeyId: keyArn }),
      tenantKey,
    );
    const plaintext = takePlaintext(out.Plaintext, 'Decrypt');
    if (out.KeyId !== keyArn) {
      plaintext.fill(0);
      throw new KeyServiceError('denied', 'Decrypt', undefined, undefined, tenantKey || undefined);
    }
    return plaintext;
  }
}

/** Runs one KMS call; any failure becomes a KeyServiceError carrying only safe codes. */
export async function callKms<T>(operation: KeyServiceOperation, send: () => Promise<T>, tenantKey = false): Promise<T> {
  try {
    return await send();
  } catch (err) {
    const code = awsErrorName(err);
    // Own keys only: a code such as 'constructor' from a hostile endpoint must not pick up Object.prototype.
    const reason = code !== undefined && Object.hasOwn(REASON_BY_CODE, code) ? REASON_BY_CODE[code] : 'unavailable';
    throw new KeyServiceError(reason, operation, code, awsRequestId(err), tenantKey || undefined);
  }
}

/**
 * The set of root keys a cell accepts: the current one and its predecessors, every one a
 * single-Region key of the current key's region (a key of another region would move the data
 * path's trust out of the cell). Throws on anything else.
 */
export function acceptedRootKeys(current: string, previous: readonly string[], who: string): ReadonlySet<string> {
  const region = regionOfKeyArn(current);
  if (!region) throw new Error(`${who} needs the full ARN of a single-Region KMS key (not an alias)`);
  for (const arn of previous) {
    const r = regionOfKeyArn(arn);
    if (!r) throw new Error(`${who}: a previous root key must be the full ARN of a single-Region KMS key (not an alias)`);
    if (r !== region) throw new Error(`${who}: previous root key in ${r}, but the cell's root key is in ${region}; keys never leave their region`);
    if (arn === current) throw new Error(`${who}: the current root key cannot also be a previous one`);
  }
  return new Set([current, ...previous]);
}

/** A KMS answer in wire form: blobs as base64. */
interface KmsAnswer {
  readonly KeyId?: string;
  readonly Plaintext?: string;
  readonly CiphertextBlob?: string;
}

/**
 * Decodes the answer's plaintext into a Buffer we own, the only byte copy left: the caller
 * zero-fills it in `finally`. Buffer.alloc, not Buffer.from: small Buffer.from copies live in a
 * shared pool slab. The response bytes were zero-filled by the client once parsed (the lean
 * client; the SDK wrapper zero-fills the SDK's array). What cannot be wiped: the HTTP response
 * text and the base64 string parsed from it are immutable strings; they become garbage once the
 * call returns.
 */
function takePlaintext(base64: string | undefined, operation: KeyServiceOperation): Buffer {
  if (typeof base64 !== 'string' || base64.length === 0) throw new KeyServiceError('unavailable', operation);
  const copy = Buffer.alloc(Buffer.byteLength(base64, 'base64'));
  const written = copy.write(base64, 'base64');
  if (written !== DATA_KEY_BYTES || copy.length !== DATA_KEY_BYTES) {
    copy.fill(0);
    throw new KeyServiceError('unavailable', operation);
  }
  return copy;
}
