/**
 * Issue 9, point 5, at the unit level: principalOf reads nothing of the rows but the token's
 * verifier and tenant id until the presented token matched; only then are both items parsed.
 */
import { matchTokenRecord, principalOf, principalOfRead } from '../../../lambda/core/authenticate';
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

describe('principalOfRead and shared rows', () => {
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

  it('gives what matchTokenRecord then principalOf give, shared rows or not', () => {
    for (const [t, tenant] of [
      [goodToken, goodTenant],
      [sharedToken(), sharedTenant()],
    ] as const) {
      const read = principalOfRead(parsed, verifiers, t, undefined, tenant, REGION);
      expect(read.match).toEqual(matchTokenRecord(parsed, verifiers, t, undefined));
      expect({ token: read.token, tenant: read.tenant }).toEqual(principalOf(parsed, verifier, t, tenant, REGION));
    }
  });

  it("refuses in principalOf's order: a token item that does not match is 401 whatever the tenant item holds, then the tenant and the items", () => {
    const strangers = [undefined, { ...goodToken, verifier: 'ab'.repeat(32) }, { ...goodToken, tenantId: 'other' }, shareRow({ ...goodToken, verifier: 'cd'.repeat(32) })];
    for (const t of strangers) {
      for (const tenant of Object.values(tenants)) expect(result(() => principalOfRead(parsed, verifiers, t, undefined, tenant, REGION))).toBe('401 invalid_api_key');
    }
    for (const [k, want] of [
      ['missing', '401 invalid_api_key'],
      ['offboarded', '401 invalid_api_key'],
      ['badPolicy', 'stored tenant'],
      ['otherRegion', 'stored tenant'],
    ] as const) {
      expect([k, result(() => principalOfRead(parsed, verifiers, goodToken, undefined, tenants[k], REGION))]).toEqual([k, want]);
    }
    expect(result(() => principalOfRead(parsed, verifiers, { ...goodToken, role: 'root' }, undefined, goodTenant, REGION))).toBe('stored token');
  });

  it('during a pepper overlap: the item under the previous verifier, only when the current one finds none that matches', () => {
    const previousVerifier = computeVerifier(Buffer.alloc(32, 8), token).toString('hex');
    const overlap = { current: { version: 2, verifier }, previous: { version: 1, verifier: previousVerifier }, issuing: { version: 2, verifier } };
    const old = { ...goodToken, verifier: previousVerifier };
    expect(principalOfRead(parsed, overlap, undefined, old, goodTenant, REGION).match.matched.version).toBe(1);
    expect(principalOfRead(parsed, overlap, goodToken, old, goodTenant, REGION).match.matched.version).toBe(2);
    // An item filed under the previous verifier that is another token's: refused.
    expect(result(() => principalOfRead(parsed, overlap, undefined, { ...old, verifier: 'ef'.repeat(32) }, goodTenant, REGION))).toBe('401 invalid_api_key');
  });

  it('a shared token row whose verifier or tenant differs is refused on every request (its decoded verifier is kept, not its verdict)', () => {
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
});
