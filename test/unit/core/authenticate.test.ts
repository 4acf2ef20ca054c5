/**
 * Issue 9, point 5, at the unit level: principalOf reads nothing of the rows but the token's
 * verifier and tenant id until the presented token matched; only then are both items parsed.
 */
import { principalOf } from '../../../lambda/core/authenticate';
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
