/**
 * Acceptance 5 (vault app): malformed input on every route gets a clear 4xx JSON error in the
 * OpenAI shape, never a stack trace, never a 5xx, and never an echo of the submitted values.
 */
import { cellFixture, CellFixture } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import { AdminClient, call, cellApps, CellApps, expectApiError, Reply, tenantId, VaultClient } from '../support/vault-client';

const REGION = 'eu-central-1';
const MAX = 4096;
/** A value that must never come back in an error (a stand-in for whatever a client sent). */
const MARK = 'ZQXMARKERZQX';

let moto: MotoServer;
let f: CellFixture;
let apps: CellApps;
let token: string;
let tokenIdToRotate: string;

beforeAll(async () => {
  moto = await startMoto();
  f = await cellFixture(moto.endpoint, REGION, { prefix: 'mv-euc1', maxRequestBytes: MAX });
  apps = cellApps(f);
  token = (await new AdminClient(apps.admin).tenantWithToken(tenantId('malformed'))).token;
  const v = new VaultClient(apps.vault, token);
  expect((await v.storeSecret('openai', 'sk-existing-secret-0123456789')).status).toBe(201);
  tokenIdToRotate = (await v.createToken('invoke')).json.tokenId;
});
afterAll(() => moto?.stop());
afterEach(() => {
  expect(apps.serverErrors).toEqual([]);
  expect(apps.errors).toEqual([]);
  apps.reset();
});

const send = (method: string, path: string, body?: unknown, headers: Record<string, string | undefined> = {}): Promise<Reply> =>
  call(apps.vault, method, path, { token, body, headers: { 'content-type': 'application/json', ...headers } });

/** Nothing changed: the tenant still has exactly its one secret at version 1. */
async function expectUnchanged(): Promise<void> {
  const secrets = (await send('GET', '/vault/secrets')).json.data;
  expect(secrets.map((s: { provider: string; name: string; version: number }) => `${s.provider}/${s.name}@${s.version}`)).toEqual(['openai/default@1']);
}

const BODY_ROUTES: readonly [string, string, () => unknown][] = [
  ['POST', '/vault/secrets', () => ({ provider: 'openai', name: 'other', apiKey: 'sk-valid-key-0123456789' })],
  ['PUT', '/vault/secrets/openai/default', () => ({ apiKey: 'sk-valid-key-0123456789' })],
  ['POST', '/vault/tokens', () => ({ role: 'invoke' })],
];

describe.each(BODY_ROUTES)('%s %s', (method, path, valid) => {
  it.each([
    ['not JSON', 'hello'],
    ['truncated JSON', '{"apiKey": "sk-'],
    ['JSON with a trailing comma', '{"role": "invoke",}'],
    ['an empty body', ''],
    ['a blank body', '  \n '],
    ['no body at all', undefined],
  ])('%s is 400 invalid_json', async (_label, body) => {
    const res = await call(apps.vault, method, path, { token, body: body as string | undefined, headers: { 'content-type': 'application/json' } });
    expectApiError(res, 400, 'invalid_json');
    expect(res.json.error.type).toBe('invalid_request_error');
  });

  it.each([['an array', '[]'], ['a string', '"x"'], ['null', 'null'], ['a number', '42'], ['a boolean', 'true']])(
    'JSON that is %s is 400 invalid_request',
    async (_label, body) => {
      expectApiError(await send(method, path, body), 400, 'invalid_request');
    },
  );

  it('an unknown field is 400 naming the field', async () => {
    const res = await send(method, path, { ...(valid() as object), extra: MARK });
    expectApiError(res, 400, 'invalid_request', [MARK]);
    expect(res.json.error.message).toMatch(/extra/);
  });

  it('a __proto__ key is refused and pollutes nothing', async () => {
    const body = `{"__proto__": {"polluted": "${MARK}"}, ${JSON.stringify(valid()).slice(1)}`;
    const res = await send(method, path, body);
    expectApiError(res, 400, 'invalid_request', [MARK]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('a body over maxRequestBytes is 413 with the limit; at the limit it is parsed', async () => {
    const base = JSON.stringify(valid());
    const over = base.slice(0, -1) + ' '.repeat(MAX - base.length + 1) + '}';
    expect(Buffer.byteLength(over)).toBe(MAX + 1);
    const res = await send(method, path, over);
    expectApiError(res, 413, 'request_too_large');
    expect(res.json.error.limit).toBe(MAX);
    // Multi-byte characters count as bytes, not characters.
    const wide = `{"label": "${'é'.repeat(MAX / 2)}"}`;
    expect(wide.length).toBeLessThan(MAX);
    expectApiError(await send(method, path, wide), 413, 'request_too_large');
    // Exactly at the limit: not a 413 (whatever the route then decides).
    const atLimit = base.slice(0, -1) + ' '.repeat(MAX - base.length) + '}';
    expect(Buffer.byteLength(atLimit)).toBe(MAX);
    const parsed = await send(method, path, atLimit.replace(/"sk-valid-key-0123456789"/, '"x"'));
    expect(parsed.status).not.toBe(413);
    expect(parsed.status).toBeLessThan(500);
  });

  it.each(['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/xml', 'application/jsonp'])(
    'content-type %s is 415',
    async (type) => {
      const res = await send(method, path, JSON.stringify(valid()), { 'content-type': type });
      expectApiError(res, 415, 'unsupported_media_type');
    },
  );
});

describe('field validation', () => {
  const cases: [string, string, string, unknown, RegExp][] = [
    ['POST', '/vault/secrets', 'provider as a number', { provider: 1, apiKey: 'sk-valid-key-0123456789' }, /provider/],
    ['POST', '/vault/secrets', 'provider missing', { apiKey: 'sk-valid-key-0123456789' }, /provider/],
    ['POST', '/vault/secrets', 'apiKey missing', { provider: 'openai', name: 'x1' }, /apiKey/],
    ['POST', '/vault/secrets', 'apiKey as a number', { provider: 'openai', name: 'x2', apiKey: 12345678901 }, /apiKey/],
    ['POST', '/vault/secrets', 'apiKey too short', { provider: 'openai', name: 'x3', apiKey: 'sk-1' }, /apiKey/],
    ['POST', '/vault/secrets', 'apiKey with spaces', { provider: 'openai', name: 'x4', apiKey: `sk ${MARK} 123` }, /apiKey/],
    ['POST', '/vault/secrets', 'apiKey with a newline', { provider: 'openai', name: 'x5', apiKey: `sk-${MARK}\n123` }, /apiKey/],
    ['POST', '/vault/secrets', 'apiKey not ASCII', { provider: 'openai', name: 'x6', apiKey: `sk-${MARK}-ünï` }, /apiKey/],
    ['POST', '/vault/secrets', 'apiKey over 1024 characters', { provider: 'openai', name: 'x7', apiKey: `sk-${'a'.repeat(1030)}` }, /apiKey/],
    ['POST', '/vault/secrets', 'apiKey as an object', { provider: 'openai', name: 'x8', apiKey: { value: MARK } }, /apiKey/],
    ['POST', '/vault/secrets', 'name upper-case', { provider: 'openai', name: `${MARK}`, apiKey: 'sk-valid-key-0123456789' }, /name/],
    ['POST', '/vault/secrets', 'name empty', { provider: 'openai', name: '', apiKey: 'sk-valid-key-0123456789' }, /name/],
    ['POST', '/vault/secrets', 'name too long', { provider: 'openai', name: 'a'.repeat(33), apiKey: 'sk-valid-key-0123456789' }, /name/],
    ['POST', '/vault/secrets', 'name with a slash', { provider: 'openai', name: 'a/b', apiKey: 'sk-valid-key-0123456789' }, /name/],
    ['PUT', '/vault/secrets/openai/default', 'apiKey missing', {}, /apiKey/],
    ['PUT', '/vault/secrets/openai/default', 'apiKey null', { apiKey: null }, /apiKey/],
    ['PUT', '/vault/secrets/openai/default', 'a provider field', { apiKey: 'sk-valid-key-0123456789', provider: 'openai' }, /provider/],
    ['POST', '/vault/tokens', 'an unknown role', { role: `root-${MARK}` }, /role/],
    ['POST', '/vault/tokens', 'role missing', { label: 'x' }, /role/],
    ['POST', '/vault/tokens', 'role as a number', { role: 1 }, /role/],
    ['POST', '/vault/tokens', 'label too long', { role: 'invoke', label: 'x'.repeat(65) }, /label/],
    ['POST', '/vault/tokens', 'label not ASCII', { role: 'invoke', label: `${MARK}\u0000` }, /label/],
    ['POST', '/vault/tokens', 'limits not an object', { role: 'invoke', limits: MARK }, /limits/],
    ['POST', '/vault/tokens', 'a negative rpm', { role: 'invoke', limits: { rpm: -1 } }, /limits\.rpm/],
    ['POST', '/vault/tokens', 'a fractional rpm', { role: 'invoke', limits: { rpm: 1.5 } }, /limits\.rpm/],
    ['POST', '/vault/tokens', 'rpm as a string', { role: 'invoke', limits: { rpm: '10' } }, /limits\.rpm/],
    ['POST', '/vault/tokens', 'an unknown limit', { role: 'invoke', limits: { burst: 5 } }, /burst/],
    ['POST', '/vault/tokens', 'a bad IP allowlist entry', { role: 'invoke', limits: { ipAllowlist: [`${MARK}`] } }, /ipAllowlist/],
    ['POST', '/vault/tokens', 'a bad model name', { role: 'invoke', limits: { allowedModels: [`bad model ${MARK}`] } }, /allowedModels/],
    ['POST', '/vault/tokens', 'a budget as a string', { role: 'invoke', limits: { monthlyBudgetUsd: 'lots' } }, /monthlyBudgetUsd/],
  ];

  it.each(cases)('%s %s with %s is 400 naming the field, not its value', async (method, path, _label, body, field) => {
    const res = await send(method, path, body);
    expectApiError(res, 400, 'invalid_request', [MARK]);
    expect(res.json.error.message).toMatch(field);
    await expectUnchanged();
  });

  it.each([
    ['POST', '/vault/secrets', { provider: `${MARK}`, apiKey: 'sk-valid-key-0123456789' }],
    ['POST', '/vault/secrets', { provider: 'constructor', apiKey: 'sk-valid-key-0123456789' }],
    ['POST', '/vault/secrets', { provider: '', apiKey: 'sk-valid-key-0123456789' }],
    ['PUT', `/vault/secrets/${MARK}/default`, { apiKey: 'sk-valid-key-0123456789' }],
  ])('%s %s with a provider that is not enabled is 400 unknown_provider, listing the enabled ones', async (method, path, body) => {
    const res = await send(method, path, body);
    expectApiError(res, 400, 'unknown_provider', [MARK]);
    expect(res.json.error.message).toMatch(/openai, anthropic, mistral/);
    await expectUnchanged();
  });
});

describe('path parameters', () => {
  it.each([
    ['PUT', '/vault/secrets/openai/UPPER', 400, 'invalid_request'],
    ['PUT', '/vault/secrets/openai/a.b', 400, 'invalid_request'],
    ['PUT', '/vault/secrets/openai/missing', 404, 'secret_not_found'],
    ['PUT', '/vault/secrets/openai/a%20b', 404, 'not_found'],
    ['PUT', '/vault/secrets/openai/a%2Fb', 404, 'not_found'],
    ['PUT', '/vault/secrets/openai/%E0%A4%A', 404, 'not_found'],
    ['PUT', `/vault/secrets/openai/${'a'.repeat(129)}`, 404, 'not_found'],
    ['DELETE', '/vault/secrets/openai/UPPER', 404, 'secret_not_found'],
    ['DELETE', '/vault/secrets/nope/default', 404, 'secret_not_found'],
    ['DELETE', '/vault/secrets/openai/%00', 404, 'not_found'],
    ['DELETE', '/vault/secrets/openai/a%2F..%2F..', 404, 'not_found'],
    ['POST', '/vault/tokens/tk_unknown/rotate', 404, 'token_not_found'],
    ['POST', '/vault/tokens/../rotate', 404, 'token_not_found'],
    ['POST', '/vault/tokens/%ZZ/rotate', 404, 'not_found'],
    ['DELETE', '/vault/tokens/tk_unknown', 404, 'token_not_found'],
    ['DELETE', '/vault/tokens/a%3Bb', 404, 'not_found'],
  ] as const)('%s %s is %d %s', async (method, path, status, code) => {
    const res = await send(method, path, method === 'PUT' ? { apiKey: 'sk-valid-key-0123456789' } : undefined);
    expectApiError(res, status, code);
    await expectUnchanged();
  });

  it('query strings and a trailing slash do not change the route', async () => {
    expect((await send('GET', '/vault/secrets?limit=1')).status).toBe(200);
    expect((await send('GET', '/vault/secrets/')).status).toBe(200);
  });
});

describe('routing', () => {
  it.each([
    ['GET', '/'],
    ['GET', '/vault'],
    ['GET', '/vault/secret'],
    ['GET', '/vault/secrets/openai'],
    ['GET', '/vault/secrets/openai/default/extra'],
    ['POST', '/vault/tokens/tk_x/rotate/now'],
    ['GET', '/admin/tenants/abc'],
    ['POST', '/v1/chat/completions'],
    ['GET', '/VAULT/SECRETS'],
  ])('unknown route %s %s is 404', async (method, path) => {
    const res = await send(method, path);
    expectApiError(res, 404, 'not_found');
    expect(res.json.error.type).toBe('not_found_error');
  });

  it.each([
    ['PATCH', '/vault/secrets'],
    ['DELETE', '/vault/secrets'],
    ['PUT', '/vault/secrets'],
    ['GET', '/vault/secrets/openai/default'],
    ['POST', '/vault/secrets/openai/default'],
    ['PUT', '/vault/tokens'],
    ['GET', '/vault/tokens/tk_x/rotate'],
    ['PUT', '/vault/tokens/tk_x'],
    ['HEAD', '/vault/secrets'],
    ['OPTIONS', '/vault/tokens'],
    ['TRACE', '/vault/tokens'],
  ])('wrong method %s %s is 405', async (method, path) => {
    const res = await send(method, path, { provider: 'openai', apiKey: 'sk-valid-key-0123456789' });
    expectApiError(res, 405, 'method_not_allowed');
  });

  it('routes without a body ignore one, even if malformed, oversize or of another type', async () => {
    const junk = `{not json ${'x'.repeat(MAX)}`;
    const headers = { 'content-type': 'text/plain' };
    expect((await send('GET', '/vault/secrets', junk, headers)).status).toBe(200);
    expect((await send('GET', '/vault/tokens', junk, headers)).status).toBe(200);
    const rotated = await send('POST', `/vault/tokens/${tokenIdToRotate}/rotate`, junk, headers);
    expect(rotated.status).toBe(201);
    tokenIdToRotate = rotated.json.tokenId;
    expectApiError(await send('DELETE', '/vault/secrets/openai/absent', junk, headers), 404, 'secret_not_found');
    expect((await send('DELETE', `/vault/tokens/${tokenIdToRotate}`, junk, headers)).status).toBe(200);
    await expectUnchanged();
  });

  it('a lower-case method is the same method', async () => {
    expect((await send('get', '/vault/secrets')).status).toBe(200);
  });

  it('auth comes before the body: a malformed body without a token is 401, not 400', async () => {
    const res = await call(apps.vault, 'POST', '/vault/secrets', { body: 'not json', headers: { 'content-type': 'application/json' } });
    expectApiError(res, 401, 'missing_api_key');
  });
});
