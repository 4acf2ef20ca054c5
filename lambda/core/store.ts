import type { AuditEvent, AuditEventInput } from './audit-chain';
import type { SealedSecret } from './envelope';
import type { TenantPolicy, TenantRecord, TokenRecord } from './tenant-model';

/** Raised by a store when a conditional write lost (duplicate id, concurrent change). */
export class ConflictError extends Error {
  override readonly name = 'ConflictError';
}

/**
 * Persistence of tenants, tokens, sealed secrets and the audit chain. Every mutating call also
 * appends its audit event in the same transaction, so a change never lands unrecorded.
 */
export interface TenantStore {
  getTenant(tenantId: string): Promise<TenantRecord | undefined>;
  /** Creates tenant and first token together; ConflictError if the tenant exists. */
  createTenant(tenant: TenantRecord, firstToken: TokenRecord, audit: AuditEventInput): Promise<void>;
  updatePolicy(tenantId: string, policy: TenantPolicy, audit: AuditEventInput): Promise<TenantRecord>;

  getToken(verifier: string): Promise<TokenRecord | undefined>;
  listTokens(tenantId: string): Promise<TokenRecord[]>;
  putToken(token: TokenRecord, audit: AuditEventInput): Promise<void>;
  /** Deletes the token with this id; returns false if the tenant has no such token. */
  deleteToken(tenantId: string, tokenId: string, audit: AuditEventInput): Promise<boolean>;
  /** Adds `next` and deletes `previousTokenId` atomically. */
  replaceToken(next: TokenRecord, previousTokenId: string, audit: AuditEventInput): Promise<boolean>;

  getSecret(tenantId: string, provider: string, name: string): Promise<SealedSecret | undefined>;
  listSecrets(tenantId: string): Promise<SealedSecret[]>;
  /** Writes a sealed secret. `expectedVersion` undefined: must not exist; else must be at that version. */
  putSecret(secret: SealedSecret, expectedVersion: number | undefined, audit: AuditEventInput): Promise<void>;
  deleteSecret(tenantId: string, provider: string, name: string, audit: AuditEventInput): Promise<boolean>;

  /** Destroys every sealed secret and token of the tenant, marks it offboarded, records it. */
  offboardTenant(tenantId: string, audit: (counts: { secrets: number; tokens: number }) => AuditEventInput): Promise<{ secrets: number; tokens: number }>;

  listAudit(tenantId: string): Promise<AuditEvent[]>;
}
