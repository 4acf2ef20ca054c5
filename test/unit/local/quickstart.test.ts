import { quickstartAfterStart, quickstartKeysIn, QuickstartError, quickstartReport, runQuickstart } from '../../../local/quickstart';

type Handler = (method: string, path: string, body: any, auth?: string) => { status: number; json: unknown };

function stubFetch(handler: Handler) {
  const calls: { method: string; path: string; body: any; auth?: string }[] = [];
  const fetchStub = (async (url: string, init: RequestInit) => {
    const path = new URL(url).pathname;
    const body = JSON.parse(String(init.body));
    const auth = (init.headers as Record<string, string>).authorization;
    calls.push({ method: init.method!, path, body, auth });
    const { status, json } = handler(init.method!, path, body, auth);
    return new Response(JSON.stringify(json), { status });
  }) as unknown as typeof fetch;
  return { fetchStub, calls };
}

const KEY = 'sk-quickstart-secret-0123456789';
const happy: Handler = (_method, path, body) => {
  if (path === '/admin/tenants') return { status: 201, json: { token: `sr_euc1_${body.tenantId}_admin` } };
  if (path === '/vault/secrets') return { status: 201, json: { provider: body.provider } };
  return { status: 201, json: { token: 'sr_euc1_local_invoke' } };
};

test('only the known variables with a value count, by name', () => {
  expect(quickstartKeysIn({ OPENAI_API_KEY: 'x', ANTHROPIC_API_KEY: ' ', MISTRAL_API_KEY: undefined, OTHER_API_KEY: 'y' })).toEqual(['OPENAI_API_KEY']);
});

test('creates the tenant, seals each key for its provider with the tenant-admin token, issues an invoke token', async () => {
  const { fetchStub, calls } = stubFetch(happy);
  const r = await runQuickstart({ url: 'http://127.0.0.1:1', env: { OPENAI_API_KEY: KEY, MISTRAL_API_KEY: `${KEY}-m\n` }, providers: ['openai', 'anthropic', 'mistral'], fetch: fetchStub });
  expect(r).toMatchObject({ tenantId: 'local', adminToken: 'sr_euc1_local_admin', invokeToken: 'sr_euc1_local_invoke' });
  expect(r.sealed).toEqual([
    { provider: 'openai', variable: 'OPENAI_API_KEY' },
    { provider: 'mistral', variable: 'MISTRAL_API_KEY' },
  ]);
  expect(calls.map((c) => `${c.method} ${c.path}`)).toEqual(['POST /admin/tenants', 'POST /vault/secrets', 'POST /vault/secrets', 'POST /vault/tokens']);
  expect(calls[2].body).toEqual({ provider: 'mistral', apiKey: `${KEY}-m` });
  expect(calls.slice(1).every((c) => c.auth === 'Bearer sr_euc1_local_admin')).toBe(true);
  expect(calls[3].body).toMatchObject({ role: 'invoke' });
  const report = quickstartReport('http://127.0.0.1:1', r);
  expect(report).toContain('sr_euc1_local_invoke');
  expect(report).not.toContain(KEY);
});

test('an existing quick-start tenant: the next free local-N', async () => {
  const taken = new Set(['local', 'local-2']);
  const { fetchStub } = stubFetch((m, path, body, auth) =>
    path === '/admin/tenants' && taken.has(body.tenantId) ? { status: 409, json: { error: { code: 'tenant_exists' } } } : happy(m, path, body, auth),
  );
  const r = await runQuickstart({ url: 'http://x', env: { ANTHROPIC_API_KEY: KEY }, providers: ['anthropic'], fetch: fetchStub });
  expect(r.tenantId).toBe('local-3');
  // A tenant named on purpose is not replaced by another.
  taken.add('mine');
  await expect(runQuickstart({ url: 'http://x', env: { ANTHROPIC_API_KEY: KEY }, providers: ['anthropic'], tenant: 'mine', fetch: fetchStub })).rejects.toThrow(
    /could not create tenant 'mine': HTTP 409 tenant_exists/,
  );
});

test('failures name the step and the gateway’s code, never the key; keys for absent providers are skipped', async () => {
  const { fetchStub } = stubFetch((m, path, body, auth) =>
    path === '/vault/secrets' ? { status: 400, json: { error: { code: 'invalid_request', message: 'apiKey: too long' } } } : happy(m, path, body, auth),
  );
  const err = await runQuickstart({ url: 'http://x', env: { OPENAI_API_KEY: KEY }, providers: ['openai'], fetch: fetchStub }).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(QuickstartError);
  expect((err as Error).message).toBe('could not seal OPENAI_API_KEY for openai: HTTP 400 invalid_request: apiKey: too long');
  expect((err as Error).message).not.toContain(KEY);
  await expect(runQuickstart({ url: 'http://x', env: { OPENAI_API_KEY: KEY }, providers: ['anthropic'], fetch: fetchStub })).rejects.toThrow(/set OPENAI_API_KEY, ANTHROPIC_API_KEY, MISTRAL_API_KEY/);
});

test('without --quickstart: an offer naming the variables, never their values; nothing when none is set', async () => {
  const lines: string[] = [];
  await quickstartAfterStart({ url: 'http://x', providers: ['openai'], run: false, env: { OPENAI_API_KEY: KEY }, out: (t) => lines.push(t), err: (t) => lines.push(t) });
  expect(lines.join('\n')).toContain('OPENAI_API_KEY is set: `npm start -- --quickstart`');
  expect(lines.join('\n')).not.toContain(KEY);
  lines.length = 0;
  await quickstartAfterStart({ url: 'http://x', providers: ['openai'], run: false, env: {}, out: (t) => lines.push(t), err: (t) => lines.push(t) });
  expect(lines).toEqual([]);
});
