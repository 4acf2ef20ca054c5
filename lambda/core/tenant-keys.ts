/**
 * Tenant-held root keys (bring your own key): a tenant's policy may name a KMS key in its own
 * account, in the cell's region, as the root of its data keys. The data-key service then seals
 * that tenant's new secrets under it and accepts it when opening that tenant's rows only; a row
 * of another tenant naming it is refused before any KMS call.
 */
import { ApiError } from './http';
import type { DataKeyService } from './ports';
import type { TenantPolicy } from './tenant-model';

/** A data-key service that can be narrowed to one tenant and its tenant-held key. */
export interface TenantKeyScoping {
  /** The view of the service for `tenantId`: seals under `keyArn`, opens under the cell's keys or `keyArn`. */
  forTenant(tenantId: string, keyArn: string): DataKeyService;
}

// arn:<partition>:kms:<region>:<account>:key/<id> of a single-Region key (never mrk-, never an alias).
const TENANT_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):(\d{12}):key\/(?!mrk-)[A-Za-z0-9-]{1,64}$/;

/** Why a tenant key ARN cannot be registered in `region`, or undefined if it can. */
export function tenantKeyProblem(keyArn: string, region: string): string | undefined {
  const m = TENANT_KEY_ARN.exec(keyArn);
  if (!m) return 'tenantKeyArn must be the full ARN of a single-Region KMS key (no alias, no multi-Region key)';
  if (m[1] !== region) return `tenantKeyArn is in ${m[1]}, but this cell is in ${region}; keys never leave their region`;
  return undefined;
}

/** The data keys to use for this tenant: the cell's, or the view scoped to its tenant-held key. */
export function dataKeysOfTenant(dataKeys: DataKeyService, tenant: { readonly tenantId: string; readonly policy: TenantPolicy }): DataKeyService {
  const keyArn = tenant.policy.tenantKeyArn;
  if (keyArn === undefined) return dataKeys;
  const scoping = dataKeys as Partial<TenantKeyScoping>;
  if (typeof scoping.forTenant !== 'function') {
    throw new ApiError(501, 'tenant_key_unsupported', 'This gateway cannot use tenant-held KMS keys (the local gateway emulates one root key); use a deployed cell.');
  }
  return scoping.forTenant(tenant.tenantId, keyArn);
}

/**
 * The error for a tenant whose own key refused (disabled, pending deletion, deleted, or its key
 * policy no longer lets the cell use it). Names no ARN and no secret: the tenant knows its key.
 */
export function tenantKeyUnavailable(requestId?: string): ApiError {
  return new ApiError(
    403,
    'tenant_key_unavailable',
    "The KMS key this tenant holds for its secrets refused to serve (disabled, scheduled for deletion, or the key policy no longer allows this gateway). Retrying will not help: re-enable the key or restore the key policy statements for this gateway's roles.",
    requestId ? { request_id: requestId } : {},
    { 'x-should-retry': 'false' },
  );
}

/** KMS answers that mean the tenant's key itself refuses (not a transient KMS failure). */
const TENANT_KEY_REFUSALS = new Set(['DisabledException', 'KMSInvalidStateException', 'NotFoundException', 'AccessDeniedException']);

/** True for a KeyServiceError from a tenant-held key that the tenant made unusable. */
export function isTenantKeyRefusal(err: unknown): boolean {
  const e = err as { name?: string; tenantKey?: boolean; reason?: string; awsCode?: string };
  return e?.name === 'KeyServiceError' && e.tenantKey === true && (e.reason === 'denied' || TENANT_KEY_REFUSALS.has(e.awsCode ?? ''));
}
