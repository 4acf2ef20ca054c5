/**
 * The request log of `npm start` (local/start.ts, issue 12 point 8), as the process writes it to
 * stdout: one JSON line per request with its fields, found by the request id the answer carried;
 * lines batched for up to 50 ms are all written when the gateway is stopped right after its last
 * answers; no key, token, prompt or completion in stdout or stderr.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { canaryHits, makeCanary } from '../support/canary';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';
import { gatewayCall, gatewayJson } from '../support/gateway-http';

const ROOT = resolve(__dirname, '..', '..');
let fakes: FakeProviders;
let stateDir: string;
let gw: ChildProcess | undefined;

beforeAll(async () => {
  fakes = await startFakeProviders();
  stateDir = mkdtempSync(join(tmpdir(), 'sr-request-log-'));
});
afterAll(async () => {
  if (gw?.exitCode === null) gw.kill('SIGKILL');
  await fakes?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

test('one line per request on stdout with its fields, all written at a stop right after the answers, nothing secret', async () => {
  const canaryKey = makeCanary('reqlog');
  const prompt = `tell nobody ${makeCanary('prompt')}`;
  fakes.setKey('openai', canaryKey);
  // Port 0: the gateway binds a port the OS picks and prints it (a port chosen beforehand could be
  // taken by another socket while node starts).
  gw = spawn(process.execPath, ['--import', 'tsx', 'local/start.ts', '--port', '0', '--state-dir', stateDir, '--openai-base-url', fakes.openai.baseUrl], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, AWS_EC2_METADATA_DISABLED: 'true' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  gw.stdout!.on('data', (d) => (stdout += d));
  gw.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => gw!.once('exit', (code) => r(code)));
  const deadline = Date.now() + 60_000;
  let listening: RegExpExecArray | null;
  while (!(listening = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout))) {
    if (gw.exitCode !== null || Date.now() > deadline) throw new Error(`the gateway did not come up:\n${stdout}\n${stderr}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const url = listening[1];
  const tenant = await gatewayJson(url, 'POST', '/admin/tenants', { tenantId: 'reqlog', mode: 'managed', policy: { monthlyBudgetUsd: 10 } });
  await gatewayJson(url, 'POST', '/vault/secrets', { provider: 'openai', apiKey: canaryKey }, tenant.token);
  const issued = await gatewayJson(url, 'POST', '/vault/tokens', { role: 'invoke', label: 'app' }, tenant.token);
  const invoke = issued.token as string;
  const tokenId = issued.tokenId as string;
  expect(tokenId).toMatch(/^tk_/);

  const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }] };
  const ok = await Promise.all([1, 2, 3].map(() => gatewayCall(url, 'POST', '/v1/chat/completions', chat, invoke)));
  const denied = await gatewayCall(url, 'POST', '/v1/chat/completions', { ...chat, model: 'no-such-model' }, invoke);
  const completion = ok[0].json.choices[0].message.content as string;
  for (const r of ok) expect(r.status).toBe(200);
  expect(denied.status).toBeGreaterThanOrEqual(400);
  // Stopped within the batch delay of the last lines: the stop must write them.
  gw.kill('SIGTERM');
  expect(await exited).toBe(0);

  const lines = stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const r of ok) {
    const mine = lines.filter((l) => l.requestId === r.requestId);
    expect(mine).toHaveLength(1);
    expect(mine[0]).toMatchObject({ level: 'INFO', service: 'local-gateway', message: 'request', tenantId: 'reqlog', tokenId, route: 'chat', provider: 'openai', model: 'gpt-4o-mini', status: 200, decision: 'ok', fallbackChain: 'openai/gpt-4o-mini:ok' });
    expect(typeof mine[0].latencyMs).toBe('number');
    expect(typeof mine[0].costUsd).toBe('number');
    expect(Date.parse(String(mine[0].timestamp))).toBeGreaterThan(Date.now() - 120_000);
  }
  const deniedLine = lines.filter((l) => l.requestId === denied.requestId);
  expect(deniedLine).toHaveLength(1);
  expect(deniedLine[0]).toMatchObject({ message: 'request', tenantId: 'reqlog', status: denied.status });
  expect(deniedLine[0].decision ?? deniedLine[0].reason).toBeDefined();
  // Never a key, token, prompt or completion.
  const all = stdout + stderr;
  expect(canaryHits(all, [canaryKey, prompt.split(' ')[2]])).toEqual([]);
  expect(all).not.toContain(invoke);
  expect(all).not.toContain(tenant.token);
  expect(all).not.toContain(completion);
}, 120_000);
