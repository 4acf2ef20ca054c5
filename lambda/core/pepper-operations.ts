/**
 * Operator side of pepper rotation (admin API, `sovereign-router pepper ...`): how many tokens
 * are on which version, and a rotation that keeps every token alive.
 *
 * Why a rotation is gated rather than followed by an offline re-verify job: a verifier is
 * HMAC(pepper, token) and the token is never stored, so nothing but a request that presents the
 * token can compute its verifier under a new pepper. Tokens move on use (router and vault). A
 * rotation retires the version before the previous one, so it waits until no token is left on the
 * previous version (or the operator forces it, retiring those tokens), and until the current
 * version is issued everywhere (the pepper cache lifetime after the last rotation).
 */
import type { AuditEvent } from './audit-chain';
import { ApiError } from './http';
import { PepperRotationConflict, type PepperRing, type PepperRotator, type PepperSource } from './ports';
import { pepperVersionOf } from './pepper-ring';
import { CELL_AUDIT_ID, type TenantStore, type TokenInventoryRow } from './store';

export const PEPPER_ROTATED = 'pepper.rotated';

export interface PepperStatus {
  readonly current: { readonly version: number; readonly rotatedAt?: string };
  readonly previous?: { readonly version: number };
  /** The version new tokens and moved tokens get now (previous until the rotation settled). */
  readonly issuing: number;
  /** Token count per pepper version, e.g. {"2": 14, "1": 3}. */
  readonly tokensByVersion: Readonly<Record<string, number>>;
  /** Tokens still on the previous version: they move on their next use. */
  readonly onPrevious: readonly TokenInventoryRow[];
  /** Tokens on a version older than previous: no request can reach them any more (forced rotation). */
  readonly unreachable: number;
  /** Whether `rotate` would go ahead now, and if not, why. */
  readonly canRotate: boolean;
  readonly blockers: readonly string[];
  /** The highest version whose rotation the cell's audit chain records. */
  readonly recordedThrough: number;
}

const versionOf = (row: TokenInventoryRow): number => pepperVersionOf(row);

function recordedThrough(events: readonly AuditEvent[]): number {
  let max = 1;
  for (const e of events) {
    if (e.type === PEPPER_ROTATED && typeof e.details.toVersion === 'number') max = Math.max(max, e.details.toVersion);
  }
  return max;
}

function blockersOf(ring: PepperRing, onPrevious: number): string[] {
  const out: string[] = [];
  if (ring.issuing !== ring.current.version) {
    out.push(`version ${ring.current.version} is not yet issued everywhere (processes cache the pepper); retry after the cache lifetime since ${ring.rotatedAt ?? 'the rotation'}`);
  }
  if (onPrevious > 0) {
    out.push(`${onPrevious} token(s) are still on version ${ring.previous?.version}: they move on their next use; a rotation now would retire them (--force)`);
  }
  return out;
}

export interface PepperOpsDeps {
  readonly region: string;
  readonly store: TenantStore;
  readonly pepper: PepperSource;
  readonly rotator?: PepperRotator;
}

export async function pepperStatus(deps: PepperOpsDeps): Promise<PepperStatus> {
  const [ring, tokens, events] = await Promise.all([deps.pepper.getPeppers(), deps.store.listTokenInventory(), deps.store.listAudit(CELL_AUDIT_ID)]);
  ring.current.pepper.fill(0);
  ring.previous?.pepper.fill(0);
  const byVersion: Record<string, number> = {};
  for (const t of tokens) byVersion[String(versionOf(t))] = (byVersion[String(versionOf(t))] ?? 0) + 1;
  const previousVersion = ring.previous?.version ?? ring.current.version - 1;
  const onPrevious = tokens.filter((t) => versionOf(t) === previousVersion && previousVersion >= 1);
  const unreachable = tokens.filter((t) => versionOf(t) < previousVersion).length;
  const blockers = blockersOf(ring, onPrevious.length);
  return {
    current: { version: ring.current.version, ...(ring.rotatedAt ? { rotatedAt: ring.rotatedAt } : {}) },
    ...(ring.previous ? { previous: { version: ring.previous.version } } : {}),
    issuing: ring.issuing,
    tokensByVersion: byVersion,
    onPrevious,
    unreachable,
    canRotate: blockers.length === 0,
    blockers,
    recordedThrough: recordedThrough(events),
  };
}

export interface PepperRotationResult {
  readonly fromVersion: number;
  readonly toVersion: number;
  readonly rotatedAt: string;
  /** Tokens left on the version that stopped being accepted (only with force). */
  readonly retiredTokens: number;
  /** A rotation found unrecorded (a crash between rotation and audit) and recorded now. */
  readonly recordedLate?: number;
}

/**
 * Rotates after the checks above, then records `pepper.rotated` in the cell's audit chain. A crash
 * between the two leaves an unrecorded version, which the next call (status or rotate) sees
 * (`recordedThrough` < current) and rotate records first, flagged recordedLate, before anything else.
 */
export async function rotatePepper(
  deps: PepperOpsDeps,
  opts: { readonly actor: string; readonly expectedVersion?: number; readonly force?: boolean },
): Promise<PepperRotationResult> {
  if (!deps.rotator) throw new ApiError(501, 'pepper_rotation_unavailable', 'This gateway cannot rotate its pepper.');
  let status = await pepperStatus(deps);
  let recordedLate: number | undefined;
  if (status.recordedThrough < status.current.version) {
    // The last rotation happened but its event was never written (crash): record it first.
    recordedLate = status.current.version;
    await deps.store.appendCellEvent(deps.region, {
      type: PEPPER_ROTATED,
      actor: opts.actor,
      details: { fromVersion: status.current.version - 1, toVersion: status.current.version, rotatedAt: status.current.rotatedAt ?? 'unknown', recordedLate: true },
    });
    status = await pepperStatus(deps);
  }
  if (opts.expectedVersion !== undefined && opts.expectedVersion !== status.current.version) {
    throw new ApiError(409, 'pepper_version_moved', `The pepper is at version ${status.current.version}, not ${opts.expectedVersion}; nothing was rotated.`, {
      current_version: status.current.version,
    });
  }
  const settling = status.issuing !== status.current.version;
  if (settling || (status.onPrevious.length > 0 && !opts.force)) {
    throw new ApiError(409, settling ? 'pepper_not_settled' : 'tokens_on_previous_pepper', `Not rotated: ${status.blockers.join('; ')}.`, {
      current_version: status.current.version,
      tokens_on_previous: status.onPrevious.length,
    });
  }
  let rotated: { version: number; rotatedAt: string };
  try {
    rotated = await deps.rotator.rotate(status.current.version);
  } catch (err) {
    if (err instanceof PepperRotationConflict) {
      throw new ApiError(409, 'pepper_version_moved', `${err.message} Nothing was rotated by this call.`, { current_version: err.currentVersion });
    }
    throw err;
  }
  const retiredTokens = status.onPrevious.length;
  await deps.store.appendCellEvent(deps.region, {
    type: PEPPER_ROTATED,
    actor: opts.actor,
    details: { fromVersion: status.current.version, toVersion: rotated.version, rotatedAt: rotated.rotatedAt, retiredTokens, forced: opts.force === true },
  });
  return { fromVersion: status.current.version, toVersion: rotated.version, rotatedAt: rotated.rotatedAt, retiredTokens, ...(recordedLate ? { recordedLate } : {}) };
}
