import { AUDIT_GENESIS, type AuditEvent, type AuditEventInput } from './audit-chain';
import type { TokenVerifierMover } from './authenticate';
import type { SealedSecret } from './envelope';
import type { FactorChange, Limits, SecretVersionEntry, TenantMode, TenantPolicy, TenantRecord, TokenRecord } from './tenant-model';

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

/**
 * The audit chain of the cell itself (operator events that belong to no tenant, such as a pepper
 * rotation). Its id cannot be a tenant id (those start with a letter), so no token can name it.
 */
export const CELL_AUDIT_ID = '_cell';

/** One token as the pepper status counts it: never the verifier, never a wrap. */
export interface TokenInventoryRow {
  readonly tenantId: string;
  readonly tokenId: string;
  readonly role: string;
  readonly label?: string;
  /** Absent on records from before pepper versions: 1. */
  readonly pepperVersion?: number;
}

/** What an offboarding destroyed. */
export interface OffboardCounts {
  readonly secrets: number;
  readonly tokens: number;
  /**
   * Sealed rows of format v1 (sealed before erasure keys) among `secrets`: deleted, but a backup
   * taken before the offboarding still holds them openable with KMS access (no erasure key).
   */
  readonly legacySecrets: number;
}

/** A sealed row and the tenant META's record of it, written together by TenantStore.putSecret. */
export interface SecretWrite {
  readonly sealed: SealedSecret;
  /** What META will record as current; `current.version === sealed.version`. */
  readonly current: SecretVersionEntry;
  /** The version META records now; undefined when it records none (then no row may exist either). */
  readonly expectedVersion: number | undefined;
  /** A reseal by the factor change in progress (the only secret write allowed during one). */
  readonly factorChange?: boolean;
  /**
   * The factor generation the row was sealed under (0: managed), when the writer read it from
   * META: the store refuses the write if META's generation moved since (a factor change ran).
   */
  readonly factorGeneration?: number;
}

/**
 * A token's factor fields as a factor change sets them; `null` removes a field. Only the factor
 * change writes these (lambda/core/lifecycle/factor-change.ts), under its audited start and finish.
 */
export interface TokenFactorUpdate {
  readonly wrappedFactor?: TokenRecord['wrappedFactor'] | null;
  readonly factorKey?: TokenRecord['factorKey'] | null;
  readonly pendingFactor?: TokenRecord['pendingFactor'] | null;
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
   * Root-key migration: replaces the sealed row `before` by `after`, the same row with its data
   * key rewrapped under another root key, with its audit event, in one transaction. Applied only
   * if the stored row is still exactly `before` (key ARN, wrapped key, version) and META still
   * records that version; otherwise nothing is written and the answer is false (a concurrent
   * rotation or reseal wins and is never overwritten).
   */
  rewrapSecret(before: SealedSecret, after: SealedSecret, audit: AuditEventInput): Promise<boolean>;
  /**
   * Deletes the sealed row AND its META entry in one transaction (so a restored row has no entry
   * and is refused). True if either existed.
   */
  deleteSecret(tenantId: string, provider: string, name: string, audit: AuditEventInput): Promise<boolean>;

  /**
   * The tenant's erasure key (32 bytes, a copy the caller zero-fills), or undefined when it has
   * none: never created (no v2 secret yet) or destroyed by offboarding.
   */
  getErasureKey(tenantId: string): Promise<Buffer | undefined>;
  /**
   * Stores `fresh` as the tenant's erasure key unless one exists, only while the tenant is
   * active (checked in the same transaction, so no key appears after an offboarding froze the
   * tenant), and returns the key now stored: `fresh`, or the one another writer stored first.
   * ConflictError when the tenant does not exist or is not active. Unaudited on its own: it
   * opens nothing, and the secret.stored event that needed it follows.
   */
  ensureErasureKey(tenantId: string, fresh: Buffer): Promise<Buffer>;

  /**
   * Crypto-shreds and deletes the tenant, in this order, each step idempotent:
   * 1. marks it `offboarding` (tokens stop working, no other change can land);
   * 2. destroys its erasure key (from here no copy of the tables opens its v2 secrets);
   * 3. deletes its tokens and sealed secrets;
   * 4. marks it `offboarded` and records the audit event (one transaction).
   * A crash anywhere is finished by running it again. ConflictError once it is offboarded.
   */
  offboardTenant(tenantId: string, audit: (counts: OffboardCounts) => AuditEventInput): Promise<OffboardCounts>;

  listAudit(tenantId: string): Promise<AuditEvent[]>;

  /** Every token of the cell, for the pepper status (a scan; operator use only). */
  listTokenInventory(): Promise<TokenInventoryRow[]>;
  /**
   * Appends an operator event to the cell's own chain (CELL_AUDIT_ID), sealed and anchored like
   * a tenant's; its head record (a META item under CELL_AUDIT_ID) is created on first use.
   */
  appendCellEvent(region: string, audit: AuditEventInput): Promise<void>;
  /**
   * Records `change` in META (ConflictError if one is in progress or the tenant's generation is not
   * `change.fromGeneration`) together with the first token's pending factor, with the audit event.
   */
  beginFactorChange(tenantId: string, change: FactorChange, first: { verifier: string; update: TokenFactorUpdate } | undefined, audit: AuditEventInput): Promise<void>;
  /** Sets one token's factor fields (no audit event: the change's start and finish are recorded). False if the token is gone. */
  updateTokenFactor(tenantId: string, verifier: string, update: TokenFactorUpdate): Promise<boolean>;
  /**
   * Ends the change in progress: META takes `to` as mode and generation and drops the change,
   * only if every META secret entry is at the target generation (ConflictError otherwise).
   */
  finishFactorChange(tenantId: string, to: { mode: TenantMode; generation: number }, audit: AuditEventInput): Promise<TenantRecord>;
}

/** The head record of the cell's audit chain: a tenant META that no token can reach. */
export function cellChainRecord(region: string, now: string): TenantRecord {
  return {
    tenantId: CELL_AUDIT_ID,
    region,
    mode: 'managed',
    status: 'active',
    policy: {},
    createdAt: now,
    updatedAt: now,
    auditSeq: 0,
    auditHead: AUDIT_GENESIS,
  };
}
