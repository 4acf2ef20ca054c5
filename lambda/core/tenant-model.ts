import { z } from 'zod';
import { TENANT_ID_PATTERN } from './token';
import type { WrappedFactor } from './tenant-factor';

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
  })
  .strict();
export type Limits = z.infer<typeof limitsSchema>;

export const tenantPolicySchema = limitsSchema
  .extend({
    /** Model alias to ordered targets (first is primary, the rest are fallbacks). */
    routes: z.record(MODEL_NAME, z.array(routeTargetSchema).min(1).max(8)).optional(),
  })
  .strict();
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
  /** Head of the tenant's audit hash chain. */
  readonly auditSeq: number;
  readonly auditHead: string;
}

export interface TokenRecord {
  /** HMAC-SHA256(pepper, token), hex. The token itself is never stored. */
  readonly verifier: string;
  readonly tokenId: string;
  readonly tenantId: string;
  readonly role: TokenRole;
  readonly label?: string;
  readonly limits?: Limits;
  readonly createdAt: string;
  /** Sovereign mode: the tenant factor wrapped under a key derived from this token. */
  readonly wrappedFactor?: WrappedFactor;
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
  };
}
