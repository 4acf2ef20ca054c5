import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { CreateKeyCommand, ListKeysCommand } from '@aws-sdk/client-kms';
import { awsClients } from '../support/aws-clients';
import { freePort } from '../support/free-port';
import { startMoto, type MotoServer } from '../support/moto';

const REPO_ROOT = join(__dirname, '..', '..');

/** True if something accepts HTTP on the port. */
function answers(port: number): Promise<boolean> {
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port, path: '/moto-api/', agent: false, timeout: 1_000 }, (res) => {
      res.resume();
      done(true);
    });
    req.on('error', () => done(false));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

async function waitUntilSilent(port: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!(await answers(port))) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

describe('freePort', () => {
  it('returns a bindable loopback port', async () => {
    const port = await freePort();
    expect(port).toBeGreaterThan(0);
    expect(port).toBeLessThan(65536);
  });
});

describe('startMoto', () => {
  let moto: MotoServer;
  beforeAll(async () => {
    moto = await startMoto();
  });
  afterAll(() => moto?.stop());

  it('serves the real SDK on a loopback endpoint', async () => {
    expect(moto.endpoint).toBe(`http://127.0.0.1:${moto.port}`);
    const { kms } = awsClients(moto.endpoint, 'eu-west-1');
    await kms.send(new CreateKeyCommand({}));
    expect((await kms.send(new ListKeysCommand({}))).Keys).toHaveLength(1);
  });

  it('reset() drops every resource', async () => {
    const { kms } = awsClients(moto.endpoint, 'eu-west-1');
    await kms.send(new CreateKeyCommand({}));
    await moto.reset();
    expect((await kms.send(new ListKeysCommand({}))).Keys).toHaveLength(0);
  });

  it('captures server output for diagnostics', () => {
    expect(moto.output()).toContain('/moto-api/');
  });

  it('fails loudly, with the server output, when the port is taken', async () => {
    await expect(startMoto({ port: moto.port })).rejects.toThrow(/exited before answering[\s\S]*in use/i);
  });

  it('refuses a non-loopback endpoint for the test clients', () => {
    expect(() => awsClients('https://kms.eu-west-1.amazonaws.com', 'eu-west-1')).toThrow(/loopback/);
  });
});

describe('stop', () => {
  it('stops the server and is idempotent', async () => {
    const moto = await startMoto();
    await Promise.all([moto.stop(), moto.stop()]);
    await moto.stop();
    expect(await answers(moto.port)).toBe(false);
  });

  it('leaves no orphan when the owning process is SIGKILLed', async () => {
    // A child node process starts moto, prints the port, then is killed without any cleanup.
    const script = `require('./test/support/moto').startMoto().then((m) => console.log('PORT=' + m.port));`;
    const owner = spawn(process.execPath, ['-r', 'tsx/cjs', '-e', script], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    const port = await new Promise<number>((done, fail) => {
      let out = '';
      owner.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const match = /PORT=(\d+)/.exec(out);
        if (match) done(Number(match[1]));
      });
      owner.once('exit', () => fail(new Error(`owner exited early: ${out}`)));
    });
    expect(await answers(port)).toBe(true);
    owner.kill('SIGKILL');
    expect(await waitUntilSilent(port, 10_000)).toBe(true);
  });

  it('says how to install moto when the venv is missing (never skips)', async () => {
    let start: typeof startMoto | undefined;
    await jest.isolateModulesAsync(async () => {
      jest.doMock('node:fs', () => ({ ...jest.requireActual('node:fs'), existsSync: () => false }));
      ({ startMoto: start } = await import('../support/moto'));
    });
    await expect(start!()).rejects.toThrow(/moto is not installed[\s\S]*bash \.ci\/run[\s\S]*pip install 'moto\[server\]'/);
  });
});
