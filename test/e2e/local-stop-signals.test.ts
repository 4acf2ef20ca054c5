/**
 * Stopping the local gateway however it is run (issue 12.7): Ctrl-C in a terminal (SIGINT to the
 * whole process group, which npm forwards a second time), SIGTERM to the npm process (what a
 * supervisor does), SIGTERM or SIGINT to the node process. Each time: the npm process exits 0, the
 * port is free, and no process the gateway started (the backend, moto, tsx's esbuild) survives.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { commandOf, descendants, isRunning } from '../support/process-tree';

const ROOT = resolve(__dirname, '..', '..');
const LISTENING = /listening on http:\/\/127\.0\.0\.1:(\d+)/;

interface Started {
  npm: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

async function npmStart(stateDir: string, extra: string[] = []): Promise<Started> {
  // Port 0: the gateway binds a port the OS picks and prints it. A port chosen beforehand could be
  // taken by another socket during the seconds npm and node take to start.
  const npm = spawn('npm', ['start', '--', '--port', '0', '--state-dir', stateDir, ...extra], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, AWS_EC2_METADATA_DISABLED: 'true' },
    // Its own process group, as a terminal's foreground job: Ctrl-C goes to the whole group.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  npm.stdout!.on('data', (d) => (out += d));
  npm.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => npm.once('exit', (code, signal) => r({ code, signal })));
  const deadline = Date.now() + 120_000;
  let listening: RegExpExecArray | null;
  while (!(listening = LISTENING.exec(out))) {
    if (npm.exitCode !== null || Date.now() > deadline) {
      if (npm.exitCode === null) process.kill(-npm.pid!, 'SIGKILL');
      throw new Error(`npm start did not come up:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { npm, port: Number(listening[1]), output: () => out, exited };
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((r) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
}

function call(port: number, method: string, path: string, agent: Agent, body?: unknown): Promise<{ status: number; text: string }> {
  return new Promise((done, fail) => {
    const req = request({ host: '127.0.0.1', port, method, path, agent, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.on('data', (d) => (text += d));
      res.on('end', () => done({ status: res.statusCode ?? 0, text }));
    });
    req.once('error', fail);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

/** The node process running the gateway (scripts/start-local.cjs, local/start.ts compiled): npm's only child after `exec`. */
function gatewayNode(npmPid: number): number {
  const pids = descendants(npmPid).filter((p) => /node .*scripts\/start-local\.cjs/.test(commandOf(p)));
  expect(pids).toHaveLength(1);
  return pids[0];
}

type Send = (g: Started) => void;

const ctrlC: Send = (g) => process.kill(-g.npm.pid!, 'SIGINT');
const termNpm: Send = (g) => process.kill(g.npm.pid!, 'SIGTERM');
const ways: Array<[string, NodeJS.Signals, Send, string[]]> = [
  ['Ctrl-C (SIGINT to the process group)', 'SIGINT', ctrlC, []],
  ['SIGTERM to the npm process', 'SIGTERM', termNpm, []],
  ['SIGTERM to the node process', 'SIGTERM', (g) => process.kill(gatewayNode(g.npm.pid!), 'SIGTERM'), []],
  ['SIGINT to the node process', 'SIGINT', (g) => process.kill(gatewayNode(g.npm.pid!), 'SIGINT'), []],
  // The moto backend has a child of its own (python), in its own process group.
  ['--backend moto, Ctrl-C', 'SIGINT', ctrlC, ['--backend', 'moto']],
  ['--backend moto, SIGTERM to the npm process', 'SIGTERM', termNpm, ['--backend', 'moto']],
];

let stateDir: string;
beforeAll(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'sr-stop-'));
});
afterAll(() => {
  rmSync(stateDir, { recursive: true, force: true });
  rmSync(`${stateDir}-moto`, { recursive: true, force: true });
});

test.each(ways)('%s stops the gateway: port free, no child left, exit 0', async (_name, signal, send, extra) => {
  // One state directory per backend: a directory holds one backend's state.
  const g = await npmStart(extra.length > 0 ? `${stateDir}-moto` : stateDir, extra);
  const agent = new Agent({ keepAlive: true });
  try {
    // One process for the gateway: npm execs node (no sh, no tsx wrapper in between).
    const node = gatewayNode(g.npm.pid!);
    expect(descendants(g.npm.pid!)[0]).toBe(node);
    // Exercise the backend, and leave an idle keep-alive connection open as a client would.
    expect((await call(g.port, 'GET', '/healthz', agent)).status).toBe(200);
    const tenant = `stop-${signal.toLowerCase()}-${Date.now().toString(36)}`;
    expect((await call(g.port, 'POST', '/admin/tenants', agent, { tenantId: tenant })).status).toBe(201);
    const tree = [node, ...descendants(node)];
    if (extra.includes('moto')) expect(tree.map(commandOf).join('\n')).toMatch(/\.venv\/bin\/python[\s\S]*moto/);

    send(g);
    let timer: NodeJS.Timeout | undefined;
    const result = await Promise.race([
      g.exited,
      new Promise<never>((_, fail) => (timer = setTimeout(() => fail(new Error(`npm did not exit after ${signal}:\n${g.output()}`)), 20_000))),
    ]).finally(() => clearTimeout(timer));
    expect(result).toEqual({ code: 0, signal: null });
    expect(g.output()).toContain(`${signal}: stopping`);
    expect(g.output()).not.toMatch(/exiting now|did not stop within/);

    const deadline = Date.now() + 5_000;
    for (;;) {
      const alive = tree.filter(isRunning);
      const bound = await portOpen(g.port);
      if (alive.length === 0 && !bound) break;
      if (Date.now() > deadline) {
        throw new Error(`after ${signal}: port ${bound ? 'still bound' : 'free'}, still running: ${alive.map((p) => `${p} ${commandOf(p)}`).join('; ')}`);
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (err) {
    // Whatever failed, the report carries what the gateway and npm printed (a failure under heavy
    // load once left no trace of its cause).
    if (err instanceof Error) err.message += `\n--- npm start output (stdout and stderr) ---\n${g.output().slice(-4000)}`;
    throw err;
  } finally {
    agent.destroy();
    if (g.npm.exitCode === null && g.npm.signalCode === null) process.kill(-g.npm.pid!, 'SIGKILL');
  }
}, 180_000);
