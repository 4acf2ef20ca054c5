import { ApiError } from './http';
import type { PepperSource } from './ports';
import type { TenantStore } from './store';
import type { TenantRecord, TokenRecord, TokenRole } from './tenant-model';
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

/** The stored token record belongs to the presented token (constant-time) and to its tenant. */
export function assertTokenRecord(parsed: ParsedToken, verifier: string, token: TokenRecord | undefined): asserts token is TokenRecord {
  if (
    !token ||
    !constantTimeEqual(Buffer.from(token.verifier, 'hex'), Buffer.from(verifier, 'hex')) ||
    token.tenantId !== parsed.tenantId
  ) {
    throw new ApiError(401, 'invalid_api_key', UNKNOWN_KEY);
  }
}

/** Only active tenants are served; an unknown or offboarded one looks like an unknown key. */
export function assertActiveTenant(tenant: TenantRecord | undefined): asserts tenant is TenantRecord {
  if (!tenant || tenant.status !== 'active') throw new ApiError(401, 'invalid_api_key', UNKNOWN_KEY);
}

/** Authenticates a presented token and checks its role. */
export async function authenticate(
  raw: string,
  deps: { region: string; pepper: PepperSource; store: TenantStore },
  requiredRole?: TokenRole,
): Promise<Principal> {
  const parsed = parsePresentedToken(raw, deps.region);
  const verifier = await verifierOf(deps.pepper, parsed.token);
  const token = await deps.store.getToken(verifier);
  assertTokenRecord(parsed, verifier, token);
  const tenant = await deps.store.getTenant(parsed.tenantId);
  assertActiveTenant(tenant);
  if (requiredRole && token.role !== requiredRole) {
    throw new ApiError(403, 'insufficient_role', `This route needs a ${requiredRole} token; this token has the ${token.role} role.`);
  }
  return { parsed, token, tenant };
}
