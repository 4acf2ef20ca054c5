/**
 * Which tenant factor opens what, by generation (0 = managed, no factor). Shared by the router,
 * the vault and both stores, so that what a factor change allows is decided in one place.
 */
import { isFactorBox, openFactorBox } from './factor-box';
import { ConflictError, type SecretWrite, type TokenFactorUpdate } from './store';
import { unwrapTenantFactor, type FactorBinding } from './tenant-factor';
import type { FactorChange, SecretVersionEntry, TenantMode, TenantRecord, TokenRecord } from './tenant-model';

/** The tenant's current factor generation: 0 when managed. */
export function tenantGeneration(t: Pick<TenantRecord, 'mode' | 'factorGeneration'>): number {
  return t.mode === 'sovereign' ? (t.factorGeneration ?? 1) : 0;
}

/** The generation a META entry says its row is sealed under: 0 (managed) when it has no salt. */
export function entryGeneration(e: SecretVersionEntry): number {
  return e.salt === undefined ? 0 : (e.generation ?? 1);
}

/** The generations whose rows the router may open now: the current one, and during a change both ends. */
export function openableGenerations(t: Pick<TenantRecord, 'mode' | 'factorGeneration' | 'factorChange'>): ReadonlySet<number> {
  const out = new Set([tenantGeneration(t)]);
  if (t.factorChange) {
    out.add(t.factorChange.fromGeneration);
    out.add(t.factorChange.toGeneration);
  }
  return out;
}

/** The generation of a token's stored wrap (v1 wraps are generation 1). */
export function wrapGeneration(w: TokenRecord['wrappedFactor']): number | undefined {
  if (w === undefined) return undefined;
  return isFactorBox(w) ? w.generation : 1;
}

/**
 * The factor of generation `generation` (>= 1), opened with the live token from its stored wrap or
 * its pending box; undefined when the token holds none for that generation. Caller zero-fills it.
 * A wrap that does not open is a TenantFactorError.
 */
export function factorForGeneration(token: TokenRecord, binding: FactorBinding, generation: number): Buffer | undefined {
  const w = token.wrappedFactor;
  if (w !== undefined && wrapGeneration(w) === generation) return isFactorBox(w) ? openFactorBox(w, binding) : unwrapTenantFactor(w, binding);
  if (token.pendingFactor?.box.generation === generation) return openFactorBox(token.pendingFactor.box, binding);
  return undefined;
}

const CHANGING = (t: TenantRecord) => `A factor change of tenant '${t.tenantId}' is in progress; retry when it has finished.`;

/**
 * A secret write may land only at the tenant's current generation and, during a factor change,
 * only as part of that change (at its target generation). Stores call it inside their transaction.
 */
export function checkSecretWrite(tenant: TenantRecord, write: SecretWrite): void {
  if (tenant.factorChange) {
    if (!write.factorChange || entryGeneration(write.current) !== tenant.factorChange.toGeneration) throw new ConflictError(CHANGING(tenant));
    return;
  }
  if (write.factorChange) throw new ConflictError(`No factor change of tenant '${tenant.tenantId}' is in progress.`);
  if (write.factorGeneration !== undefined && write.factorGeneration !== tenantGeneration(tenant)) throw new ConflictError(`The tenant factor of '${tenant.tenantId}' changed meanwhile; retry.`);
}

/** A new token may be added only outside a factor change, wrapped for the current generation. */
export function checkTokenWrite(tenant: TenantRecord, token: TokenRecord): void {
  if (tenant.factorChange) throw new ConflictError(CHANGING(tenant));
  // A sovereign tenant's new token must carry the current generation's factor (not one a change replaced).
  if (tenant.mode === 'sovereign' && wrapGeneration(token.wrappedFactor) !== tenantGeneration(tenant)) {
    throw new ConflictError(`The tenant factor of '${tenant.tenantId}' changed meanwhile; retry.`);
  }
}

/** A factor change may start only when none is in progress and the tenant is at its `from` generation. */
export function checkFactorChangeStart(tenant: TenantRecord, change: FactorChange): void {
  if (tenant.factorChange) throw new ConflictError(CHANGING(tenant));
  if (tenantGeneration(tenant) !== change.fromGeneration) throw new ConflictError(`The tenant factor of '${tenant.tenantId}' changed meanwhile; retry.`);
}

/**
 * A factor change may finish only when every secret META records is sealed at the target
 * generation. Returns META's new mode/generation fields.
 */
export function checkFactorChangeFinish(tenant: TenantRecord, to: { mode: TenantMode; generation: number }): { mode: TenantMode; factorGeneration?: number } {
  const change = tenant.factorChange;
  if (!change || change.toGeneration !== to.generation || (to.generation === 0) !== (to.mode === 'managed')) {
    throw new ConflictError(`No such factor change of tenant '${tenant.tenantId}' is in progress.`);
  }
  const behind = Object.entries(tenant.secretVersions ?? {}).filter(([, e]) => entryGeneration(e) !== to.generation);
  if (behind.length > 0) throw new ConflictError(`${behind.length} secret(s) of tenant '${tenant.tenantId}' are not resealed yet; run the change again.`);
  return to.mode === 'sovereign' ? { mode: 'sovereign', factorGeneration: to.generation } : { mode: 'managed' };
}

/** A token record with a factor update applied (null removes a field). */
export function withTokenFactor(token: TokenRecord, update: TokenFactorUpdate): TokenRecord {
  const out: Record<string, unknown> = { ...token };
  for (const k of ['wrappedFactor', 'factorKey', 'pendingFactor'] as const) {
    const v = update[k];
    if (v === null) delete out[k];
    else if (v !== undefined) out[k] = v;
  }
  return out as unknown as TokenRecord;
}
