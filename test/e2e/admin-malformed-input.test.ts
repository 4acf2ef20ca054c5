/**
 * Acceptance 5 (admin app): malformed input on every route gets a clear 4xx JSON error in the
 * OpenAI shape, never a stack trace, never a 5xx, and never an echo of the submitted values.
 */
import { cellFixture, CellFixture } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import { AdminClient, call, cellApps, CellApps, expectApiError, OPERATOR_ARN, Reply, tenantId } from '../support/vault-client';

const REGION = 'eu-central-1';
const MAX = 4096;
const MARK = 'ZQXMARKERZQX';

let moto: MotoServer;
let f: CellFixture;
let apps: CellApps;
let tenant: string;
let tokenId: string;

beforeAll(async () => {
  moto = await startMoto();
  f = await cellFixture(moto.endpoint, REGION, { prefix: 'ma-euc1', maxRequestBytes: MAX });
  apps = cellApps(f);
  tenant = tenantId('adm-malformed');
  const created = await new AdminClient(apps.admin).createTenant(tenant, { policy: { rpm: 10 } });
  expect(created.status).toBe(201);
  tokenId = created.json.tokenId;
});
afterAll(() => moto?.stop());
afterEach(() => {
  expect(apps.serverErrors).toEqual([]);
  expect(apps.errors).toEqual([]);
  apps.reset();
});

const send = (method: string, path: string, body?: unknown, headers: Record<string, string | undefined> = {}): Promise<Reply> =>
  call(apps.admin, method, path, { iamCaller: OPERATOR_ARN, body, headers: { 'content-type': 'application/json', ...headers } });

/** The tenant is untouched: its policy, its one token, its one audit event. */
async function expectUnchanged(): Promise<void> {
  expect((await send('GET', `/admin/tenants/${tenant}/policy`)).json).toEqual({ policy: { rpm: 10 } });
  expect((await send('GET', `/admin/tenants/${tenant}/tokens`)).json.data).toHaveLength(1);
  expect((await send('GET', `/admin/tenants/${tenant}/audit`)).json.verification).toEqual(expect.objectContaining({ ok: true, events: 1, findings: [], unanchored: [] }));
}

const BODY_ROUTES: readonly [string, () => string, () => unknown][] = [
  ['POST', () => '/admin/tenants', () => ({ tenantId: tenantId('fresh'), mode: 'managed' })],
  ['PUT', () => `/admin/tenants/${tenant}/policy`, () => ({ policy: { rpm: 10 } })],
];

describe.each(BODY_ROUTES)('%s body route', (method, path, valid) => {
  it.each([
    ['not JSON', 'tenantId=acme'],
    ['truncated JSON', '{"policy": {"rpm": '],
    ['single-quoted JSON', "{'policy': {}}"],
    ['an empty body', ''],
    ['a blank body', '\t \r\n'],
    ['no body at all', undefined],
  ])('%s is 400 invalid_json', async (_label, body) => {
    const res = await call(apps.admin, method, path(), { iamCaller: OPERATOR_ARN, body: body as string | undefined, headers: { 'content-type': 'application/json' } });
    expectApiError(res, 400, 'invalid_json');
    await expectUnchanged();
  });

  it.each([['an array', '[{"policy":{}}]'], ['a string', '"policy"'], ['null', 'null'], ['a number', '1e3']])(
    'JSON that is %s is 400 invalid_request',
    async (_label, body) => {
      expectApiError(await send(method, path(), body), 400, 'invalid_request');
      await expectUnchanged();
    },
  );

  it('an unknown field is 400 naming the field', async () => {
    const res = await send(method, path(), { ...(valid() as object), region: MARK });
    expectApiError(res, 400, 'invalid_request', [MARK]);
    expect(res.json.error.message).toMatch(/region/);
    await expectUnchanged();
  });

  it('a body over maxRequestBytes is 413 with the limit', async () => {
    const base = JSON.stringify(valid());
    const over = base.slice(0, -1) + ' '.repeat(MAX - base.length + 1) + '}';
    expect(Buffer.byteLength(over)).toBe(MAX + 1);
    const res = await send(method, path(), over);
    expectApiError(res, 413, 'request_too_large');
    expect(res.json.error.limit).toBe(MAX);
    expectApiError(await send(method, path(), `{"label":"${'€'.repeat(MAX / 3)}"}`), 413, 'request_too_large');
    await expectUnchanged();
  });

  it.each(['text/plain', 'text/html', 'application/x-www-form-urlencoded', 'application/octet-stream'])('content-type %s is 415', async (type) => {
    expectApiError(await send(method, path(), JSON.stringify(valid()), { 'content-type': type }), 415, 'unsupported_media_type');
    await expectUnchanged();
  });
});

describe('field validation', () => {
  const cases: [string, string, () => unknown, RegExp][] = [
    ['POST', 'tenantId missing', () => ({ mode: 'managed' }), /tenantId/],
    ['POST', 'tenantId upper-case', () => ({ tenantId: MARK }), /tenantId/],
    ['POST', 'tenantId too short', () => ({ tenantId: 'ab' }), /tenantId/],
    ['POST', 'tenantId too long', () => ({ tenantId: `a${'b'.repeat(40)}` }), /tenantId/],
    ['POST', 'tenantId with a dot', () => ({ tenantId: 'acme.corp' }), /tenantId/],
    ['POST', 'tenantId as a number', () => ({ tenantId: 12345 }), /tenantId/],
    ['POST', 'an unknown mode', () => ({ tenantId: tenantId('m'), mode: `hybrid-${MARK}` }), /mode/],
    ['POST', 'a policy with rpm as a string', () => ({ tenantId: tenantId('p'), policy: { rpm: '5' } }), /policy\.rpm/],
    ['POST', 'a policy with an unknown key', () => ({ tenantId: tenantId('p'), policy: { burst: 1 } }), /burst/],
    ['POST', 'a route with no targets', () => ({ tenantId: tenantId('p'), policy: { routes: { fast: [] } } }), /routes/],
    ['POST', 'a route target with a bad provider id', () => ({ tenantId: tenantId('p'), policy: { routes: { fast: [{ provider: MARK, model: 'gpt-4o' }] } } }), /provider/],
    ['POST', 'a route target with an unknown field', () => ({ tenantId: tenantId('p'), policy: { routes: { fast: [{ provider: 'openai', model: 'gpt-4o', url: 'http://x' }] } } }), /url/],
    ['POST', 'a label too long', () => ({ tenantId: tenantId('l'), label: 'x'.repeat(65) }), /label/],
    ['POST', 'a policy that is an array', () => ({ tenantId: tenantId('p'), policy: [] }), /policy/],
    ['PUT', 'policy missing', () => ({}), /policy/],
    ['PUT', 'policy null', () => ({ policy: null }), /policy/],
    ['PUT', 'the policy not wrapped', () => ({ rpm: 5 }), /rpm|policy/],
    ['PUT', 'rpm zero', () => ({ policy: { rpm: 0 } }), /policy\.rpm/],
    ['PUT', 'a negative budget', () => ({ policy: { monthlyBudgetUsd: -1 } }), /monthlyBudgetUsd/],
    ['PUT', 'maxTokens not an integer', () => ({ policy: { maxTokens: 10.5 } }), /maxTokens/],
    ['PUT', 'a bad CIDR', () => ({ policy: { ipAllowlist: [`10.0.0.0/8 ${MARK}`] } }), /ipAllowlist/],
    ['PUT', 'too many route targets', () => ({ policy: { routes: { a: Array.from({ length: 9 }, () => ({ provider: 'openai', model: 'm' })) } } }), /routes/],
    ['PUT', 'a weight of zero', () => ({ policy: { routes: { a: [{ provider: 'openai', model: 'm', weight: 0 }] } } }), /weight/],
  ];

  it.each(cases)('%s with %s is 400 naming the field, not its value', async (method, _label, body, field) => {
    const path = method === 'POST' ? '/admin/tenants' : `/admin/tenants/${tenant}/policy`;
    const res = await send(method, path, body());
    expectApiError(res, 400, 'invalid_request', [MARK]);
    expect(res.json.error.message).toMatch(field);
    await expectUnchanged();
  });
});

describe('path parameters', () => {
  const badIds = ['AB', 'Upper-Case', '-leading', 'trailing-', 'a', 'x'.repeat(40), 'a_b', 'a.b'];
  const routes: [string, (id: string) => string][] = [
    ['GET', (id) => `/admin/tenants/${id}`],
    ['GET', (id) => `/admin/tenants/${id}/policy`],
    ['PUT', (id) => `/admin/tenants/${id}/policy`],
    ['GET', (id) => `/admin/tenants/${id}/tokens`],
    ['DELETE', (id) => `/admin/tenants/${id}/tokens/${tokenId}`],
    ['DELETE', (id) => `/admin/tenants/${id}`],
    ['GET', (id) => `/admin/tenants/${id}/audit`],
  ];

  it.each(routes)('%s with an invalid tenant id is 400 (never a lookup)', async (method, path) => {
    for (const id of badIds) {
      const res = await send(method, path(id), method === 'PUT' ? { policy: {} } : undefined);
      expectApiError(res, 400, 'invalid_request');
      expect(res.json.error.message).toMatch(/tenant id/);
    }
    await expectUnchanged();
  });

  it.each(routes)('%s with undecodable or unsafe segments is 404', async (method, path) => {
    for (const id of ['%ZZ', 'a%2Fb', 'a%20b', '%00', `${'a'.repeat(129)}`]) {
      const res = await send(method, path(id), method === 'PUT' ? { policy: {} } : undefined);
      expectApiError(res, 404, 'not_found');
    }
    await expectUnchanged();
  });

  it('an unknown token id is 404 token_not_found', async () => {
    for (const t of ['tk_unknown', '..', 'x'.repeat(128)]) {
      expectApiError(await send('DELETE', `/admin/tenants/${tenant}/tokens/${t}`), 404, 'token_not_found');
    }
    expectApiError(await send('DELETE', `/admin/tenants/${tenant}/tokens/a%3Bb`), 404, 'not_found');
    await expectUnchanged();
  });
});

describe('routing', () => {
  it.each([
    ['GET', '/'],
    ['GET', '/admin'],
    ['GET', '/admin/tenant'],
    ['GET', `/admin/tenants/${'t'}/secrets`],
    ['GET', '/admin/tenants/acme/tokens/tk_x/extra'],
    ['POST', '/admin/tenants/acme/offboard'],
    ['GET', '/vault/secrets'],
    ['GET', '/ADMIN/TENANTS'],
  ])('unknown route %s %s is 404', async (method, path) => {
    expectApiError(await send(method, path), 404, 'not_found');
  });

  it.each([
    ['GET', '/admin/tenants'],
    ['PUT', '/admin/tenants'],
    ['DELETE', '/admin/tenants'],
    ['POST', '/admin/tenants/acme-corp'],
    ['PATCH', '/admin/tenants/acme-corp'],
    ['POST', '/admin/tenants/acme-corp/policy'],
    ['DELETE', '/admin/tenants/acme-corp/policy'],
    ['POST', '/admin/tenants/acme-corp/tokens'],
    ['GET', '/admin/tenants/acme-corp/tokens/tk_x'],
    ['POST', '/admin/tenants/acme-corp/audit'],
    ['OPTIONS', '/admin/tenants'],
  ])('wrong method %s %s is 405', async (method, path) => {
    expectApiError(await send(method, path, { policy: {} }), 405, 'method_not_allowed');
    await expectUnchanged();
  });
});
