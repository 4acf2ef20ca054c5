/**
 * The one-command quick start (issue 12.6), end to end: `npm start -- --quickstart` with canary
 * provider keys in OPENAI_API_KEY, ANTHROPIC_API_KEY and MISTRAL_API_KEY creates a local tenant,
 * seals the keys and prints an invoke token that works at once against each (fake) provider; a
 * restart on the same state directory keeps it working, and without --quickstart the keys are
 * only offered by name. No canary, in clear, hex or base64, appears on stdout, on stderr, or in any
 * file of the state directory.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { canaryHits, makeCanary } from '../support/canary';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';

const ROOT = resolve(__dirname, '..', '..');
const KEYS = { openai: makeCanary('oa'), anthropic: makeCanary('an'), mistral: makeCanary('mi') };
const CANARIES = Object.values(KEYS);

let fakes: FakeProviders;
let stateDir: string;
const transcripts: string[] = [];

beforeAll(async () => {
  fakes = await startFakeProviders();
  for (const [p, key] of Object.entries(KEYS)) fakes.setKey(p as 'openai', key);
  stateDir = mkdtempSync(join(tmpdir(), 'sr-quickstart-'));
});
afterAll(async () => {
  await fakes?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

interface Run {
  proc: ChildProcess;
  url: string;
  stdout: () => string;
  stderr: () => string;
  stop: () => Promise<void>;
}

const LISTENING = /listening on (http:\/\/127\.0\.0\.1:\d+)/;

/**
 * Port 0: the gateway binds a port the OS picks and prints it (a port chosen beforehand could be
 * taken by another socket while npm and node start). Returns once `waitFor` and that line showed.
 */
async function npmStart(args: string[], waitFor: RegExp): Promise<Run> {
  const proc = spawn(
    'npm',
    ['start', '--', '--port', '0', '--state-dir', stateDir, '--openai-base-url', fakes.openai.baseUrl, '--anthropic-base-url', fakes.anthropic.baseUrl, '--mistral-base-url', fakes.mistral.baseUrl, ...args],
    {
      cwd: ROOT,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, OPENAI_API_KEY: KEYS.openai, ANTHROPIC_API_KEY: KEYS.anthropic, MISTRAL_API_KEY: ` ${KEYS.mistral}\n` },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  let err = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (err += d));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  const run: Run = {
    proc,
    url: '',
    stdout: () => out,
    stderr: () => err,
    async stop() {
      if (proc.exitCode === null && proc.signalCode === null) process.kill(proc.pid!, 'SIGTERM');
      await exited;
      transcripts.push(out, err);
    },
  };
  const deadline = Date.now() + 120_000;
  while (!waitFor.test(out + err) || !LISTENING.test(out + err)) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await run.stop();
      throw new Error(`npm start did not show ${waitFor} and its URL:\n${out}\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { ...run, url: LISTENING.exec(out + err)![1] };
}

async function chat(url: string, token: string, model: string): Promise<{ status: number; text: string }> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model, messages: [{ role: 'user', content: 'quick start' }] }),
  });
  return { status: res.status, text: await res.text() };
}

let invokeToken = '';

test('--quickstart: a tenant, the three keys sealed, a working invoke token on stdout', async () => {
  const run = await npmStart(['--quickstart'], /invoke token \(for your applications\):\n\s+(sr_\S+)/);
  try {
    const out = run.stdout();
    invokeToken = /invoke token \(for your applications\):\n\s+(sr_\S+)/.exec(out)![1];
    expect(invokeToken).toMatch(/^sr_euc1_local_/);
    expect(out).toContain("tenant 'local' created; keys sealed for openai (from OPENAI_API_KEY), anthropic (from ANTHROPIC_API_KEY), mistral (from MISTRAL_API_KEY)");
    expect(out).toMatch(/tenant-admin token[^\n]*\n\s+sr_euc1_local_/);
    // Progress while it prepares: one line per stage, with the time since start.
    expect(run.stderr()).toMatch(/\[\d+\.\d s\] creating the state in .*\(database, root key, pepper\)\.\.\.\n/);
    expect(run.stderr()).toMatch(/\[\d+\.\d s\] ready\n/);
    expect(run.stderr()).toMatch(/\[\d+\.\d s\] quick start: creating a tenant, sealing the keys, issuing an invoke token\.\.\./);
    for (const model of ['gpt-4o-mini', 'claude-haiku-4-5', 'mistral-small-latest']) {
      const res = await chat(run.url, invokeToken, model);
      expect([model, res.status]).toEqual([model, 200]);
      expect(res.text).toContain('quick start');
    }
    // Each fake saw its own key: the environment values were sealed as they are (trimmed).
    for (const p of ['openai', 'anthropic', 'mistral'] as const) {
      const seen = fakes[p].requests.at(-1)!.headers;
      expect(p === 'anthropic' ? seen['x-api-key'] ?? seen.authorization : seen.authorization).toContain(KEYS[p]);
    }
    const models = (await (await fetch(`${run.url}/v1/models`, { headers: { authorization: `Bearer ${invokeToken}` } })).json()) as { data: { id: string; owned_by: string }[] };
    expect(models.data.find((m) => m.id === 'claude-haiku-4-5')?.owned_by).toBe('anthropic');
  } finally {
    await run.stop();
  }
}, 180_000);

test('a restart on the same state: the token still works; without --quickstart the keys are offered by name only', async () => {
  const run = await npmStart([], /are set: `npm start -- --quickstart`/);
  try {
    expect(run.stderr()).toContain('OPENAI_API_KEY, ANTHROPIC_API_KEY, MISTRAL_API_KEY are set: `npm start -- --quickstart` creates a local tenant');
    expect(run.stdout()).not.toContain('invoke token (for your applications)');
    expect(run.stderr()).toMatch(/\[\d+\.\d s\] opening the state in /);
    expect((await chat(run.url, invokeToken, 'gpt-4o-mini')).status).toBe(200);
  } finally {
    await run.stop();
  }
}, 180_000);

test('no canary key on stdout, stderr or in any file of the state directory', () => {
  expect(transcripts.length).toBe(4);
  expect(canaryHits(transcripts.join('\n'), CANARIES)).toEqual([]);
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir)) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else files.push(path);
    }
  };
  walk(stateDir);
  expect(files.length).toBeGreaterThan(0);
  for (const file of files) {
    const bytes = readFileSync(file);
    // Bytes as latin1 keep every byte one character: a clear-text key shows as itself.
    expect([file, canaryHits(bytes.toString('latin1'), CANARIES)]).toEqual([file, []]);
    expect([file, canaryHits(bytes.toString('utf8'), CANARIES)]).toEqual([file, []]);
  }
});
