import type { AuditEvent, AuditEventInput } from './audit-chain';
import type { TokenVerifierMover } from './authenticate';
import type { SealedSecret } from './envelope';
import type { Limits, SecretVersionEntry, TenantPolicy, TenantRecord, TokenRecord } from './tenant-model';

/** Raised by a store when a conditional write lost (duplicate id, concurrent change). */
export class ConflictError extends Error {
  override readonly name: string = 'ConflictError';
}

/** The token to delete is the tenant's last tenant-admin token. */
export class LastAdminTokenError extends ConflictError {
  override readonly name: string = 'LastAdminTokenError';
  constructor() {
    super('This is the last tenant-admin token; create another one before revoking it.');
  }
}

/** A sealed row and the tenant META's record of it, written together by TenantStore.putSecret. */
export interface SecretWrite {
  readonly sealed: SealedSecret;
  /** What META will record as current; `current.version === sealed.version`. */
  readonly current: SecretVersionEntry;
  /** The version META records now; undefined when it records none (then no row may exist either). */
  readonly expectedVersion: number | undefined;
}

/**
 * Persistence of tenants, tokens, sealed secrets and the audit chain. Every mutating call also
 * appends its audit event in the same transaction, so a change never lands unrecorded.
 */
export interface TenantStore extends TokenVerifierMover {
  getTenant(tenantId: string): Promise<TenantRecord | undefined>;
  /** Creates tenant and first token together; ConflictError if the tenant exists. */
  createTenant(tenant: TenantRecord, firstToken: TokenRecord, audit: AuditEventInput): Promise<void>;
  updatePolicy(tenantId: string, policy: TenantPolicy, audit: AuditEventInput): Promise<TenantRecord>;

  getToken(verifier: string): Promise<TokenRecord | undefined>;
  listTokens(tenantId: string): Promise<TokenRecord[]>;
  putToken(token: TokenRecord, audit: AuditEventInput): Promise<void>;
  /**
   * Deletes the token with this id; returns false if the tenant has no such token. Deleting a
   * tenant-admin token requires, in the same transaction, that another tenant-admin token still
   * exists (LastAdminTokenError otherwise), so concurrent revocations cannot lock a tenant out.
   */
  deleteToken(tenantId: string, tokenId: string, audit: AuditEventInput): Promise<boolean>;
  /** Adds `next` and deletes `previousTokenId` atomically. */
  replaceToken(next: TokenRecord, previousTokenId: string, audit: AuditEventInput): Promise<boolean>;
  /**
   * Replaces a token's own limits (an empty object clears them), with its audit event.
   * Returns the updated token, or undefined if the tenant has no such token.
   */
  updateTokenLimits(tenantId: string, tokenId: string, limits: Limits, audit: AuditEventInput): Promise<TokenRecord | undefined>;

  /** Governance counter items (spend and rate windows) by key, keyed `pk|sk`; missing items are absent. */
  getCounterItems(keys: readonly { readonly pk: string; readonly sk: string }[]): Promise<Map<string, Record<string, unknown>>>;

  getSecret(tenantId: string, provider: string, name: string): Promise<SealedSecret | undefined>;
  listSecrets(tenantId: string): Promise<SealedSecret[]>;
  /**
   * Writes the sealed row AND the tenant META's entry for it
   * (`secretVersions[secretSlotOf(provider, name)] = write.current`) in ONE transaction, with the
   * audit event. The router trusts a row only if META names its version, so an adapter that
   * writes the two separately lets a crash (or a rolled-back row) through: they must commit
   * together or not at all. ConflictError when META's current entry is not `expectedVersion`.
   */
  putSecret(write: SecretWrite, audit: AuditEventInput): Promise<void>;
  /**
   * Deletes the sealed row AND its META entry in one transaction (so a restored row has no entry
   * and is refused). True if either existed.
   */
  deleteSecret(tenantId: string, provider: string, name: string, audit: AuditEventInput): Promise<boolean>;

  /**
   * Destroys every sealed secret and token of the tenant, marks it offboarded, records it.
   * First marks it `offboarding` (no other change can land after that), so an interrupted
   * offboarding is finished by running it again.
   */
  offboardTenant(tenantId: string, audit: (counts: { secrets: number; tokens: number }) => AuditEventInput): Promise<{ secrets: number; tokens: number }>;

  listAudit(tenantId: string): Promise<AuditEvent[]>;
}
