/**
 * `npm start` runs the local gateway through scripts/start-local.cjs: local/start.ts compiled by
 * esbuild without keepNames (tsx's naming wrapper on every function and closure cost CPU on each
 * request) and loaded in the same process. Several gateways started at the same moment (the bench
 * starts three) each come up, and none loads a half-written build.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { freePort } from '../support/free-port';
import { gatewayCall } from '../support/gateway-http';

const ROOT = resolve(__dirname, '..', '..');

async function startScript(port: number): Promise<{ proc: ChildProcess; output: () => string }> {
  const proc = spawn(process.execPath, ['scripts/start-local.cjs', '--ephemeral', '--port', String(port)], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, AWS_EC2_METADATA_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const deadline = Date.now() + 60_000;
  while (!out.includes(`listening on http://127.0.0.1:${port}`)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`the gateway did not come up:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { proc, output: () => out };
}

test('three gateways started at the same moment all come up and answer; the build they run keeps no function names', async () => {
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  const started = await Promise.allSettled(ports.map((p) => startScript(p)));
  try {
    for (const s of started) expect(s.status).toBe('fulfilled');
    for (const port of ports) {
      const res = await gatewayCall(`http://127.0.0.1:${port}`, 'POST', '/admin/tenants', { tenantId: `script-${port}` });
      expect(res.status).toBe(201);
    }
    const build = readFileSync(resolve(ROOT, '.build', 'local-gateway.cjs'), 'utf8');
    expect(build).toContain('listening on'); // it is the gateway
    expect(build).not.toMatch(/__name\(/); // no keepNames wrapper
  } finally {
    for (const s of started) if (s.status === 'fulfilled') s.value.proc.kill('SIGTERM');
  }
}, 120_000);
