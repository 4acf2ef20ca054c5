/**
 * Durable by default: the local gateway (embedded store) is killed with SIGKILL in the middle of
 * a load of tenant creations, token creations, sealed secrets and model calls, then restarted on
 * the same state directory. Everything the clients saw answered is there: tenants, working
 * tokens, sealed secrets, and a usage record (and the spend) of every answered model call.
 */
import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { EmbeddedDatabase } from '../../local/embedded/database';
import { canaryHits } from '../support/canary';
import { FakeProviders, startFakeProviders } from '../support/fake-providers';
import { gatewayCall } from '../support/gateway-http';
import { GatewayProcess, waitForListening } from '../support/gateway-process';

const ROOT = resolve(__dirname, '..', '..');
const OPENAI_KEY = 'sk-proj-durability-0123456789abcdef';
const WORKERS = 8;

type Gateway = GatewayProcess;

async function startGateway(fakes: FakeProviders, stateDir: string, killAfterAnswers?: number): Promise<Gateway> {
  // node itself (not npm), so that SIGKILL hits the process holding the database.
  const kill = killAfterAnswers === undefined ? [] : ['--require', join(__dirname, '..', 'support', 'kill-after-answers.cjs')];
  const proc = spawn(
    process.execPath,
    [...kill, '--import', 'tsx', 'local/start.ts', '--port', '0', '--state-dir', stateDir, '--openai-base-url', fakes.openai.baseUrl, '--anthropic-base-url', fakes.anthropic.baseUrl, '--mistral-base-url', fakes.mistral.baseUrl],
    { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...(killAfterAnswers === undefined ? {} : { KILL_AFTER_ANSWERS: String(killAfterAnswers) }) }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  return waitForListening(proc, 'the gateway');
}

// Answered means: the whole response arrived (gatewayCall reads it all).
const call = (gw: Gateway, method: string, path: string, body?: unknown, token?: string) => gatewayCall(gw.url, method, path, body, token);

async function stopped(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  await new Promise<void>((r) => proc.once('exit', () => r()));
}

let fakes: FakeProviders;
const dir = mkdtempSync(join(tmpdir(), 'sr-kill-'));
beforeAll(async () => {
  fakes = await startFakeProviders();
  fakes.setKey('openai', OPENAI_KEY);
});
afterAll(async () => {
  await fakes?.close();
  rmSync(dir, { recursive: true, force: true });
});

test('kill -9 under load loses nothing that was answered: tenants, tokens, secrets, usage records and spend', async () => {
  let gw = await startGateway(fakes, dir);
  const base = await call(gw, 'POST', '/admin/tenants', { tenantId: 'base', policy: { monthlyBudgetUsd: 1000 } });
  expect(base.status).toBe(201);
  const baseAdmin = base.json.token as string;
  expect((await call(gw, 'POST', '/vault/secrets', { provider: 'openai', name: 'default', apiKey: OPENAI_KEY }, baseAdmin)).status).toBe(201);
  const invoke = (await call(gw, 'POST', '/vault/tokens', { role: 'invoke' }, baseAdmin)).json.token as string;

  const tenants: { id: string; admin: string }[] = [];
  const secrets: { admin: string; name: string }[] = [];
  const invokeTokens: string[] = [];
  const calls: string[] = [];
  let stop = false;
  const worker = async (w: number) => {
    for (let i = 0; !stop; i++) {
      try {
        switch (i % 4) {
          case 0: {
            const id = `t${w}x${i}`;
            const r = await call(gw, 'POST', '/admin/tenants', { tenantId: id });
            if (r.status === 201) tenants.push({ id, admin: r.json.token });
            break;
          }
          case 1: {
            const owner = tenants[tenants.length - 1] ?? { admin: baseAdmin };
            const name = `n${w}x${i}`;
            const r = await call(gw, 'POST', '/vault/secrets', { provider: 'openai', name, apiKey: OPENAI_KEY }, owner.admin);
            if (r.status === 201) secrets.push({ admin: owner.admin, name });
            break;
          }
          case 2: {
            const r = await call(gw, 'POST', '/vault/tokens', { role: 'invoke', label: `w${w}` }, baseAdmin);
            if (r.status === 201) invokeTokens.push(r.json.token);
            break;
          }
          default: {
            const r = await call(gw, 'POST', '/v1/chat/completions', { model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: `call ${w} ${i}` }] }, invoke);
            if (r.status === 200) calls.push(r.requestId!);
            break;
          }
        }
      } catch {
        return; // the gateway is gone
      }
    }
  };
  const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
  // Kill once a good number of every kind of change has been answered: mid-load, not after it.
  const deadline = Date.now() + 60_000;
  while (Math.min(tenants.length, secrets.length, invokeTokens.length, calls.length) < 15 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  gw.proc.kill('SIGKILL');
  await stopped(gw.proc);
  stop = true;
  await load;
  expect(gw.proc.signalCode).toBe('SIGKILL');
  expect(Math.min(tenants.length, secrets.length, invokeTokens.length, calls.length)).toBeGreaterThanOrEqual(15);
  console.log(`killed after ${tenants.length} tenants, ${secrets.length} secrets, ${invokeTokens.length} tokens and ${calls.length} model calls were answered`);

  // The state directory keeps its modes after a crash.
  expect(statSync(dir).mode & 0o777).toBe(0o700);
  for (const f of ['gateway.sqlite', 'usage.journal', 'root-key.bin', 'pepper']) expect(statSync(join(dir, f)).mode & 0o777).toBe(0o600);
  // What the killed process left holds no provider key in clear: the usage journal (records of
  // answered calls not yet moved into the table), the WAL and the database alike.
  for (const f of readdirSync(dir)) {
    if (statSync(join(dir, f)).isDirectory()) continue;
    const bytes = readFileSync(join(dir, f));
    expect([f, canaryHits(bytes.toString('latin1'), [OPENAI_KEY]), canaryHits(bytes.toString('utf8'), [OPENAI_KEY])]).toEqual([f, [], []]);
  }

  gw = await startGateway(fakes, dir);
  try {
    for (const t of tenants) {
      expect([t.id, (await call(gw, 'GET', `/admin/tenants/${t.id}`)).status]).toEqual([t.id, 200]);
      expect((await call(gw, 'GET', '/vault/tokens', undefined, t.admin)).status).toBe(200);
    }
    const listed = new Map<string, string[]>();
    for (const s of secrets) {
      if (!listed.has(s.admin)) listed.set(s.admin, ((await call(gw, 'GET', '/vault/secrets', undefined, s.admin)).json.data as { name: string }[]).map((x) => x.name));
      expect(listed.get(s.admin)).toContain(s.name);
    }
    for (const token of invokeTokens) expect((await call(gw, 'GET', '/v1/models', undefined, token)).status).toBe(200);
    // The sealed secrets still open: a model call through the restarted gateway works.
    expect((await call(gw, 'POST', '/v1/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'after the crash' }] }, invoke)).status).toBe(200);
  } finally {
    gw.proc.kill('SIGINT');
    await stopped(gw.proc);
  }

  // Every answered model call has its usage record, and its cost is in the tenant's spend.
  const db = new EmbeddedDatabase({ dir });
  try {
    const rows = db.all("SELECT request_id, body FROM usage WHERE tenant_id = 'base'");
    const byId = new Map(rows.map((r) => [String(r.request_id), JSON.parse(String(r.body))]));
    for (const id of calls) expect([id, byId.get(id)?.status, byId.get(id)?.decision]).toEqual([id, 200, 'ok']);
    const answeredMicros = calls.reduce((sum, id) => sum + Math.round(byId.get(id).costUsd * 1e6), 0);
    expect(answeredMicros).toBeGreaterThan(0);
    // Summed over the month rows: a run across a month boundary has two (sk is the month).
    const spend = db.one("SELECT SUM(spentMicros) AS spentMicros FROM counters WHERE pk = 'SPEND#base'");
    expect(Number(spend?.spentMicros)).toBeGreaterThanOrEqual(answeredMicros);
    // Answered calls were settled: none of them still holds a reservation.
    const held = new Set(db.all("SELECT sk FROM counters WHERE pk = 'RESV#base' AND body IS NOT NULL").map((r) => String(r.sk)));
    expect(calls.filter((id) => held.has(id))).toEqual([]);
  } finally {
    db.close();
  }
}, 240_000);

test('kill -9 the moment one client at a time has its answer (its settle journaled, its SQL not yet run) loses no spend and no record', async () => {
  // One client, one request in flight: the gateway answers once the settle and the usage record
  // are in the journal (one write) and runs their SQL after the answer (local/embedded/database.ts).
  // A preload kills the gateway right after it ended its n-th answer, before anything scheduled
  // after that answer ran; three rounds over one state directory. Every answered call must be
  // there after each restart, settled exactly once.
  const stateDir = mkdtempSync(join(tmpdir(), 'sr-kill-one-'));
  try {
    let gw = await startGateway(fakes, stateDir);
    const created = await call(gw, 'POST', '/admin/tenants', { tenantId: 'one', policy: { monthlyBudgetUsd: 1000 } });
    expect(created.status).toBe(201);
    expect((await call(gw, 'POST', '/vault/secrets', { provider: 'openai', name: 'default', apiKey: OPENAI_KEY }, created.json.token)).status).toBe(201);
    const invoke = (await call(gw, 'POST', '/vault/tokens', { role: 'invoke' }, created.json.token)).json.token as string;
    gw.proc.kill('SIGINT');
    await stopped(gw.proc);
    const answered: string[] = [];
    for (let round = 0; round < 3; round++) {
      const calls = 3 + round;
      gw = await startGateway(fakes, stateDir, calls);
      for (let i = 0; i < calls; i++) {
        const r = await call(gw, 'POST', '/v1/chat/completions', { model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: `round ${round} call ${i}` }] }, invoke);
        expect(r.status).toBe(200);
        answered.push(r.requestId!);
      }
      await stopped(gw.proc);
      expect(gw.proc.signalCode).toBe('SIGKILL');
    }

    const db = new EmbeddedDatabase({ dir: stateDir });
    try {
      const byId = new Map(db.all("SELECT request_id, body FROM usage WHERE tenant_id = 'one'").map((r) => [String(r.request_id), JSON.parse(String(r.body))]));
      for (const id of answered) expect([id, byId.get(id)?.status]).toEqual([id, 200]);
      // Exactly the answered calls' cost: every settle applied once (none lost, none counted twice).
      const answeredMicros = answered.reduce((sum, id) => sum + Math.round(byId.get(id).costUsd * 1e6), 0);
      expect(answeredMicros).toBeGreaterThan(0);
      const spend = db.one("SELECT SUM(spentMicros) AS spent, SUM(reservedMicros) AS reserved FROM counters WHERE pk = 'SPEND#one'");
      expect([Number(spend?.spent), Number(spend?.reserved)]).toEqual([answeredMicros, 0]);
      expect(db.all("SELECT sk FROM counters WHERE pk = 'RESV#one' AND body IS NOT NULL")).toEqual([]);
    } finally {
      db.close();
    }
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
  }
}, 120_000);
