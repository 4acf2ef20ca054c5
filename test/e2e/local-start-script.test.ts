/**
 * `npm start` runs the local gateway through scripts/start-local.cjs: local/start.ts compiled by
 * esbuild without keepNames (tsx's naming wrapper on every function and closure cost CPU on each
 * request) and loaded in the same process. Several gateways started at the same moment (the bench
 * starts three) each come up, and none loads a half-written build.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { gatewayCall } from '../support/gateway-http';

const ROOT = resolve(__dirname, '..', '..');

async function startScript(): Promise<{ proc: ChildProcess; url: string; output: () => string }> {
  // Port 0: each gateway binds a port the OS picks and prints it (ports chosen beforehand could be
  // taken by another socket while the build runs and node starts).
  const proc = spawn(process.execPath, ['scripts/start-local.cjs', '--ephemeral', '--port', '0'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, AWS_EC2_METADATA_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 60_000;
  let listening: RegExpExecArray | null;
  while (!(listening = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(out))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`the gateway did not come up:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, url: listening[1], output: () => out };
}

test('three gateways started at the same moment all come up and answer; the build they run keeps no function names', async () => {
  const started = await Promise.allSettled([startScript(), startScript(), startScript()]);
  try {
    for (const s of started) expect(s.status).toBe('fulfilled');
    const urls = started.map((s) => (s as PromiseFulfilledResult<{ url: string }>).value.url);
    expect(new Set(urls).size).toBe(3);
    for (const url of urls) {
      const res = await gatewayCall(url, 'POST', '/admin/tenants', { tenantId: `script-${new URL(url).port}` });
      expect(res.status).toBe(201);
    }
    const build = readFileSync(resolve(ROOT, '.build', 'local-gateway.cjs'), 'utf8');
    expect(build).toContain('listening on'); // it is the gateway
    expect(build).not.toMatch(/__name\(/); // no keepNames wrapper
  } finally {
    for (const s of started) if (s.status === 'fulfilled') s.value.proc.kill('SIGTERM');
  }
}, 120_000);
