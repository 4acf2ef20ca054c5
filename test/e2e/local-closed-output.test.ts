/**
 * `npm start` whose output nobody reads any more (`npm start 2>&1 | head`, a log shipper that
 * went away): the gateway goes on answering, and a stop signal still stops it gracefully (exit 0,
 * port free). Writing to a closed pipe is an EPIPE error, which must end neither the request log
 * nor the process.
 */
import { spawn } from 'node:child_process';
import { connect } from 'node:net';
import { resolve } from 'node:path';
import { gatewayCall } from '../support/gateway-http';

const ROOT = resolve(__dirname, '..', '..');

function portOpen(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
}

test.each([['stdout and stderr'], ['stderr only']])('%s closed by the reader: requests still answered, SIGTERM still stops it with exit 0', async (which) => {
  // Port 0: the gateway binds a port the OS picks and prints it (a port chosen beforehand could be
  // taken by another socket while node starts).
  let port = 0;
  const gw = spawn(process.execPath, ['--import', 'tsx', 'local/start.ts', '--ephemeral', '--port', '0'], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, AWS_EC2_METADATA_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => gw.once('exit', (code, signal) => r({ code, signal })));
  try {
    let out = '';
    gw.stdout!.on('data', (d) => (out += d));
    gw.stderr!.on('data', (d) => (out += d));
    const deadline = Date.now() + 60_000;
    let listening: RegExpExecArray | null;
    while (!(listening = /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(out))) {
      if (gw.exitCode !== null || Date.now() > deadline) throw new Error(`the gateway did not come up:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    port = Number(listening[1]);
    gw.stderr!.destroy();
    if (which.startsWith('stdout')) gw.stdout!.destroy();
    await new Promise((r) => setTimeout(r, 50));
    const url = `http://127.0.0.1:${port}`;
    // Answers (and their log lines) after the reader left.
    for (let i = 0; i < 3; i++) {
      expect((await gatewayCall(url, 'POST', '/admin/tenants', { tenantId: `closed-${i}` })).status).toBe(201);
      await new Promise((r) => setTimeout(r, 80)); // past the log batch's 50 ms
    }
    expect((await gatewayCall(url, 'GET', '/healthz')).status).toBe(200);
    gw.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([exited, new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error('no exit after SIGTERM')), 20_000)))]).finally(() => clearTimeout(timer));
    expect(result).toEqual({ code: 0, signal: null });
    expect(await portOpen(port)).toBe(false);
  } finally {
    if (gw.exitCode === null && gw.signalCode === null) gw.kill('SIGKILL');
  }
}, 90_000);
