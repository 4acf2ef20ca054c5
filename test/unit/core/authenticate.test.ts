/**
 * Issue 9, point 5, at the unit level: principalOf reads nothing of the rows but the token's
 * verifier and tenant id until the presented token matched; only then are both items parsed.
 */
import { matchTokenRecord, principalOf, principalOfMatch, type TokenMatch } from '../../../lambda/core/authenticate';
import { shareRow } from '../../../lambda/core/shared-rows';
import { ApiError } from '../../../lambda/core/http';
import { StoredRecordError } from '../../../lambda/core/tenant-model';
import { computeVerifier, generateToken, parseToken } from '../../../lambda/core/token';

const REGION = 'eu-central-1';
const PEPPER = Buffer.alloc(32, 7);
const token = generateToken('euc1', 'acme');
const parsed = parseToken(token, REGION);
const verifier = computeVerifier(PEPPER, token).toString('hex');
const now = '2026-01-01T00:00:00.000Z';
const goodToken = { verifier, tokenId: 'tk_1', tenantId: 'acme', role: 'invoke', createdAt: now };
const goodTenant = { tenantId: 'acme', region: REGION, mode: 'managed', status: 'active', policy: {}, createdAt: now, updatedAt: now, auditSeq: 1, auditHead: 'x' };

function outcome(rawToken: unknown, rawTenant: unknown): string {
  try {
    principalOf(parsed, verifier, rawToken, rawTenant, REGION);
    return 'ok';
  } catch (err) {
    if (err instanceof ApiError) return `${err.status} ${err.code}`;
    if (err instanceof StoredRecordError) return `stored ${err.record}`;
    throw err;
  }
}

// Rows in every state an outsider might want to tell apart.
const tenants: Record<string, unknown> = {
  healthy: goodTenant,
  missing: undefined,
  garbage: 'not an object',
  badPolicy: { ...goodTenant, policy: 'garbage' },
  badVersions: { ...goodTenant, secretVersions: { 'openai#default': { version: 'two' } } },
  otherRegion: { ...goodTenant, region: 'us-east-1' },
  offboarded: { ...goodTenant, status: 'offboarded' },
};

it('a token item that does not match (missing, other verifier, other tenant, malformed) is 401 whatever the tenant item holds', () => {
  const strangers = [undefined, null, 'x', { ...goodToken, verifier: 'ab'.repeat(32) }, { ...goodToken, tenantId: 'other' }, { ...goodToken, verifier: 42 }];
  for (const t of strangers) {
    for (const tenant of Object.values(tenants)) expect(outcome(t, tenant)).toBe('401 invalid_api_key');
  }
});

it('after a match: an inactive or missing tenant is 401; a malformed tenant or token item is a stored-record error', () => {
  expect(outcome(goodToken, tenants.healthy)).toBe('ok');
  expect(outcome(goodToken, tenants.missing)).toBe('401 invalid_api_key');
  expect(outcome(goodToken, tenants.offboarded)).toBe('401 invalid_api_key');
  expect(outcome(goodToken, tenants.garbage)).toBe('401 invalid_api_key');
  for (const k of ['badPolicy', 'badVersions', 'otherRegion']) expect([k, outcome(goodToken, tenants[k])]).toEqual([k, 'stored tenant']);
  expect(outcome({ ...goodToken, role: 'root' }, tenants.healthy)).toBe('stored token');
  expect(outcome({ ...goodToken, limits: { rpm: -1 } }, tenants.healthy)).toBe('stored token');
});

describe('principalOfMatch and shared rows', () => {
  const verifiers = { current: { version: 1, verifier }, issuing: { version: 1, verifier } };
  const sharedToken = () => shareRow(JSON.parse(JSON.stringify(goodToken)) as Record<string, unknown>);
  const sharedTenant = () => shareRow(JSON.parse(JSON.stringify(goodTenant)) as Record<string, unknown>);
  const result = (f: () => unknown): string => {
    try {
      f();
      return 'ok';
    } catch (err) {
      if (err instanceof ApiError) return `${err.status} ${err.code}`;
      if (err instanceof StoredRecordError) return `stored ${err.record}`;
      throw err;
    }
  };

  it('a match of matchTokenRecord for this presented token gives what principalOf gives, shared rows or not', () => {
    for (const [t, tenant] of [
      [goodToken, goodTenant],
      [sharedToken(), sharedTenant()],
    ] as const) {
      const match = matchTokenRecord(parsed, verifiers, t, undefined);
      expect(principalOfMatch(parsed, match, tenant, REGION)).toEqual(principalOf(parsed, verifier, t, tenant, REGION));
    }
  });

  it('a shared token row whose verifier or tenant differs is refused, on every request (its decoded verifier is kept, not its verdict)', () => {
    const other = shareRow({ ...goodToken, verifier: 'ab'.repeat(32) });
    const otherTenant = shareRow({ ...goodToken, tenantId: 'other' });
    for (let i = 0; i < 3; i++) {
      expect(result(() => matchTokenRecord(parsed, verifiers, other, undefined))).toBe('401 invalid_api_key');
      expect(result(() => matchTokenRecord(parsed, verifiers, otherTenant, undefined))).toBe('401 invalid_api_key');
      expect(result(() => principalOf(parsed, verifier, other, goodTenant, REGION))).toBe('401 invalid_api_key');
    }
    const good = sharedToken();
    expect(result(() => matchTokenRecord(parsed, verifiers, good, undefined))).toBe('ok');
    // The same token row presented with another token's verifier still fails.
    const stranger = computeVerifier(PEPPER, generateToken('euc1', 'acme')).toString('hex');
    expect(result(() => principalOf(parsed, stranger, good, goodTenant, REGION))).toBe('401 invalid_api_key');
  });

  it('a match not made by matchTokenRecord for this same presented token is compared again', () => {
    // Hand-made: never trusted.
    const forged: TokenMatch = { matched: verifiers.current, item: { ...goodToken, verifier: 'ab'.repeat(32) } };
    expect(result(() => principalOfMatch(parsed, forged, goodTenant, REGION))).toBe('401 invalid_api_key');
    // Made for another presented token of another tenant: its item is not this token's.
    const otherToken = generateToken('euc1', 'globex');
    const otherParsed = parseToken(otherToken, REGION);
    const otherVerifier = computeVerifier(PEPPER, otherToken).toString('hex');
    const otherItem = { ...goodToken, verifier: otherVerifier, tenantId: 'globex' };
    const theirs = matchTokenRecord(otherParsed, { current: { version: 1, verifier: otherVerifier }, issuing: { version: 1, verifier: otherVerifier } }, otherItem, undefined);
    expect(result(() => principalOfMatch(parsed, theirs, goodTenant, REGION))).toBe('401 invalid_api_key');
    // A parse of the same text is another presented token object: compared again, and it matches.
    const again = parseToken(token, REGION);
    expect(result(() => principalOfMatch(again, matchTokenRecord(parsed, verifiers, goodToken, undefined), goodTenant, REGION))).toBe('ok');
    // Matches are frozen: their item cannot be swapped after the comparison.
    const match = matchTokenRecord(parsed, verifiers, goodToken, undefined);
    expect(Object.isFrozen(match)).toBe(true);
  });
});
