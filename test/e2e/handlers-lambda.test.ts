/**
 * Acceptance 7: the real Lambda handlers (lambda/handlers/vault.ts and admin.ts), loaded in an
 * isolated module registry with the provisioned cell's environment, invoked with API Gateway proxy
 * events. Their clients reach moto only through AWS_ENDPOINT_URL; a socket guard refuses any
 * non-loopback connection. Their log lines (stdout) must never contain a canary.
 */
import { Socket } from 'node:net';
import { DeleteSecretCommand } from '@aws-sdk/client-secrets-manager';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { canaryHits, captureOutput, makeCanary, OutputCapture } from '../support/canary';
import { cellFixture, CellFixture, TEST_PROVIDERS } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import { dumpCell, expectApiError, expectNoStackTrace, forgedToken, identity, openToString, rawTableText, Reply, tenantId } from '../support/vault-client';

const REGION = 'eu-central-1';
const OPERATOR = 'arn:aws:sts::123456789012:assumed-role/PlatformOperator/alice';
const PROVIDERS = { ...TEST_PROVIDERS, 'acme-llm': { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:9' } };

type Handler = (event: APIGatewayProxyEvent) => Promise<APIGatewayProxyResult>;

let moto: MotoServer;
let f: CellFixture;
let vault: Handler;
let admin: Handler;
let capture: OutputCapture;
const savedEnv = { ...process.env };
const blockedConnections: string[] = [];
const canaries: string[] = [];
const bodies: string[] = [];
const originalConnect = Socket.prototype.connect;
let spareToken: string;

/** Refuses (and records) any TCP connection that is not to loopback. */
function guardSockets(): void {
  Socket.prototype.connect = function guarded(this: Socket, ...args: unknown[]) {
    const first = Array.isArray(args[0]) ? args[0][0] : args[0];
    const opts = (typeof first === 'object' && first !== null ? first : { port: first, host: args[1] }) as { host?: string; path?: string };
    const host = opts.path ? 'unix' : (opts.host ?? 'localhost');
    if (!['127.0.0.1', 'localhost', '::1', 'unix'].includes(host)) {
      blockedConnections.push(host);
      throw new Error(`test guard: refused a connection to ${host}`);
    }
    return (originalConnect as (...a: unknown[]) => Socket).apply(this, args);
  } as typeof Socket.prototype.connect;
}

function lambdaEnv(): Record<string, string> {
  return {
    ...f.cell.env,
    AWS_ENDPOINT_URL: moto.endpoint,
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: REGION,
    AWS_DEFAULT_REGION: REGION,
    AWS_EC2_METADATA_DISABLED: 'true',
    AWS_CONFIG_FILE: '/nonexistent/aws-config',
    AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    AWS_LAMBDA_FUNCTION_NAME: 'sovereign-router-test',
  };
}

async function loadHandlers(): Promise<{ vault: Handler; admin: Handler }> {
  for (const k of ['AWS_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_CONTAINER_CREDENTIALS_FULL_URI', 'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI']) {
    delete process.env[k];
  }
  Object.assign(process.env, lambdaEnv());
  let loaded: { vault: Handler; admin: Handler } | undefined;
  await jest.isolateModulesAsync(async () => {
    const v = await import('../../lambda/handlers/vault');
    const a = await import('../../lambda/handlers/admin');
    loaded = { vault: v.handler, admin: a.handler };
  });
  return loaded!;
}

beforeAll(async () => {
  moto = await startMoto();
  f = await cellFixture(moto.endpoint, REGION, { prefix: 'hl-euc1', providers: PROVIDERS });
  guardSockets();
  ({ vault, admin } = await loadHandlers());
  capture = captureOutput();
  // A valid token for the error-path test, created while the pepper still exists.
  spareToken = (await adminCall('POST', '/admin/tenants', '/admin/tenants', { body: { tenantId: tenantId('hl-spare') } })).json.token;
});
afterAll(async () => {
  capture?.restore();
  Socket.prototype.connect = originalConnect;
  for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
  Object.assign(process.env, savedEnv);
  await moto?.stop();
});

interface EventOptions {
  token?: string;
  body?: unknown;
  headers?: Record<string, string>;
  userArn?: string | null;
  base64?: boolean;
  query?: Record<string, string>;
}

/** An API Gateway REST proxy event, as the stage would deliver it. */
function event(method: string, path: string, resource: string, opts: EventOptions = {}): APIGatewayProxyEvent {
  const headers: Record<string, string> = { Host: 'abc123.execute-api.eu-central-1.amazonaws.com', 'User-Agent': 'e2e', ...(opts.headers ?? {}) };
  let body: string | null = null;
  if (opts.body !== undefined) {
    body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    headers['Content-Type'] ??= 'application/json';
    if (opts.base64) body = Buffer.from(body, 'utf8').toString('base64');
  }
  if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
  return {
    httpMethod: method,
    path,
    resource,
    headers,
    multiValueHeaders: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, [v]])),
    body,
    isBase64Encoded: opts.base64 ?? false,
    pathParameters: null,
    queryStringParameters: opts.query ?? null,
    multiValueQueryStringParameters: opts.query ? Object.fromEntries(Object.entries(opts.query).map(([k, v]) => [k, [v]])) : null,
    stageVariables: null,
    requestContext: {
      accountId: '123456789012',
      apiId: 'abc123',
      authorizer: null,
      httpMethod: method,
      path: `/prod${path}`,
      protocol: 'HTTP/1.1',
      requestId: `req-${Math.random().toString(36).slice(2)}`,
      requestTimeEpoch: Date.now(),
      resourceId: 'res',
      resourcePath: resource,
      stage: 'prod',
      identity: {
        accessKey: null,
        accountId: opts.userArn ? '123456789012' : null,
        apiKey: null,
        apiKeyId: null,
        caller: null,
        clientCert: null,
        cognitoAuthenticationProvider: null,
        cognitoAuthenticationType: null,
        cognitoIdentityId: null,
        cognitoIdentityPoolId: null,
        principalOrgId: null,
        sourceIp: '198.51.100.7',
        user: null,
        userAgent: 'e2e',
        userArn: opts.userArn ?? null,
      },
    },
  } as APIGatewayProxyEvent;
}

async function invoke(handler: Handler, ev: APIGatewayProxyEvent): Promise<Reply> {
  const res = await handler(ev);
  bodies.push(res.body, JSON.stringify(res.headers ?? {}));
  let json: unknown;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, headers: (res.headers ?? {}) as Record<string, string>, body: res.body, json };
}

const adminCall = (method: string, path: string, resource: string, opts: EventOptions = {}) =>
  invoke(admin, event(method, path, resource, { userArn: OPERATOR, ...opts }));
const vaultCall = (method: string, path: string, resource: string, opts: EventOptions = {}) => invoke(vault, event(method, path, resource, opts));

function canary(tag: string): string {
  const c = makeCanary(tag);
  canaries.push(c);
  return c;
}

/** The JSON log lines the handlers wrote to stdout since `from`. */
function logLinesSince(from: number): Record<string, unknown>[] {
  return capture.lines
    .slice(from)
    .join('')
    .split('\n')
    .filter((l) => l.trim().startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('handlers with the cell environment', () => {
  it('run the full managed flow through API Gateway events', async () => {
    const mark = capture.lines.length;
    const id = tenantId('hl-managed');
    const created = await adminCall('POST', '/admin/tenants', '/admin/tenants', { body: { tenantId: id, policy: { rpm: 60 } } });
    expect(created.status).toBe(201);
    expect(created.headers['content-type']).toMatch(/^application\/json/);
    const token: string = created.json.token;

    const c1 = canary('h1');
    const stored = await vaultCall('POST', '/vault/secrets', '/vault/secrets', { token, body: { provider: 'openai', apiKey: c1 } });
    expect([stored.status, stored.json.provider, stored.json.version]).toEqual([201, 'openai', 1]);
    // A base64-encoded body (binary media types) is decoded by the handler.
    const c2 = canary('h2');
    const b64 = await vaultCall('POST', '/vault/secrets', '/vault/secrets', { token, body: { provider: 'acme-llm', apiKey: c2 }, base64: true });
    expect([b64.status, b64.json.provider]).toEqual([201, 'acme-llm']);

    const list = await vaultCall('GET', '/vault/secrets', '/vault/secrets', { token });
    expect(list.json.data.map((s: { provider: string }) => s.provider).sort()).toEqual(['acme-llm', 'openai']);

    const c3 = canary('h3');
    const rotated = await vaultCall('PUT', '/vault/secrets/openai/default', '/vault/secrets/{provider}/{name}', { token, body: { apiKey: c3 } });
    expect([rotated.status, rotated.json.version]).toEqual([200, 2]);
    // The handler sealed under the cell's root key: the fixture's adapter opens it.
    expect(await openToString(await f.store.getSecret(id, 'openai', 'default'), identity(REGION, id, 'openai', 'default', 2), f.dataKeys, undefined, undefined, await f.store.getErasureKey(id))).toBe(c3);

    const inv = await vaultCall('POST', '/vault/tokens', '/vault/tokens', { token, body: { role: 'invoke', limits: { rpm: 5 } } });
    expect([inv.status, inv.json.role]).toEqual([201, 'invoke']);
    const rot = await vaultCall('POST', `/vault/tokens/${inv.json.tokenId}/rotate`, '/vault/tokens/{tokenId}/rotate', { token });
    expect(rot.status).toBe(201);
    expectApiError(await vaultCall('GET', '/vault/secrets', '/vault/secrets', { token: inv.json.token }), 401, 'invalid_api_key');
    expectApiError(await vaultCall('GET', '/vault/secrets', '/vault/secrets', { token: rot.json.token }), 403, 'insufficient_role');
    expect((await vaultCall('DELETE', `/vault/tokens/${rot.json.tokenId}`, '/vault/tokens/{tokenId}', { token })).status).toBe(200);
    expect((await vaultCall('DELETE', '/vault/secrets/acme-llm/default', '/vault/secrets/{provider}/{name}', { token })).status).toBe(200);

    const put = await adminCall('PUT', `/admin/tenants/${id}/policy`, '/admin/tenants/{tenantId}/policy', {
      body: { policy: { rpm: 120, routes: { chat: [{ provider: 'openai', model: 'gpt-4o-mini' }] } } },
    });
    expect(put.status).toBe(200);
    expect((await adminCall('GET', `/admin/tenants/${id}/policy`, '/admin/tenants/{tenantId}/policy')).json.policy.rpm).toBe(120);
    expect((await adminCall('GET', `/admin/tenants/${id}/tokens`, '/admin/tenants/{tenantId}/tokens')).json.data).toHaveLength(1);

    const audit = await adminCall('GET', `/admin/tenants/${id}/audit`, '/admin/tenants/{tenantId}/audit');
    expect(audit.json.verification).toEqual(expect.objectContaining({ ok: true, events: 9, findings: [], unanchored: [] }));
    expect(audit.json.data[0].actor).toBe(`iam:${OPERATOR}`);
    expect(audit.json.data.at(-1)).toEqual(expect.objectContaining({ type: 'policy.updated', actor: `iam:${OPERATOR}` }));

    const off = await adminCall('DELETE', `/admin/tenants/${id}`, '/admin/tenants/{tenantId}');
    expect([off.status, off.json.secretsDestroyed, off.json.tokensRevoked]).toEqual([200, 1, 1]);
    expectApiError(await vaultCall('GET', '/vault/secrets', '/vault/secrets', { token }), 401, 'invalid_api_key');
    const dump = await dumpCell(f);
    expect(dump.tenants.filter((i) => i.pk === `TENANT#${id}` && i.sk !== 'META')).toEqual([]);
    expect(dump.tokens.filter((t) => t.tenantId === id)).toEqual([]);

    // One JSON log line per request, with method, resource and status, and the IAM caller on admin.
    const lines = logLinesSince(mark);
    expect(lines.filter((l) => l.service === 'vault' && l.message === 'request')).toHaveLength(11);
    expect(lines.filter((l) => l.service === 'admin' && l.message === 'request')).toHaveLength(6);
    expect(lines.filter((l) => l.level !== 'INFO')).toEqual([]);
    expect(lines.find((l) => l.service === 'admin' && l.message === 'request')).toEqual(
      expect.objectContaining({ level: 'INFO', method: 'POST', resource: '/admin/tenants', status: 201, caller: OPERATOR }),
    );
    expect(lines.find((l) => l.service === 'vault' && l.resource === '/vault/secrets/{provider}/{name}')).toEqual(
      expect.objectContaining({ method: 'PUT', status: 200 }),
    );
  });

  it('run the sovereign flow: token rotation re-wraps the factor, the last admin token stays', async () => {
    const id = tenantId('hl-sov');
    const created = await adminCall('POST', '/admin/tenants', '/admin/tenants', { body: { tenantId: id, mode: 'sovereign' } });
    expect(created.status).toBe(201);
    const t1: string = created.json.token;
    expect((await vaultCall('POST', '/vault/secrets', '/vault/secrets', { token: t1, body: { provider: 'anthropic', apiKey: canary('hs1') } })).json.sovereign).toBe(true);
    const t2 = (await vaultCall('POST', '/vault/tokens', '/vault/tokens', { token: t1, body: { role: 'tenant-admin' } })).json;
    const t2b = (await vaultCall('POST', `/vault/tokens/${t2.tokenId}/rotate`, '/vault/tokens/{tokenId}/rotate', { token: t1 })).json;
    expectApiError(await vaultCall('GET', '/vault/tokens', '/vault/tokens', { token: t2.token }), 401, 'invalid_api_key');
    const byNew = await vaultCall('PUT', '/vault/secrets/anthropic/default', '/vault/secrets/{provider}/{name}', { token: t2b.token, body: { apiKey: canary('hs2') } });
    expect([byNew.status, byNew.json.version, byNew.json.sovereign]).toEqual([200, 2, true]);
    expect((await vaultCall('DELETE', `/vault/tokens/${created.json.tokenId}`, '/vault/tokens/{tokenId}', { token: t2b.token })).status).toBe(200);
    expectApiError(await vaultCall('DELETE', `/vault/tokens/${t2b.tokenId}`, '/vault/tokens/{tokenId}', { token: t2b.token }), 409, 'last_admin_token');
    expectApiError(await vaultCall('GET', '/vault/secrets', '/vault/secrets', { token: t1 }), 401, 'invalid_api_key');
  });

  it('map bad input, bad tokens and unknown routes to clean 4xx errors', async () => {
    const id = tenantId('hl-err');
    const { token } = (await adminCall('POST', '/admin/tenants', '/admin/tenants', { body: { tenantId: id } })).json;
    const c = canary('herr');
    const cases: [Promise<Reply>, number, string][] = [
      [vaultCall('POST', '/vault/secrets', '/vault/secrets', { token, body: `{"provider":"openai","apiKey":"${c}"` }), 400, 'invalid_json'],
      [vaultCall('POST', '/vault/secrets', '/vault/secrets', { token, body: { provider: 'openai', apiKey: c }, headers: { 'Content-Type': 'text/plain' } }), 415, 'unsupported_media_type'],
      [vaultCall('POST', '/vault/secrets', '/vault/secrets', { token, body: { provider: c, apiKey: 'anthropic' } }), 400, 'unknown_provider'],
      [vaultCall('POST', '/vault/secrets', '/vault/secrets', { token: c, body: { provider: 'openai', apiKey: c } }), 401, 'invalid_api_key'],
      [vaultCall('POST', '/vault/secrets', '/vault/secrets', { token: `${token.slice(0, -1)}${token.endsWith('A') ? 'B' : 'A'}`, body: { provider: 'openai', apiKey: c } }), 401, 'invalid_api_key_checksum'],
      [vaultCall('POST', '/vault/secrets', '/vault/secrets', { token: token.replace('_euc1_', '_use1_'), body: { provider: 'openai', apiKey: c } }), 401, 'invalid_api_key_checksum'],
      [vaultCall('POST', '/vault/secrets', '/vault/secrets', { token: forgedToken('us-east-1', id), body: { provider: 'openai', apiKey: c } }), 421, 'wrong_region'],
      [vaultCall('GET', '/vault/nothing', '/{proxy+}', { token }), 404, 'not_found'],
      [vaultCall('PATCH', '/vault/secrets', '/vault/secrets', { token }), 405, 'method_not_allowed'],
      [adminCall('POST', '/admin/tenants', '/admin/tenants', { body: 'not json' }), 400, 'invalid_json'],
      [adminCall('GET', '/admin/tenants/NOT_VALID', '/admin/tenants/{tenantId}'), 400, 'invalid_request'],
      [adminCall('GET', `/admin/tenants/${tenantId('missing')}`, '/admin/tenants/{tenantId}'), 404, 'tenant_not_found'],
    ];
    for (const [promise, status, code] of cases) expectApiError(await promise, status, code, [c, token]);
    const big = await vaultCall('POST', '/vault/secrets', '/vault/secrets', { token, body: { provider: 'openai', apiKey: c, pad: 'x'.repeat(1024 * 1024) } });
    expectApiError(big, 413, 'request_too_large', [c]);
  });

  it('serve the console and the usage query through the vault handler', async () => {
    const id = tenantId('hl-console');
    const created = await adminCall('POST', '/admin/tenants', '/admin/tenants', { body: { tenantId: id } });
    const token: string = created.json.token;
    const page = await vaultCall('GET', '/console/', '/console');
    expect(page.status).toBe(200);
    expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).toContain('<script src="app.js" defer></script>');
    const script = await vaultCall('GET', '/console/app.js', '/console/{asset}');
    expect([script.status, script.headers['content-type']]).toEqual([200, 'text/javascript; charset=utf-8']);
    expect(await vaultCall('GET', '/console', '/console')).toMatchObject({ status: 308, headers: { location: 'console/' } });

    const usage = await vaultCall('GET', '/vault/usage', '/vault/{proxy+}', { token, query: { from: '2026-01-01', to: '2026-02-01', limit: '5' } });
    expect(usage.status).toBe(200);
    expect(usage.json).toEqual({ object: 'list', data: [], next_cursor: null, from: '2026-01-01T00:00:00.000Z', to: '2026-02-01T00:00:00.000Z' });
    const bad = await vaultCall('GET', '/vault/usage', '/vault/{proxy+}', { token, query: { limit: '0' } });
    expect(bad.status).toBe(400);
  });

  it('never connected anywhere but loopback', () => {
    expect(blockedConnections).toEqual([]);
  });
});

describe('key lifecycle in the admin handler (RegionalRouterProps.keyLifecycle)', () => {
  it('without KEY_LIFECYCLE answers 501; with it, rotates a sovereign tenant factor through KMS', async () => {
    const id = tenantId('hl-factor');
    const created = await adminCall('POST', '/admin/tenants', '/admin/tenants', { body: { tenantId: id, mode: 'sovereign' } });
    const token: string = created.json.token;
    const c = canary('hfac');
    expect((await vaultCall('POST', '/vault/secrets', '/vault/secrets', { token, body: { provider: 'openai', apiKey: c } })).status).toBe(201);
    const path = `/admin/tenants/${id}/factor/rotate`;
    const off = await adminCall('POST', path, '/admin/{proxy+}', { body: { token } });
    expect([off.status, off.json.error.code]).toEqual([501, 'key_lifecycle_unavailable']);

    process.env.KEY_LIFECYCLE = 'enabled';
    let lifecycleAdmin: Handler;
    try {
      lifecycleAdmin = (await loadHandlers()).admin;
    } finally {
      delete process.env.KEY_LIFECYCLE;
    }
    const on = await invoke(lifecycleAdmin, event('POST', path, '/admin/{proxy+}', { userArn: OPERATOR, body: { token } }));
    expect(on.status).toBe(200);
    expect(on.json).toMatchObject({ tenantId: id, kind: 'rotate', fromGeneration: 1, toGeneration: 2, secretsResealed: 1, mode: 'sovereign' });
    // The same token keeps working on the vault, which now seals under generation 2.
    expect((await vaultCall('PUT', '/vault/secrets/openai/default', '/vault/{proxy+}', { token, body: { apiKey: c } })).status).toBe(200);
  });
});

describe('handler error path', () => {
  it('an unexpected failure (pepper secret gone, fresh execution environment) is a generic 500 and a log line without details', async () => {
    await f.clients.secrets.send(new DeleteSecretCommand({ SecretId: f.config.pepperSecretId, ForceDeleteWithoutRecovery: true }));
    const fresh = await loadHandlers();
    const mark = capture.lines.length;
    const c = canary('h500');
    const res = await invoke(fresh.vault, event('POST', '/vault/secrets', '/vault/secrets', { token: spareToken, body: { provider: 'openai', apiKey: c } }));
    expectApiError(res, 500, 'internal_error', [c]);
    expectNoStackTrace(res.body);
    expect(res.body).not.toMatch(/pepper|Secrets ?Manager|arn:aws/i);
    const lines = logLinesSince(mark);
    expect(lines).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ level: 'ERROR', service: 'vault', message: 'unexpected error', errorName: 'PepperError', errorReason: 'not_found' }),
        expect.objectContaining({ level: 'INFO', service: 'vault', message: 'request', status: 500 }),
      ]),
    );
  });
});

describe('after all handler calls', () => {
  it('no stdout log line, response body or stored attribute holds a canary', async () => {
    const text = capture.text();
    expect(text).toMatch(/"service":"vault"/);
    expect(canaryHits(text, canaries)).toEqual([]);
    expect(bodies.length).toBeGreaterThan(40);
    expect(canaryHits(bodies.join('\n'), canaries)).toEqual([]);
    expect(canaryHits(await rawTableText(f), canaries)).toEqual([]);
    expect(blockedConnections).toEqual([]);
  });
});
