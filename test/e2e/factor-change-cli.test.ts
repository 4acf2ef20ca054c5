/**
 * Issue 10, points 2, 3 and 7, as an operator runs them: the real CLI (`tenants rotate-factor`,
 * `tenants convert`) against the local gateway on the embedded and on the moto backend, while a
 * client keeps calling the router over HTTP with its unchanged tokens. Each operation is in the
 * tenant's verified audit trail, and the canary provider key appears in no output, log line or
 * response.
 */
import { run } from '../../cli/main';
import { jsonLogger } from '../../lambda/core/logger';
import { LocalGateway, startLocalGateway } from '../../local/gateway';
import { canaryHits, makeCanary } from '../support/canary';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';

jest.setTimeout(240_000);

let fakes: FakeProviders;
beforeAll(async () => {
  fakes = await startFakeProviders();
});
afterAll(() => fakes?.close());

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] };

describe.each([['embedded'], ['moto']] as const)('factor rotation and conversion with the CLI on the %s backend', (backend) => {
  let gw: LocalGateway;
  const logs: string[] = [];
  const seen: string[] = [];
  const canary = makeCanary('factor');

  beforeAll(async () => {
    gw = await startLocalGateway({ port: 0, backend, providers: { openai: { kind: 'openai', baseUrl: fakes.openai.baseUrl } }, log: jsonLogger('gateway', (l) => logs.push(l)) });
    fakes.setKey('openai', canary);
  });
  afterAll(async () => {
    await gw?.stop();
  });

  const cli = async (...args: string[]) => {
    let out = '';
    let err = '';
    const code = await run([...args, '--endpoint', gw.url], { stdout: (s) => (out += s), stderr: (s) => (err += s) });
    seen.push(out, err);
    return { code, out, err };
  };
  const http = async (method: string, path: string, token?: string, body?: unknown) => {
    const res = await fetch(`${gw.url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    seen.push(text);
    return { status: res.status, json: JSON.parse(text) };
  };
  const served = async (token: string) => {
    const res = await http('POST', '/v1/chat/completions', token, chat);
    expect({ status: res.status, error: res.json?.error?.code }).toEqual({ status: 200, error: undefined });
  };

  it('rotates a sovereign tenant factor twice, converts it to managed and back; the same tokens are served throughout', async () => {
    const id = `fc-cli-${backend.slice(0, 3)}`;
    const created = await cli('tenants', 'create', id, '--sovereign');
    expect(created.code).toBe(0);
    const admin = created.out.trim();
    expect((await http('POST', '/vault/secrets', admin, { provider: 'openai', apiKey: canary })).status).toBe(201);
    const invoke = (await http('POST', '/vault/tokens', admin, { role: 'invoke' })).json.token as string;
    await served(invoke);

    expect((await cli('tenants', 'rotate-factor', '--help')).out).toContain('tenants rotate-factor --tenant <tenant-id>');
    // Without the tenant's token the command refuses before any call.
    const noToken = await cli('tenants', 'rotate-factor', '--tenant', id);
    expect(noToken.code).toBe(2);
    expect(noToken.err).toContain('tenant-admin token');

    for (const gen of [2, 3]) {
      const r = await cli('tenants', 'rotate-factor', '--tenant', id, '--token', admin);
      expect(r).toMatchObject({ code: 0, err: '' });
      expect(r.out).toBe(`${id}: tenant factor rotated (factor generation ${gen - 1} -> ${gen}); 1 secret(s) resealed, 1 token(s) given the new factor\n`);
      await served(invoke);
    }
    const toManaged = await cli('tenants', 'convert', '--tenant', id, '--to', 'managed', '--token', admin);
    expect(toManaged.out).toBe(`${id}: now managed (factor generation 3 -> 0); 1 secret(s) resealed, 0 token(s) given the new factor\n`);
    await served(invoke);
    const toSovereign = await cli('tenants', 'convert', '--tenant', id, '--to', 'sovereign', '--token', admin, '--json');
    expect(toSovereign.code).toBe(0);
    expect(JSON.parse(toSovereign.out)).toMatchObject({ mode: 'sovereign', fromGeneration: 0, toGeneration: 4, secretsResealed: 1 });
    await served(invoke);
    // The vault still works with the same admin token (it seals under generation 4).
    expect((await http('PUT', '/vault/secrets/openai/default', admin, { apiKey: canary })).status).toBe(200);
    await served(invoke);

    const bad = await cli('tenants', 'convert', '--tenant', id, '--to', 'sideways', '--token', admin);
    expect([bad.code, bad.err]).toEqual([2, 'sovereign-router: --to must be sovereign or managed. See --help.\n']);

    const verify = await cli('audit', 'verify', '--tenant', id);
    expect(verify.code).toBe(0);
    const events = (await cli('tenants', 'audit', id)).out;
    for (const type of ['tenant.factor_change_started', 'secret.resealed', 'tenant.factor_rotated', 'tenant.converted']) expect(events).toContain(`"${type}"`);

    expect(canaryHits([...seen, ...logs].join('\n'), [canary])).toEqual([]);
  });
});
