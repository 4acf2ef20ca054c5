/**
 * Follows the README as a newcomer would: `npm start` (the local gateway, pointed at fake
 * providers on loopback), the CLI through `npx sovereign-router`, then the official OpenAI and
 * Anthropic SDKs, streaming and not. Ctrl-C stops everything; `--state-dir` survives a restart.
 */
import Anthropic from '@anthropic-ai/sdk';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import OpenAI from 'openai';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';
import { GatewayProcess, waitForListening } from '../support/gateway-process';
import { waitUntil } from '../support/wait';

const ROOT = resolve(__dirname, '..', '..');
const OPENAI_KEY = 'sk-proj-quickstart-openai-0123456789';
const ANTHROPIC_KEY = 'sk-ant-quickstart-0123456789';

type Gateway = GatewayProcess;

function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, AWS_EC2_METADATA_DISABLED: 'true', ...extra };
  return env;
}

async function npmStart(fakes: FakeProviders, extraArgs: string[] = []): Promise<Gateway> {
  // Not the repository's own .state/local (a developer's gateway may be using it): a fresh directory.
  const env = extraArgs.includes('--state-dir') ? cleanEnv() : cleanEnv({ SR_STATE_DIR: mkdtempSync(join(tmpdir(), 'sr-quickstart-')) });
  const proc = spawn(
    'npm',
    ['start', '--', '--port', '0', '--openai-base-url', fakes.openai.baseUrl, '--anthropic-base-url', fakes.anthropic.baseUrl, '--mistral-base-url', fakes.mistral.baseUrl, ...extraArgs],
    { cwd: ROOT, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return waitForListening(proc, 'npm start', 100);
}

/** Ctrl-C as a terminal sends it: SIGINT to the whole foreground process group. */
async function ctrlC(gw: Gateway): Promise<void> {
  const exited = new Promise<void>((r) => gw.proc.once('exit', () => r()));
  process.kill(-gw.proc.pid!, 'SIGINT');
  await exited;
  // Everything it started is gone: the gateway's port and (moto backend) the emulator's port are closed.
  const moto = /AWS emulator \(moto\): (http:\/\/127\.0\.0\.1:\d+)/.exec(gw.output())?.[1];
  expect(moto !== undefined).toBe(gw.output().includes('backend: moto'));
  const deadline = Date.now() + 10_000;
  while ((await portOpen(gw.url)) || (moto !== undefined && (await portOpen(moto)))) {
    if (Date.now() > deadline) throw new Error(`still running after Ctrl-C:\n${gw.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  expect(gw.output()).toContain('SIGINT: stopping');
}

function cli(args: string[], env: Record<string, string>, input?: string): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync('npx', ['sovereign-router', ...args], { cwd: ROOT, env: cleanEnv(env), input, encoding: 'utf8', timeout: 60_000 });
  return { status: res.status, stdout: res.stdout, stderr: res.stderr };
}

function portOpen(url: string): Promise<boolean> {
  const { port } = new URL(url);
  return new Promise((r) => {
    const s = connect(Number(port), '127.0.0.1');
    s.once('connect', () => (s.destroy(), r(true)));
    s.once('error', () => r(false));
  });
}

let fakes: FakeProviders;
beforeAll(async () => {
  fakes = await startFakeProviders();
  fakes.setKey('openai', OPENAI_KEY);
  fakes.setKey('anthropic', ANTHROPIC_KEY);
});
afterAll(() => fakes?.close());

test('npm start, the CLI, then the OpenAI and Anthropic SDKs, streaming and not', async () => {
  const gw = await npmStart(fakes);
  try {
    expect(gw.output()).toContain('backend: embedded SQLite');
    expect(gw.output()).toContain('local mode is for development');
    expect(gw.output()).toContain('npx sovereign-router tenants create');
    const env = { SR_ENDPOINT: gw.url };
    const created = cli(['tenants', 'create', 'acme'], env);
    expect(created.stderr).toContain('shown only once');
    expect(created.status).toBe(0);
    const adminToken = created.stdout.trim();
    expect(adminToken).toMatch(/^sr_euc1_acme_/);

    const put = cli(['secrets', 'put', 'openai', '--api-key-stdin'], { ...env, SR_TOKEN: adminToken }, OPENAI_KEY);
    expect(put.status).toBe(0);
    expect(put.stderr).not.toMatch(/sovereign-router:/);
    expect(put.stdout).not.toContain(OPENAI_KEY);
    const putAnthropic = cli(['secrets', 'put', 'anthropic', '--api-key-env', 'ANTHROPIC_KEY'], { ...env, SR_TOKEN: adminToken, ANTHROPIC_KEY });
    expect(putAnthropic.status).toBe(0);
    const invoke = cli(['tokens', 'create', '--role', 'invoke', '--label', 'my app'], { ...env, SR_TOKEN: adminToken });
    expect(invoke.status).toBe(0);
    const invokeToken = invoke.stdout.trim();

    const listed = JSON.parse(cli(['secrets', 'list'], { ...env, SR_TOKEN: adminToken }).stdout);
    expect(listed.data.map((s: { provider: string }) => s.provider).sort()).toEqual(['anthropic', 'openai']);

    const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: invokeToken, maxRetries: 0 });
    const completion = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello from the sdk' }] });
    expect(completion.choices[0].message.content).toContain('hello from the sdk');
    const stream = await openai.chat.completions.create({ model: 'claude-sonnet-4-5', stream: true, messages: [{ role: 'user', content: 'streamed via anthropic' }] });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.delta?.content ?? '';
    expect(streamed).toContain('streamed via anthropic');

    const anthropic = new Anthropic({ baseURL: gw.url, apiKey: invokeToken, maxRetries: 0 });
    const message = await anthropic.messages.create({ model: 'claude-haiku-4-5', max_tokens: 64, messages: [{ role: 'user', content: 'hi anthropic' }] });
    expect(JSON.stringify(message.content)).toContain('hi anthropic');
    const astream = anthropic.messages.stream({ model: 'gpt-4o-mini', max_tokens: 64, messages: [{ role: 'user', content: 'anthropic sdk to openai' }] });
    const final = await astream.finalMessage();
    expect(JSON.stringify(final.content)).toContain('anthropic sdk to openai');

    // The operator reads the tenant's spend with the CLI: real usage, priced.
    const usage = cli(['tenants', 'usage', 'acme'], env);
    expect(usage.status).toBe(0);
    const report = JSON.parse(usage.stdout);
    expect(report.tenant.spentMicros).toBeGreaterThan(0);
    expect(report.tokens.map((t: { role: string }) => t.role).sort()).toEqual(['invoke', 'tenant-admin']);

    // A policy set with the CLI is enforced at once: a model outside the allowlist is denied.
    const policyFile = join(mkdtempSync(join(tmpdir(), 'sr-policy-')), 'policy.json');
    writeFileSync(policyFile, JSON.stringify({ allowedModels: ['gpt-4o-mini'] }));
    expect(cli(['tenants', 'policy', 'acme', '--set-file', policyFile], env).status).toBe(0);
    await expect(
      openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'not allowed' }] }),
    ).rejects.toMatchObject({ status: 403 });

    // Local mode logs one structured line per request, naming the id of its x-request-id
    // header, and never a key, a token, a prompt or a completion.
    const raw = await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'with request id' }] }).withResponse();
    const requestId = raw.response.headers.get('x-request-id');
    expect(requestId).toMatch(/^[0-9a-f-]{36}$/);
    const vaultRes = await fetch(`${gw.url}/vault/secrets`, { headers: { authorization: `Bearer ${adminToken}` } });
    expect(vaultRes.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // The end stage logs after the last byte, and the log leaves in batches: wait for both lines
    // (a fixed 300 ms was short for a loaded runner).
    const requestLines = () =>
      gw
        .output()
        .split('\n')
        .slice(0, -1) // whole lines only: the last piece may be a line still being written
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .filter((l) => l.message === 'request');
    await waitUntil(() => requestLines().some((l) => l.requestId === requestId) && requestLines().some((l) => l.status === 403), 'the request log lines').catch(() => undefined);
    const lines = requestLines();
    const line = lines.find((l) => l.requestId === requestId);
    expect(line).toMatchObject({ tenantId: 'acme', route: 'chat', provider: 'openai', model: 'gpt-4o-mini', status: 200, decision: 'ok' });
    expect(typeof line!.tokenId).toBe('string');
    expect(line!.costUsd as number).toBeGreaterThan(0);
    expect(lines.find((l) => l.status === 403)).toMatchObject({ decision: 'denied:model_not_allowed', denialReason: 'model_not_allowed' });
    expect(lines.some((l) => l.requestId === vaultRes.headers.get('x-request-id'))).toBe(true);
    const logged = JSON.stringify(lines);
    for (const secret of [OPENAI_KEY, ANTHROPIC_KEY, adminToken, invokeToken, 'hello from the sdk', 'with request id', 'Echo:']) expect(logged).not.toContain(secret);

    // The upstreams saw the stored provider keys, and nothing else of the tenant's.
    const seen = fakes.requests;
    expect(seen.length).toBeGreaterThanOrEqual(4);
    for (const r of seen) {
      const auth = r.provider === 'openai' ? r.headers.authorization : (r.headers['x-api-key'] ?? r.headers.authorization);
      expect(auth).toContain(r.provider === 'openai' ? OPENAI_KEY : ANTHROPIC_KEY);
      const everything = JSON.stringify({ headers: r.headers, body: r.body });
      expect(everything).not.toMatch(/sr_euc1_/);
      expect(everything).not.toContain('acme');
    }
  } finally {
    await ctrlC(gw);
  }
}, 180_000);

test.each([[[] as string[]], [['--backend', 'moto']]])('--state-dir keeps tenants and sealed secrets across a restart (%j)', async (backend) => {
  const dir = mkdtempSync(join(tmpdir(), 'sr-state-'));
  try {
    let gw = await npmStart(fakes, ['--state-dir', dir, ...backend]);
    let adminToken: string;
    try {
      adminToken = cli(['tenants', 'create', 'keepme'], { SR_ENDPOINT: gw.url }).stdout.trim();
      expect(cli(['secrets', 'put', 'openai', '--api-key-stdin'], { SR_ENDPOINT: gw.url, SR_TOKEN: adminToken }, OPENAI_KEY).status).toBe(0);
    } finally {
      await ctrlC(gw);
    }
    gw = await npmStart(fakes, ['--state-dir', dir, ...backend]);
    try {
      expect(gw.output()).toMatch(/restored \d+ items/);
      expect(gw.output()).toContain(backend.length ? 'backend: moto' : 'backend: embedded SQLite');
      const env = { SR_ENDPOINT: gw.url, SR_TOKEN: adminToken };
      const listed = JSON.parse(cli(['secrets', 'list'], env).stdout);
      expect(listed.data).toHaveLength(1);
      const invokeToken = cli(['tokens', 'create'], env).stdout.trim();
      const openai = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: invokeToken, maxRetries: 0 });
      const res = await openai.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'after restart' }] });
      expect(res.choices[0].message.content).toContain('after restart');
    } finally {
      await ctrlC(gw);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
