import { ApiError } from './http';
import { isSharedRow } from './shared-rows';
import { tokenVerifiers, upgradeTarget, type TokenVerifiers, type VersionedVerifier } from './pepper-ring';
import type { PepperSource } from './ports';
import type { TenantStore } from './store';
import { parseTenantRecord, parseTokenRecord, StoredRecordError, type TenantRecord, type TokenRecord, type TokenRole } from './tenant-model';
import { computeVerifier, constantTimeEqual, parseToken, ParsedToken, TokenError } from './token';

export interface Principal {
  readonly parsed: ParsedToken;
  readonly token: TokenRecord;
  readonly tenant: TenantRecord;
}

/** Where a token's verifier may be stored: the store side of an on-use upgrade. */
export interface TokenVerifierMover {
  /**
   * Moves an authenticated token record, exactly as read, to the verifier `to` (one conditional
   * transaction: the new item only if absent, the old one only if still exactly as read). False
   * when the record changed or went away meanwhile (revoked, limits or wrap changed, moved by
   * another request): then nothing is written, and the next use tries again.
   */
  moveTokenVerifier(item: Readonly<Record<string, unknown>>, to: VersionedVerifier): Promise<boolean>;
}

/** Maps a token rejection to the client error; the wrong-region error names the home region. */
export function tokenApiError(err: TokenError): ApiError {
  if (err.code === 'wrong_region') {
    return new ApiError(421, 'wrong_region', err.message, { home_region: err.homeRegion ?? 'unknown' });
  }
  return new ApiError(401, err.code === 'checksum' ? 'invalid_api_key_checksum' : 'invalid_api_key', err.message);
}

/** Format, checksum and region first (no I/O), then the verifier lookup. */
export function parsePresentedToken(raw: string, region: string): ParsedToken {
  try {
    return parseToken(raw, region);
  } catch (err) {
    if (err instanceof TokenError) throw tokenApiError(err);
    throw err;
  }
}

/** The verifier under the current pepper only (tests and tools that look a fresh token up). */
export async function verifierOf(pepper: PepperSource, token: string): Promise<string> {
  return computeVerifier(await pepper.getPepper(), token).toString('hex');
}

/** The verifiers to look a presented token up under: current and, during an overlap, previous pepper. */
export async function verifiersOf(pepper: PepperSource, token: string): Promise<TokenVerifiers> {
  return tokenVerifiers(await pepper.getPeppers(), token);
}

/**
 * verifiersOf without a promise when the source has its ring in memory (PepperSource.peppersNow);
 * undefined when it must be read, and then the caller awaits verifiersOf. The same verifiers either way.
 */
export function verifiersNow(pepper: PepperSource, token: string): TokenVerifiers | undefined {
  const ring = pepper.peppersNow?.();
  return ring === undefined ? undefined : tokenVerifiers(ring, token);
}

const UNKNOWN_KEY =
  'The API key is not valid: it was revoked, rotated or never existed (or was not used while the region pepper was rotated twice; ask the tenant admin for a new one).';

/** Whether an unparsed stored item belongs to the presented token (constant-time) and its tenant. */
export function tokenRecordMatches(parsed: ParsedToken, verifier: string, token: unknown): boolean {
  const t = token as { verifier?: unknown; tenantId?: unknown } | undefined;
  return (
    typeof t === 'object' &&
    t !== null &&
    typeof t.verifier === 'string' &&
    constantTimeEqual(storedVerifierBytes(t as { verifier: string }), Buffer.from(verifier, 'hex')) &&
    t.tenantId === parsed.tenantId
  );
}

/**
 * A stored item's verifier as bytes; kept for a shared row (lambda/core/shared-rows.ts), whose
 * verifier cannot change. Not secret: the verifier is the token table's key.
 */
function storedVerifierBytes(t: { readonly verifier: string }): Buffer {
  const shared: boolean = isSharedRow(t);
  if (!shared) return Buffer.from(t.verifier, 'hex');
  let bytes = verifierBytesOfRows.get(t);
  if (bytes === undefined) {
    bytes = Buffer.from(t.verifier, 'hex');
    verifierBytesOfRows.set(t, bytes);
  }
  return bytes;
}
const verifierBytesOfRows = new WeakMap<object, Buffer>();

/** A token item that matched the presented token, as matchTokenRecord found it. */
export interface TokenMatch {
  readonly matched: VersionedVerifier;
  readonly item: Record<string, unknown>;
}

/** The item read under the current or the previous verifier that belongs to the token; 401 if neither. */
export function matchTokenRecord(parsed: ParsedToken, v: TokenVerifiers, current: unknown, previous: unknown): TokenMatch {
  if (tokenRecordMatches(parsed, v.current.verifier, current)) return { matched: v.current, item: current as Record<string, unknown> };
  if (v.previous && tokenRecordMatches(parsed, v.previous.verifier, previous)) return { matched: v.previous, item: previous as Record<string, unknown> };
  throw new ApiError(401, 'invalid_api_key', UNKNOWN_KEY);
}

/**
 * Moves a record found under the previous pepper to the issuing one, after authentication. A
 * failure is reported and not raised: the request was authenticated, and the next use retries.
 */
export async function upgradeOnUse(
  mover: TokenVerifierMover,
  v: TokenVerifiers,
  match: { matched: VersionedVerifier; item: Record<string, unknown> },
  onError: (err: unknown) => void,
): Promise<boolean> {
  const to = upgradeTarget(match.matched, v);
  if (!to) return false;
  try {
    return await mover.moveTokenVerifier(match.item, to);
  } catch (err) {
    onError(err);
    return false;
  }
}

/**
 * The stored token item belongs to the presented token (constant-time) and to its tenant. It reads
 * only the two fields it compares, from the unparsed item: nothing about a row's state (well
 * formed or not) can reach a caller before this holds.
 */
export function assertTokenRecord(parsed: ParsedToken, verifier: string, token: unknown): void {
  if (!tokenRecordMatches(parsed, verifier, token)) throw new ApiError(401, 'invalid_api_key', UNKNOWN_KEY);
}

/** Only active tenants are served; an unknown or offboarded one looks like an unknown key. */
export function assertActiveTenant(tenant: unknown): void {
  if (typeof tenant !== 'object' || tenant === null || (tenant as { status?: unknown }).status !== 'active') {
    throw new ApiError(401, 'invalid_api_key', UNKNOWN_KEY);
  }
}

/**
 * Authenticates from unparsed items, in this order: token item matches the presented token and
 * its tenant (401 otherwise), the tenant is active (401), and only then are both items parsed
 * (StoredRecordError, a 500, for a malformed one) and the tenant's region checked.
 */
export function principalOf(
  parsed: ParsedToken,
  verifier: string,
  rawToken: unknown,
  rawTenant: unknown,
  region: string,
): { token: TokenRecord; tenant: TenantRecord } {
  assertTokenRecord(parsed, verifier, rawToken);
  return principalOfVerified(parsed, rawToken, rawTenant, region);
}

/**
 * matchTokenRecord, then principalOf's checks in its order, with the token item compared once (the
 * router's read: the items under the current and, during an overlap, the previous verifier).
 */
export function principalOfRead(
  parsed: ParsedToken,
  v: TokenVerifiers,
  current: unknown,
  previous: unknown,
  rawTenant: unknown,
  region: string,
): { match: TokenMatch; token: TokenRecord; tenant: TenantRecord } {
  const match = matchTokenRecord(parsed, v, current, previous);
  const { token, tenant } = principalOfVerified(parsed, match.item, rawTenant, region);
  return { match, token, tenant };
}

/** principalOf after the token item matched the presented token. */
function principalOfVerified(parsed: ParsedToken, rawToken: unknown, rawTenant: unknown, region: string): { token: TokenRecord; tenant: TenantRecord } {
  assertActiveTenant(rawTenant);
  const token = parseTokenRecord(rawToken);
  const tenant = parseTenantRecord(rawTenant, parsed.tenantId);
  if (tenant.region !== region) throw new StoredRecordError('tenant');
  return { token, tenant };
}

/**
 * On errors no retry can fix: the OpenAI and Anthropic SDKs retry 5xx unless the server says
 * `x-should-retry: false`.
 */
export const NO_RETRY: Readonly<Record<string, string>> = Object.freeze({ 'x-should-retry': 'false' });

/** A stored item that failed validation after authentication: a non-retryable 500. */
export function storedRecordApiError(requestId?: string): ApiError {
  return new ApiError(
    500,
    'stored_record_unreadable',
    'A stored record of this tenant failed validation, so the request cannot succeed; retrying will not help. Contact the operator with the request id.',
    requestId ? { request_id: requestId } : {},
    NO_RETRY,
  );
}

/**
 * Authenticates a presented token and checks its role. The token is looked up under the current
 * pepper's verifier and, only if that finds nothing during an overlap, the previous one's; a
 * record found under the previous pepper is moved to the issuing one on the way (onError sees
 * a failed move).
 */
export async function authenticate(
  raw: string,
  deps: { region: string; pepper: PepperSource; store: TenantStore; onError?: (err: unknown) => void },
  requiredRole?: TokenRole,
): Promise<Principal> {
  const parsed = parsePresentedToken(raw, deps.region);
  const v = await verifiersOf(deps.pepper, parsed.token);
  const current: unknown = await deps.store.getToken(v.current.verifier);
  const previous: unknown =
    v.previous && !tokenRecordMatches(parsed, v.current.verifier, current) ? await deps.store.getToken(v.previous.verifier) : undefined;
  const match = matchTokenRecord(parsed, v, current, previous);
  const rawTenant: unknown = await deps.store.getTenant(parsed.tenantId);
  const { token, tenant } = principalOf(parsed, match.matched.verifier, match.item, rawTenant, deps.region);
  if (requiredRole && token.role !== requiredRole) {
    throw new ApiError(403, 'insufficient_role', `This route needs a ${requiredRole} token; this token has the ${token.role} role.`);
  }
  const to = upgradeTarget(match.matched, v);
  if (to && (await upgradeOnUse(deps.store, v, match, deps.onError ?? (() => undefined)))) {
    return { parsed, token: { ...token, verifier: to.verifier, pepperVersion: to.version }, tenant };
  }
  return { parsed, token, tenant };
}
