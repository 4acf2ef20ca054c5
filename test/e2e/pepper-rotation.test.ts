/**
 * Pepper rotation keeps every token alive (issue 10 point 1), on the local gateway with the
 * embedded backend and with the moto backend (AWS adapters: Secrets Manager AWSCURRENT /
 * AWSPREVIOUS, DynamoDB transactions), driven by the real CLI (`sovereign-router pepper ...`) and
 * over HTTP like a client: two rotations with live managed and sovereign tenants; every token
 * works on the router and the vault until it is revoked; a revoked token stays dead; a rotation
 * waits for tokens still on the previous pepper; each rotation is in the cell's audit trail; the
 * canary provider key appears in no output, log line or response.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../cli/main';
import { jsonLogger } from '../../lambda/core/logger';
import { generateToken } from '../../lambda/core/token';
import { LocalGateway, startLocalGateway } from '../../local/gateway';
import { canaryHits, makeCanary } from '../support/canary';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';

jest.setTimeout(240_000);

let fakes: FakeProviders;
beforeAll(async () => {
  fakes = await startFakeProviders();
});
afterAll(() => fakes?.close());

interface World {
  gw: LocalGateway;
  logs: string[];
  seen: string[];
  cli(...args: string[]): Promise<{ code: number; out: string; err: string }>;
  http(method: string, path: string, token?: string, body?: unknown): Promise<{ status: number; json: any; text: string }>;
}

async function world(backend: 'embedded' | 'moto', stateDir?: string): Promise<World> {
  const logs: string[] = [];
  const seen: string[] = [];
  const gw = await startLocalGateway({
    port: 0,
    backend,
    stateDir,
    providers: { openai: { kind: 'openai', baseUrl: fakes.openai.baseUrl } },
    log: jsonLogger('gateway', (l) => logs.push(l)),
  });
  return {
    gw,
    logs,
    seen,
    async cli(...args) {
      let out = '';
      let err = '';
      const code = await run([...args, '--endpoint', gw.url], { stdout: (s) => (out += s), stderr: (s) => (err += s) });
      seen.push(out, err);
      return { code, out, err };
    },
    async http(method, path, token, body) {
      const res = await fetch(`${gw.url}${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await res.text();
      seen.push(text);
      let json: any;
      try {
        json = JSON.parse(text);
      } catch {
        json = undefined;
      }
      return { status: res.status, json, text };
    },
  };
}

const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] };

describe.each([['embedded'], ['moto']] as const)('pepper rotation on the %s backend', (backend) => {
  let dir: string | undefined;
  let w: World;
  const canary = makeCanary('pepper');

  beforeAll(async () => {
    // The embedded backend keeps its pepper versions in the state directory; the moto one in Secrets Manager.
    dir = backend === 'embedded' ? mkdtempSync(join(tmpdir(), 'sr-pepper-')) : undefined;
    w = await world(backend, dir);
    fakes.setKey('openai', canary);
  });
  afterAll(async () => {
    await w?.gw.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('rotates twice; every live token keeps working on router and vault; revoked stays dead; forged fails', async () => {
    // Two tenants, managed and sovereign, each with a tenant-admin token, a stored provider key
    // and three invoke tokens: `used` (called between rotations), `revoked` (revoked after the
    // first rotation) and `idle` (not used after the first rotation until the second is refused).
    type Tenant = { id: string; admin: string; used: string; revoked: string; revokedId: string; idle: string };
    const tenants: Tenant[] = [];
    for (const [id, sovereign] of [
      ['mgd-pepper', false],
      ['sov-pepper', true],
    ] as const) {
      const created = await w.cli('tenants', 'create', id, ...(sovereign ? ['--sovereign'] : []));
      expect(created.code).toBe(0);
      const admin = created.out.trim();
      expect((await w.http('POST', '/vault/secrets', admin, { provider: 'openai', name: 'default', apiKey: canary })).status).toBe(201);
      const mint = async (label: string) => (await w.http('POST', '/vault/tokens', admin, { role: 'invoke', label })).json as { token: string; tokenId: string };
      const used = await mint('used');
      const revoked = await mint('revoked');
      const idle = await mint('idle');
      tenants.push({ id, admin, used: used.token, revoked: revoked.token, revokedId: revoked.tokenId, idle: idle.token });
    }

    const routerOk = async (token: string) => {
      const res = await w.http('POST', '/v1/chat/completions', token, chat);
      expect({ status: res.status, error: res.json?.error?.code }).toEqual({ status: 200, error: undefined });
    };
    const routerDead = async (token: string) => {
      const res = await w.http('POST', '/v1/chat/completions', token, chat);
      expect({ status: res.status, error: res.json?.error?.code }).toEqual({ status: 401, error: 'invalid_api_key' });
    };
    const vaultOk = async (token: string) => {
      const res = await w.http('GET', '/vault/secrets', token);
      expect(res.status).toBe(200);
      expect(res.json.data.map((s: { provider: string }) => s.provider)).toEqual(['openai']);
    };
    const status = async () => {
      const res = await w.cli('pepper', 'status', '--json');
      expect(res.code).toBe(0);
      return JSON.parse(res.out) as { current: { version: number }; previous?: { version: number }; tokensByVersion: Record<string, number>; onPrevious: { tokenId: string }[]; canRotate: boolean };
    };

    for (const t of tenants) {
      await routerOk(t.used);
      await routerOk(t.idle);
      await vaultOk(t.admin);
    }
    expect(await status()).toMatchObject({ current: { version: 1 }, tokensByVersion: { '1': 8 }, canRotate: true });

    // --- Rotation 1 ---
    const first = await w.cli('pepper', 'rotate', '--expect-version', '1');
    expect(first).toMatchObject({ code: 0, err: '' });
    expect(first.out).toMatch(/^Rotated the pepper from version 1 to 2 at /);
    expect(await status()).toMatchObject({ current: { version: 2 }, previous: { version: 1 }, tokensByVersion: { '1': 8 }, canRotate: false });
    // A second operator starting from version 1 is refused, nothing rotates.
    const stale = await w.cli('pepper', 'rotate', '--expect-version', '1');
    expect(stale.code).toBe(1);
    expect(stale.err).toMatch(/pepper_version_moved/);

    // Tokens on the previous pepper still work, and move to version 2 on use (router and vault).
    for (const t of tenants) {
      await vaultOk(t.admin);
      await routerOk(t.used);
      expect((await w.http('DELETE', `/vault/tokens/${t.revokedId}`, t.admin)).status).toBe(200);
      await routerDead(t.revoked);
    }
    let s = await status();
    expect(s.tokensByVersion).toEqual({ '1': 2, '2': 4 });
    expect(s.onPrevious).toHaveLength(2); // the idle tokens
    // A token created now is issued under version 2 at once (one process: nothing to wait for).
    const fresh = (await w.http('POST', '/vault/tokens', tenants[1].admin, { role: 'invoke', label: 'fresh' })).json as { token: string };
    await routerOk(fresh.token);

    // --- Rotation 2 is refused while the idle tokens are on version 1 (they would stop working) ---
    const refused = await w.cli('pepper', 'rotate');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/tokens_on_previous_pepper/);
    expect(refused.err).toMatch(/2 token\(s\) are still on version 1/);
    const told = await w.cli('pepper', 'status');
    expect(told.out).toMatch(/a rotation would be refused: 2 token\(s\) are still on version 1/);
    for (const t of tenants) await routerOk(t.idle);
    s = await status();
    expect(s).toMatchObject({ tokensByVersion: { '2': 7 }, onPrevious: [], canRotate: true });

    const second = await w.cli('pepper', 'rotate');
    expect(second.code).toBe(0);
    expect(second.out).toMatch(/from version 2 to 3/);

    // Every live token works on router and vault after two rotations; the revoked ones stay dead.
    for (const t of tenants) {
      await routerOk(t.used);
      await routerOk(t.idle);
      await vaultOk(t.admin);
      await routerDead(t.revoked);
    }
    await routerOk(fresh.token);
    expect((await status()).tokensByVersion).toEqual({ '3': 7 });
    // A token that was never issued (right shape, right checksum, right region) fails like a revoked one.
    await routerDead(generateToken('euc1', 'mgd-pepper'));

    // The cell's audit trail records both rotations and verifies; the tenants' trails still verify.
    const cellTrail = await w.cli('audit', 'verify', '--cell');
    expect(cellTrail).toMatchObject({ code: 0, err: '' });
    expect(cellTrail.out).toBe('audit trail of _cell: ok, 2 events, anchored through #2\n');
    for (const t of tenants) expect((await w.cli('audit', 'verify', '--tenant', t.id)).code).toBe(0);

    // The canary went to the provider (that is its job) and nowhere else.
    expect(fakes.openai.requests.some((r) => JSON.stringify(r).includes(canary))).toBe(true);
    expect(canaryHits([...w.seen, ...w.logs].join('\n'), [canary])).toEqual([]);
  });
});

it('pepper --help names the commands and their failure behaviour', async () => {
  let out = '';
  const code = await run(['pepper', '--help'], { stdout: (s) => (out += s), stderr: () => undefined });
  expect(code).toBe(0);
  expect(out).toMatch(/pepper status/);
  expect(out).toMatch(/pepper rotate \[--expect-version N\] \[--force\]/);
  expect(out).toMatch(/Refused \(exit 1\)/);
});
