/**
 * `audit verify` against the local gateway (embedded audit key and anchors in the state
 * directory): a verified trail, anchors written once as read-only files, the same key after a
 * restart, and a removed anchor file shown as an unanchored event.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run } from '../../cli/main';
import { LocalGateway, startLocalGateway } from '../../local/gateway';

const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };
let dir: string;
let gw: LocalGateway | undefined;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sr-audit-local-'));
});
afterAll(async () => {
  await gw?.stop();
  rmSync(dir, { recursive: true, force: true });
});

const start = () => startLocalGateway({ port: 0, stateDir: dir, providers: { openai: { kind: 'openai', baseUrl: 'http://127.0.0.1:9' } }, log: silent });

async function cli(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await run([...args, '--endpoint', gw!.url], { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

it('verifies on the local gateway, keeps its key across a restart, and names an event whose anchor file is gone', async () => {
  gw = await start();
  expect((await cli('tenants', 'create', 'acme')).code).toBe(0);
  const policy = join(dir, 'policy.json');
  writeFileSync(policy, JSON.stringify({ rpm: 5 }));
  expect((await cli('tenants', 'policy', 'acme', '--set-file', policy)).code).toBe(0);
  expect(await cli('audit', 'verify', '--tenant', 'acme')).toEqual({ code: 0, out: 'audit trail of acme: ok, 2 events, anchored through #2\n', err: '' });

  const anchors = join(dir, 'audit-anchors', 'v1', 'acme');
  expect(readdirSync(anchors).sort()).toEqual(['000000000001.json', '000000000002.json']);
  for (const f of readdirSync(anchors)) expect(statSync(join(anchors, f)).mode & 0o777).toBe(0o444);
  expect(statSync(join(dir, 'audit-mac.key')).mode & 0o777).toBe(0o600);

  await gw.stop();
  gw = await start();
  expect((await cli('audit', 'verify', '--tenant', 'acme')).out).toBe('audit trail of acme: ok, 2 events, anchored through #2\n');

  unlinkSync(join(anchors, '000000000002.json'));
  const res = await cli('audit', 'verify', '--tenant', 'acme');
  expect(res.code).toBe(0);
  expect(res.out).toBe('audit trail of acme: ok, 2 events, anchored through #1\n\nwarning: event(s) #2 have no anchor; their deletion could not be detected\n');
});
