import { z } from 'zod';
import { cachePolicySchema } from './cache/policy';
import { memoizedSafeParse } from './parse-memo';
import { deepFreeze, isSharedRow } from './shared-rows';
import { guardrailsSchema } from './guardrails/policy';
import { TENANT_ID_PATTERN } from './token';
import type { WrappedFactor } from './tenant-factor';
import type { FactorBox, TokenFactorKey } from './factor-box';

export type TenantMode = 'managed' | 'sovereign';
export type TokenRole = 'tenant-admin' | 'invoke';
export const TOKEN_ROLES: readonly TokenRole[] = ['tenant-admin', 'invoke'];

const MODEL_NAME = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:/@-]+$/, 'model names hold letters, digits and . _ : / @ -');
const CIDR = z
  .string()
  .max(64)
  .regex(/^(\d{1,3}(\.\d{1,3}){3}(\/\d{1,2})?|[0-9a-fA-F:]+(\/\d{1,3})?)$/, 'expected an IPv4/IPv6 address or CIDR');
const PROVIDER_ID = z.string().regex(/^[a-z][a-z0-9-]{1,31}$/, 'provider ids are lower-case letters, digits and -');

export const routeTargetSchema = z
  .object({
    provider: PROVIDER_ID,
    model: MODEL_NAME,
    secret: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/).optional(),
    weight: z.number().int().min(1).max(1000).optional(),
  })
  .strict();

/** Limits that can be set on a tenant or narrowed on one token (sub-account). */
export const limitsSchema = z
  .object({
    allowedModels: z.array(MODEL_NAME).max(256).optional(),
    maxTokens: z.number().int().min(1).max(1_000_000).optional(),
    monthlyBudgetUsd: z.number().min(0).max(10_000_000).optional(),
    rpm: z.number().int().min(1).max(1_000_000).optional(),
    tpm: z.number().int().min(1).max(1_000_000_000).optional(),
    ipAllowlist: z.array(CIDR).max(100).optional(),
    /** Content guardrails; on a token they add to the tenant's, never lift them (guardrails/policy.ts). */
    guardrails: guardrailsSchema.optional(),
  })
  .strict();
export type Limits = z.infer<typeof limitsSchema>;

export const tenantPolicySchema = limitsSchema
  .extend({
    /** Model alias to ordered targets (first is primary, the rest are fallbacks). */
    routes: z.record(MODEL_NAME, z.array(routeTargetSchema).min(1).max(8)).optional(),
    /** Response cache, opt-in per tenant and per route (cache/policy.ts). */
    cache: cachePolicySchema.optional(),
    /**
     * Bring your own key: a KMS key in the tenant's own account, in the cell's region, as the root
     * of this tenant's data keys (lambda/core/tenant-keys.ts). Checked against the region when set.
     */
    tenantKeyArn: z.string().max(256).optional(),
  })
  .strict()
  // A cached answer is served without opening a secret, so it would outlive the tenant's revocation
  // of its own key: the two are exclusive.
  .refine((p) => !(p.tenantKeyArn && p.cache), {
    path: ['cache'],
    message: 'a tenant that holds its own key (tenantKeyArn) cannot enable the response cache: cached answers would still be served after it revokes the key',
  });
export type TenantPolicy = z.infer<typeof tenantPolicySchema>;
export type RouteTarget = z.infer<typeof routeTargetSchema>;

export const tenantIdSchema = z.string().regex(TENANT_ID_PATTERN, 'tenant ids are 3-32 lower-case letters, digits and -, starting with a letter');
export const secretNameSchema = z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'secret names are 1-32 lower-case letters, digits and -');

export interface TenantRecord {
  readonly tenantId: string;
  readonly region: string;
  readonly mode: TenantMode;
  /** `offboarding` while secrets and tokens are being destroyed: nothing else may change. */
  readonly status: 'active' | 'offboarding' | 'offboarded';
  readonly policy: TenantPolicy;
  readonly createdAt: string;
  readonly updatedAt: string;
  readonly offboardedAt?: string;
  /** Head of the tenant's audit chain: seq and hex MAC of the newest event (AUDIT_GENESIS before any). */
  readonly auditSeq: number;
  readonly auditHead: string;
  /**
   * The current version of each of the tenant's sealed secrets, keyed `<provider>#<name>`
   * (secretSlotOf). Written in the same transaction as the sealed row, and read by the router
   * in the same round trip as the row: a row whose version differs (an older row written back)
   * or that has no entry (a deleted row restored) is refused before any KMS call.
   */
  readonly secretVersions?: Readonly<Record<string, SecretVersionEntry>>;
  /** Sovereign tenants: the generation of the current tenant factor. @default 1 */
  readonly factorGeneration?: number;
  /** A factor rotation or mode conversion in progress (lambda/core/lifecycle/factor-change.ts). */
  readonly factorChange?: FactorChange;
}

/**
 * A factor change in progress, recorded in META when it starts and removed when it finishes.
 * Generation 0 means managed (no factor). While it is set, the router opens rows of either
 * generation, and no secret or token can be written except by the change itself.
 */
export interface FactorChange {
  readonly kind: 'rotate' | 'to-sovereign' | 'to-managed';
  readonly fromGeneration: number;
  readonly toGeneration: number;
  readonly startedAt: string;
}

/** What the tenant META records about one secret's current version. */
export interface SecretVersionEntry {
  readonly version: number;
  /**
   * Sovereign tenants: base64 of this version's 32 random salt bytes, mixed into the secret's key
   * derivation (docs/sealed-secret-format.md). It is stored here and not in the row, so a row
   * restored without its META entry cannot derive its key with the tenant's current state.
   */
  readonly salt?: string;
  /** Sovereign rows: the factor generation the row is sealed under. @default 1 */
  readonly generation?: number;
}

/** The key of a secret in TenantRecord.secretVersions (and in the router's read). */
export const secretSlotOf = (provider: string, name: string): string => `${provider}#${name}`;

export interface TokenRecord {
  /** HMAC-SHA256(pepper, token), hex, under pepper version `pepperVersion`. The token itself is never stored. */
  readonly verifier: string;
  /** The pepper version the verifier is under; absent on records from before versions: 1. */
  readonly pepperVersion?: number;
  readonly tokenId: string;
  readonly tenantId: string;
  readonly role: TokenRole;
  readonly label?: string;
  readonly limits?: Limits;
  readonly createdAt: string;
  /**
   * Sovereign mode: the tenant factor wrapped under a key derived from this token (generation 1),
   * or sealed to this token's public key (FactorBox, any generation, after a factor change).
   */
  readonly wrappedFactor?: WrappedFactor | FactorBox;
  /** The token's X25519 public key, derived from the token, for sealing the next factor to it. */
  readonly factorKey?: TokenFactorKey;
  /** During a factor change: the next factor sealed to this token, and the key's tag under it. */
  readonly pendingFactor?: PendingFactor;
}

export interface PendingFactor {
  readonly box: FactorBox;
  readonly keyTag: string;
}

/** What listing a token shows: never the verifier, never a wrap. */
export function tokenView(t: TokenRecord): Record<string, unknown> {
  return { tokenId: t.tokenId, role: t.role, label: t.label, limits: t.limits, createdAt: t.createdAt };
}

export function tenantView(t: TenantRecord): Record<string, unknown> {
  return {
    tenantId: t.tenantId,
    region: t.region,
    mode: t.mode,
    status: t.status,
    policy: t.policy,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    offboardedAt: t.offboardedAt,
    ...(t.mode === 'sovereign' ? { factorGeneration: t.factorGeneration ?? 1 } : {}),
    ...(t.factorChange ? { factorChange: t.factorChange } : {}),
  };
}

/**
 * A stored tenant or token item failed validation. Raised only after the presented token matched,
 * so it never answers an unauthenticated caller; `record` is safe to log, the item is not.
 */
export class StoredRecordError extends Error {
  override readonly name: string = 'StoredRecordError';
  constructor(readonly record: 'tenant' | 'token') {
    super(`stored ${record} record is malformed`);
  }
}

const TENANT_MODES: readonly string[] = ['managed', 'sovereign'];
const TENANT_STATUSES: readonly string[] = ['active', 'offboarding', 'offboarded'];
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isText = (v: unknown, max = 256): v is string => typeof v === 'string' && v.length > 0 && v.length <= max;

function parseSecretVersions(v: unknown): Record<string, SecretVersionEntry> | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) throw new StoredRecordError('tenant');
  const out: Record<string, SecretVersionEntry> = {};
  for (const [slot, e] of Object.entries(v)) {
    if (!isObject(e) || typeof e.version !== 'number' || !Number.isSafeInteger(e.version) || e.version < 1) throw new StoredRecordError('tenant');
    if (e.salt !== undefined && !(isText(e.salt, 64) && BASE64.test(e.salt))) throw new StoredRecordError('tenant');
    if (e.generation !== undefined && !(typeof e.generation === 'number' && Number.isSafeInteger(e.generation) && e.generation >= 1)) throw new StoredRecordError('tenant');
    out[slot] = {
      version: e.version,
      ...(e.salt === undefined ? {} : { salt: e.salt }),
      ...(e.generation === undefined ? {} : { generation: e.generation }),
    };
  }
  return out;
}

/**
 * Validates a tenant META item (table keys already stripped) belonging to `tenantId`. Fields this
 * model does not know are kept as they are; the ones it uses are checked.
 */
export function parseTenantRecord(item: unknown, tenantId: string): TenantRecord {
  // A shared row (shared-rows.ts) cannot change: its checked record is kept, and only the tenant
  // it must belong to is compared again (the record's tenantId is the row's).
  const shared = isSharedRow(item);
  if (shared) {
    const kept = tenantsOfRows.get(item);
    if (kept !== undefined) {
      if (kept.tenantId !== tenantId) throw new StoredRecordError('tenant');
      return kept;
    }
  }
  const record = parseTenantItem(item, tenantId);
  if (shared) tenantsOfRows.set(item as object, deepFreeze(record));
  return record;
}

/** Checked records of shared rows, by row (frozen: every request that reads the row gets this one). */
const tenantsOfRows = new WeakMap<object, TenantRecord>();
const tokensOfRows = new WeakMap<object, TokenRecord>();

function parseTenantItem(item: unknown, tenantId: string): TenantRecord {
  if (!isObject(item)) throw new StoredRecordError('tenant');
  const r = item;
  if (r.tenantId !== tenantId || !isText(r.region, 64) || !TENANT_MODES.includes(r.mode as string) || !TENANT_STATUSES.includes(r.status as string)) {
    throw new StoredRecordError('tenant');
  }
  if (typeof r.auditSeq !== 'number' || typeof r.auditHead !== 'string' || !isText(r.createdAt, 64) || !isText(r.updatedAt, 64)) {
    throw new StoredRecordError('tenant');
  }
  const policy = memoizedSafeParse(tenantPolicySchema, r.policy);
  if (!policy.success) throw new StoredRecordError('tenant');
  const secretVersions = parseSecretVersions(r.secretVersions);
  if (r.factorGeneration !== undefined && !(typeof r.factorGeneration === 'number' && Number.isSafeInteger(r.factorGeneration) && r.factorGeneration >= 1)) {
    throw new StoredRecordError('tenant');
  }
  if (r.factorChange !== undefined) {
    const c = r.factorChange as Record<string, unknown>;
    const gen = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
    if (!isObject(c) || !['rotate', 'to-sovereign', 'to-managed'].includes(c.kind as string) || !gen(c.fromGeneration) || !gen(c.toGeneration) || c.fromGeneration === c.toGeneration) {
      throw new StoredRecordError('tenant');
    }
  }
  return { ...(r as unknown as TenantRecord), policy: policy.data, ...(secretVersions ? { secretVersions } : {}) };
}

/** Validates a token item. The verifier and tenant were compared before (authenticate.ts). */
export function parseTokenRecord(item: unknown): TokenRecord {
  const shared = isSharedRow(item);
  if (shared) {
    const kept = tokensOfRows.get(item);
    if (kept !== undefined) return kept;
  }
  const record = parseTokenItem(item);
  if (shared) tokensOfRows.set(item as object, deepFreeze(record));
  return record;
}

function parseTokenItem(item: unknown): TokenRecord {
  if (!isObject(item)) throw new StoredRecordError('token');
  const r = item;
  if (!isText(r.verifier, 128) || !isText(r.tokenId, 64) || !isText(r.tenantId, 64) || !TOKEN_ROLES.includes(r.role as TokenRole) || !isText(r.createdAt, 64)) {
    throw new StoredRecordError('token');
  }
  if (r.label !== undefined && typeof r.label !== 'string') throw new StoredRecordError('token');
  if (r.pepperVersion !== undefined && !(typeof r.pepperVersion === 'number' && Number.isSafeInteger(r.pepperVersion) && r.pepperVersion >= 1)) {
    throw new StoredRecordError('token');
  }
  let limits: Limits | undefined;
  if (r.limits !== undefined) {
    const parsed = memoizedSafeParse(limitsSchema, r.limits);
    if (!parsed.success) throw new StoredRecordError('token');
    limits = parsed.data;
  }
  for (const k of ['wrappedFactor', 'factorKey', 'pendingFactor'] as const) {
    if (r[k] !== undefined && !isObject(r[k])) throw new StoredRecordError('token');
  }
  return { ...(r as unknown as TokenRecord), ...(limits ? { limits } : {}) };
}
