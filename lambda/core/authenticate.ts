import { ApiError } from './http';
import type { PepperSource } from './ports';
import type { TenantStore } from './store';
import { parseTenantRecord, parseTokenRecord, StoredRecordError, type TenantRecord, type TokenRecord, type TokenRole } from './tenant-model';
import { computeVerifier, constantTimeEqual, parseToken, ParsedToken, TokenError } from './token';

export interface Principal {
  readonly parsed: ParsedToken;
  readonly token: TokenRecord;
  readonly tenant: TenantRecord;
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

export async function verifierOf(pepper: PepperSource, token: string): Promise<string> {
  return computeVerifier(await pepper.getPepper(), token).toString('hex');
}

const UNKNOWN_KEY = 'The API key is not valid: it was revoked, rotated or never existed.';

/**
 * The stored token item belongs to the presented token (constant-time) and to its tenant. It reads
 * only the two fields it compares, from the unparsed item: nothing about a row's state (well
 * formed or not) can reach a caller before this holds.
 */
export function assertTokenRecord(parsed: ParsedToken, verifier: string, token: unknown): void {
  const t = token as { verifier?: unknown; tenantId?: unknown } | undefined;
  if (
    typeof t !== 'object' ||
    t === null ||
    typeof t.verifier !== 'string' ||
    !constantTimeEqual(Buffer.from(t.verifier, 'hex'), Buffer.from(verifier, 'hex')) ||
    t.tenantId !== parsed.tenantId
  ) {
    throw new ApiError(401, 'invalid_api_key', UNKNOWN_KEY);
  }
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

/** Authenticates a presented token and checks its role. */
export async function authenticate(
  raw: string,
  deps: { region: string; pepper: PepperSource; store: TenantStore },
  requiredRole?: TokenRole,
): Promise<Principal> {
  const parsed = parsePresentedToken(raw, deps.region);
  const verifier = await verifierOf(deps.pepper, parsed.token);
  const rawToken: unknown = await deps.store.getToken(verifier);
  assertTokenRecord(parsed, verifier, rawToken);
  const rawTenant: unknown = await deps.store.getTenant(parsed.tenantId);
  const { token, tenant } = principalOf(parsed, verifier, rawToken, rawTenant, deps.region);
  if (requiredRole && token.role !== requiredRole) {
    throw new ApiError(403, 'insufficient_role', `This route needs a ${requiredRole} token; this token has the ${token.role} role.`);
  }
  return { parsed, token, tenant };
}
