/**
 * Side by side on loopback, one run: the local sovereign-router gateway, the Portkey gateway
 * (npm @portkey-ai/gateway) and the LiteLLM proxy (PyPI litellm[proxy], in a bench-only venv
 * .venv-bench) over the same fake OpenAI-compatible upstream, each in its own process, measured by
 * the same load generator (its own process), interleaved over rounds. "Added" is a gateway's
 * figure minus the upstream called directly in the same round; results are medians over rounds.
 * The 1-client latency is measured finer still: in each round one client process visits every
 * target (the upstream directly included) in short slices, so each gateway's p50 and the direct
 * p50 it is subtracted from are taken seconds apart, in the same state of the host (on this 2-vCPU
 * VM the same code runs up to 2x slower for minutes at a time); "added" is then per slice and
 * the figures are medians over every slice of every round.
 */
import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { freePort } from '../local/free-port';

const ROOT = resolve(__dirname, '..');
const VENV = join(ROOT, '.venv-bench');
const LITELLM_VERSION = '1.108.*';
const MODEL = 'gpt-4o-mini';
const BODY = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'ping' }], max_tokens: 16 });
const STREAM_BODY = JSON.stringify({ model: MODEL, messages: [{ role: 'user', content: 'ping' }], max_tokens: 16, stream: true });

export interface PeerGoal {
  readonly name: string;
  readonly value: number;
  readonly unit: string;
  readonly goal: number;
  readonly lowerIsBetter: boolean;
  readonly note?: string;
}

interface Target {
  readonly name: 'upstream' | 'sovereign-router' | 'sovereign-router-ungoverned' | 'portkey' | 'litellm';
  readonly url: string;
  readonly headers: Record<string, string>;
}

interface Load {
  requests: number;
  errors: number;
  firstError?: string;
  rps: number;
  p50: number;
  p99: number;
  ttftP50: number;
}

const children: ChildProcess[] = [];
/** Every child's stdout and stderr go to a file here (removed at the end of the run). */
let logDir: string | undefined;

/**
 * Starts a child whose stdout and stderr go to a log file, as under a supervisor that writes logs
 * to disk, and resolves once `ready` matches its output. The file is read for readiness (polled)
 * only until then: a gateway that writes a line per request (ours does) must not wake the bench
 * process per request, nor make it scan a growing string, while it is measured. Before, each
 * child's output came through a pipe the bench kept reading, appending and matching (up to 1 MB)
 * after readiness too: a cost that fell on whichever peer logs most, in the process that also
 * spawns the load generator, on a 2-core machine.
 */
function start(cmd: string, args: string[], ready: RegExp, env: NodeJS.ProcessEnv = {}, timeoutMs = 180_000): Promise<{ proc: ChildProcess; match: RegExpMatchArray }> {
  logDir ??= mkdtempSync(join(tmpdir(), 'sr-bench-logs-'));
  const file = join(logDir, `${children.length}-${basename(cmd)}.log`);
  const fd = openSync(file, 'a');
  let proc: ChildProcess;
  try {
    proc = spawn(cmd, args, { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', fd, fd], detached: true });
  } finally {
    closeSync(fd); // the child holds its own copy
  }
  children.push(proc);
  const text = (): string => {
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return '';
    }
  };
  const tail = () => text().slice(-2000);
  return new Promise((ok, fail) => {
    let done = false;
    const finish = (): void => {
      done = true;
      clearTimeout(timer);
      clearInterval(poll);
    };
    const timer = setTimeout(() => {
      finish();
      fail(new Error(`${cmd} did not start within ${timeoutMs} ms:\n${tail()}`));
    }, timeoutMs);
    const poll = setInterval(() => {
      const m = ready.exec(text());
      if (m && !done) {
        finish();
        ok({ proc, match: m });
      }
    }, 50);
    proc.once('error', (err) => {
      if (done) return;
      finish();
      fail(err);
    });
    proc.once('exit', (code) => {
      if (done) return;
      finish();
      fail(new Error(`${cmd} exited (${code}):\n${tail()}`));
    });
  });
}

async function waitHttp(url: string, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      await res.arrayBuffer();
      if (res.status < 500) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function json(url: string, init: { method: string; token?: string; body?: unknown }): Promise<{ token: string }> {
  const res = await fetch(url, {
    method: init.method,
    headers: { 'content-type': 'application/json', ...(init.token ? { authorization: `Bearer ${init.token}` } : {}) },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
  });
  const out = (await res.json()) as { token: string };
  if (res.status >= 300) throw new Error(`${init.method} ${url}: ${res.status} ${JSON.stringify(out)}`);
  return out;
}

/** Starts the local gateway as `npm start` runs it (scripts/start-local.cjs) on its own fresh state directory (the durable default, WAL, measured as shipped; never the developer's .state/local). */
async function sovereignProcess(upstream: string, stateDir: string): Promise<{ proc: ChildProcess; url: string }> {
  const port = await freePort();
  const { proc, match } = await start(
    process.execPath,
    ['scripts/start-local.cjs', '--port', String(port), '--state-dir', stateDir, '--openai-base-url', upstream],
    /listening on (http:\/\/127\.0\.0\.1:\d+)/,
    { AWS_EC2_METADATA_DISABLED: 'true' },
  );
  return { proc, url: match[1] };
}

async function startSovereign(upstream: string, stateDir = mkdtempSync(join(tmpdir(), 'sr-bench-state-'))): Promise<Target & { stateDir: string; proc: ChildProcess }> {
  const { proc, url } = await sovereignProcess(upstream, stateDir);
  // A governed tenant (monthly budget, so every request reserves and settles), as deployed.
  const created = await json(`${url}/admin/tenants`, { method: 'POST', body: { tenantId: 'bench', mode: 'managed', policy: { monthlyBudgetUsd: 100_000 } } });
  await json(`${url}/vault/secrets`, { method: 'POST', token: created.token, body: { provider: 'openai', apiKey: 'sk-bench-upstream-key' } });
  const invoke = await json(`${url}/vault/tokens`, { method: 'POST', token: created.token, body: { role: 'invoke', label: 'bench' } });
  return { name: 'sovereign-router', url: `${url}/v1/chat/completions`, headers: { authorization: `Bearer ${invoke.token}` }, stateDir, proc };
}

/**
 * A tenant without budget, RPM or TPM on the same gateway: no reservation, so one store commit
 * fewer per request (settle and usage record only). Shown beside the governed tenant; the goals
 * are judged on the governed one.
 */
async function ungovernedTenant(gateway: Target): Promise<Target> {
  const base = gateway.url.replace(/\/v1\/chat\/completions$/, '');
  const created = await json(`${base}/admin/tenants`, { method: 'POST', body: { tenantId: 'bench-open', mode: 'managed' } });
  await json(`${base}/vault/secrets`, { method: 'POST', token: created.token, body: { provider: 'openai', apiKey: 'sk-bench-upstream-key' } });
  const invoke = await json(`${base}/vault/tokens`, { method: 'POST', token: created.token, body: { role: 'invoke', label: 'bench' } });
  return { name: 'sovereign-router-ungoverned', url: gateway.url, headers: { authorization: `Bearer ${invoke.token}` } };
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null) return;
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  process.kill(-proc.pid!, 'SIGTERM');
  await exited;
}

/**
 * A second local gateway whose store holds `count` usage records of the bench tenant, written
 * straight into its embedded database while it is stopped (the embedded backend's schema).
 * Undefined when the gateway has no embedded store (the moto backend cannot hold that many in
 * reasonable time).
 */
async function startSovereignWithRecords(upstream: string, count: number): Promise<Target | undefined> {
  if (!existsSync(join(ROOT, 'local/embedded/database.ts'))) return undefined;
  const first = await startSovereign(upstream);
  await stop(first.proc);
  // The gateway's own database class (its lock file, pragmas and schema), loaded only when present.
  const moduleName = '../local/embedded/database';
  type Db = { run(sql: string, params: readonly (string | number)[]): number; transaction<T>(fn: () => T): T; close(): void };
  const mod = (await import(moduleName)) as { EmbeddedDatabase?: new (o: { dir: string }) => Db; default?: { EmbeddedDatabase: new (o: { dir: string }) => Db } };
  const EmbeddedDatabase = mod.EmbeddedDatabase ?? mod.default!.EmbeddedDatabase;
  const db = new EmbeddedDatabase({ dir: first.stateDir });
  try {
    const base = Date.now() - 30 * 24 * 3600 * 1000;
    const expires = Math.floor(Date.now() / 1000) + 400 * 24 * 3600;
    db.transaction(() => {
      for (let i = 0; i < count; i++) {
        const at = new Date(base + i * 20).toISOString();
        const requestId = `seed-${i.toString().padStart(8, '0')}`;
        const body = JSON.stringify({ requestId, tenantId: 'bench', tokenId: 'tk_seed', route: 'chat', model: MODEL, provider: 'openai', upstreamModel: MODEL, stream: false, status: 200, decision: 'ok', inputTokens: 8, outputTokens: 1, costUsd: 0.0000018, latencyMs: 3, fallbackChain: [], at });
        db.run('INSERT INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, ?)', ['bench', `${at}#${requestId}`, at, requestId, expires, body]);
      }
    });
  } finally {
    db.close();
  }
  const again = await sovereignProcess(upstream, first.stateDir);
  return { name: 'sovereign-router', url: `${again.url}/v1/chat/completions`, headers: first.headers };
}

async function startPortkey(upstream: string): Promise<Target> {
  const port = await freePort();
  await start(process.execPath, [join(ROOT, 'node_modules/@portkey-ai/gateway/build/start-server.js'), `--port=${port}`, '--headless'], /ready|listening|running|http:\/\//i, { NODE_ENV: 'production' });
  await waitHttp(`http://127.0.0.1:${port}/`);
  return {
    name: 'portkey',
    url: `http://127.0.0.1:${port}/v1/chat/completions`,
    headers: { authorization: 'Bearer sk-bench-upstream-key', 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${upstream}/v1` },
  };
}

/** The bench-only venv with the LiteLLM proxy (never the shared .venv of moto and cfn-lint). */
function ensureLiteLlm(): string {
  const bin = join(VENV, 'bin', 'litellm');
  if (existsSync(bin)) return bin;
  console.error(`bench: creating ${VENV} with litellm[proxy]==${LITELLM_VERSION} (first run only, a few minutes)`);
  execFileSync('python3', ['-m', 'venv', VENV], { stdio: 'inherit' });
  execFileSync(join(VENV, 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', `litellm[proxy]==${LITELLM_VERSION}`], { stdio: 'inherit' });
  return bin;
}

async function startLiteLlm(upstream: string): Promise<Target> {
  const bin = ensureLiteLlm();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sr-litellm-'));
  const config = join(dir, 'config.yaml');
  writeFileSync(
    config,
    [
      'model_list:',
      `  - model_name: ${MODEL}`,
      '    litellm_params:',
      `      model: openai/${MODEL}`,
      `      api_base: ${upstream}/v1`,
      '      api_key: sk-bench-upstream-key',
      'litellm_settings:',
      '  telemetry: false',
      '  drop_params: true',
      '',
    ].join('\n'),
  );
  // It refuses to start without a master key: the clients present it, as they would in use.
  const masterKey = `sk-bench-${randomBytes(16).toString('hex')}`;
  await start(bin, ['--config', config, '--port', String(port), '--host', '127.0.0.1'], /LiteLLM|█/, {
    PYTHONUNBUFFERED: '1',
    LITELLM_MASTER_KEY: masterKey,
    LITELLM_LOCAL_MODEL_COST_MAP: 'True',
    LITELLM_LOG: 'ERROR',
    LITELLM_TELEMETRY: 'False',
    DISABLE_SCHEMA_UPDATE: 'True',
    NO_PROXY: '*',
  });
  await waitHttp(`http://127.0.0.1:${port}/health/liveliness`, 240_000);
  return { name: 'litellm', url: `http://127.0.0.1:${port}/v1/chat/completions`, headers: { authorization: `Bearer ${masterKey}` } };
}

/** Slices per round of the interleaved 1-client measurement, and their size. */
const SLICES_PER_ROUND = 4;
const SLICE_REQUESTS = 250;
const SLICE_MS = 1_500;

/** Per target, the 1-client p50 (ms) of every slice of one interleaved pass (see load.mjs). */
function interleaved(targets: { key: string; t: Target }[]): Promise<Record<string, { p50: number[]; errors: number; firstError?: string }>> {
  return new Promise((ok, fail) => {
    const spec = { targets: targets.map(({ key, t }) => ({ name: key, url: t.url, headers: t.headers, body: BODY })), slices: SLICES_PER_ROUND, requests: SLICE_REQUESTS, sliceMs: SLICE_MS, warmup: 50 };
    const proc = spawn(process.execPath, [join(__dirname, 'peers', 'load.mjs'), JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.once('exit', (code) => (code === 0 ? ok(JSON.parse(out, (_k, v: unknown) => (v === null ? NaN : v))) : fail(new Error(`interleaved load generator exited ${code}`))));
  });
}

function load(t: Target, o: { concurrency: number; requests?: number; durationMs?: number; stream?: boolean; warmup?: number }): Promise<Load> {
  return new Promise((ok, fail) => {
    const proc = spawn(process.execPath, [join(__dirname, 'peers', 'load.mjs'), JSON.stringify({ url: t.url, headers: t.headers, body: o.stream ? STREAM_BODY : BODY, ...o })], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    // JSON has no NaN: a run without one successful request reports null, read back as NaN.
    proc.once('exit', (code) => (code === 0 ? ok(JSON.parse(out, (_k, v: unknown) => (v === null ? NaN : v)) as Load) : fail(new Error(`load generator exited ${code} against ${t.name}`))));
  });
}

const median = (xs: number[]) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const r2 = (x: number) => Math.round(x * 100) / 100;

export interface PeersOptions {
  readonly rounds?: number;
}

export async function peersBench(opts: PeersOptions = {}): Promise<PeerGoal[]> {
  const rounds = Math.max(5, opts.rounds ?? 5);
  try {
    const up = await start(process.execPath, [join(__dirname, 'peers', 'fake-upstream.mjs'), String(await freePort())], /listening (\d+)/);
    const upstream = `http://127.0.0.1:${up.match[1]}`;
    const direct: Target = { name: 'upstream', url: `${upstream}/v1/chat/completions`, headers: { authorization: 'Bearer sk-bench-upstream-key' } };
    console.error('bench: starting sovereign-router (local), Portkey and LiteLLM over one fake upstream...');
    const [sovereign, portkey, litellm] = await Promise.all([startSovereign(upstream), startPortkey(upstream), startLiteLlm(upstream)]);
    // Flatness compares two gateways started the same way (stopped, seeded, restarted) and
    // warmed by the same load, one with 100,000 usage records and one with none. Comparing
    // against the gateway measured above instead mixed in JIT warmth: that one has served
    // thousands of requests more, and a restarted gateway with 0 records added 2x as well.
    const twin = await startSovereignWithRecords(upstream, 0);
    const withRecords = await startSovereignWithRecords(upstream, 100_000);
    if (twin && withRecords) for (const t of [twin, withRecords]) await load(t, { concurrency: 16, durationMs: 3_000, warmup: 64 });
    const open = await ungovernedTenant(sovereign);
    const targets = [direct, sovereign, open, portkey, litellm];
    const per = new Map<string, { p50: number[]; p99_16: number[]; rps16: number[]; errors16: number[]; ttft: number[]; firstError?: string }>();
    for (const t of targets) per.set(t.name, { p50: [], p99_16: [], rps16: [], errors16: [], ttft: [] });
    const flat = { none: [] as number[], full: [] as number[] };
    // Every target is warmed alike before the first round (JIT, connection pools, caches), by the
    // same load as a round's; before, each met its first measured round after 30 requests.
    for (const t of targets) {
      await load(t, { concurrency: 16, durationMs: 2_000, warmup: 64 });
      await load(t, { concurrency: 1, requests: 200, durationMs: 2_000, stream: true });
    }

    for (let round = 0; round < rounds; round++) {
      // Interleaved: each round visits every target, in a rotated order.
      const order = targets.map((_, i) => targets[(i + round) % targets.length]);
      for (const t of order) {
        const m = per.get(t.name)!;
        const many = await load(t, { concurrency: 16, durationMs: 4_000, warmup: 64 });
        const stream = await load(t, { concurrency: 1, requests: 200, durationMs: 3_000, stream: true });
        m.p99_16.push(many.p99);
        m.rps16.push(many.rps);
        m.errors16.push(many.errors + stream.errors);
        m.ttft.push(stream.ttftP50);
        m.firstError ??= many.firstError ?? stream.firstError;
      }
      // The 1-client p50 of every target (and of the twins, 100,000 usage records stored and
      // none), slice by slice in one client process: see interleaved().
      const twins = twin && withRecords ? [{ key: 'twin-none', t: twin }, { key: 'twin-full', t: withRecords }] : [];
      const slices = await interleaved([...targets.map((t) => ({ key: t.name, t })), ...twins]);
      for (const t of targets) {
        const m = per.get(t.name)!;
        m.p50.push(...slices[t.name].p50);
        m.errors16.push(slices[t.name].errors);
        m.firstError ??= slices[t.name].firstError;
      }
      const direct = slices.upstream.p50;
      if (twins.length > 0) {
        slices['twin-none'].p50.forEach((v, i) => flat.none.push(v - direct[i]));
        slices['twin-full'].p50.forEach((v, i) => flat.full.push(v - direct[i]));
      }
      console.error(`bench: peers round ${round + 1}/${rounds} done`);
    }

    // Added over the upstream called directly, per round (per slice for the 1-client p50), then
    // the median over rounds (slices).
    const added = (name: string, key: 'p50' | 'p99_16' | 'ttft') => median(per.get(name)![key].map((v, i) => v - per.get('upstream')![key][i]));
    const table: string[] = [
      '',
      `side by side (loopback, same fake upstream, medians over ${rounds} interleaved rounds; 1-client p50: over ${rounds * SLICES_PER_ROUND} interleaved slices of up to ${SLICE_REQUESTS} requests)`,
      '| | sovereign-router (local, budgeted tenant) | same, tenant without limits | Portkey 1.15.2 | LiteLLM 1.108 | upstream direct |',
      '|---|---|---|---|---|---|',
    ];
    const row = (label: string, f: (n: string) => string) => table.push(`| ${label} | ${['sovereign-router', 'sovereign-router-ungoverned', 'portkey', 'litellm', 'upstream'].map(f).join(' | ')} |`);
    row('added p50, 1 client (ms)', (n) => (n === 'upstream' ? `${r2(median(per.get(n)!.p50))} (absolute)` : String(r2(added(n, 'p50')))));
    row('added p99, 16 clients (ms)', (n) => (n === 'upstream' ? `${r2(median(per.get(n)!.p99_16))} (absolute)` : String(r2(added(n, 'p99_16')))));
    row('throughput, 16 clients (req/s)', (n) => String(Math.round(median(per.get(n)!.rps16))));
    row('errors (all runs)', (n) => String(per.get(n)!.errors16.reduce((a, b) => a + b, 0)));
    row('added time to first SSE chunk p50 (ms)', (n) => (n === 'upstream' ? `${r2(median(per.get(n)!.ttft))} (absolute)` : Number.isNaN(added(n, 'ttft')) ? 'n/a' : String(r2(added(n, 'ttft')))));
    console.log(table.join('\n'));
    for (const [n, m] of per) if (m.firstError) console.log(`first error from ${n}: ${m.firstError}`);
    console.log('(n/a: no successful request of that kind; Portkey 1.15.2 answers streamed requests with 500 on Node 20: "TypeError: immutable" in its updateHeaders)');

    const sr = (k: 'p50' | 'p99_16' | 'ttft') => added('sovereign-router', k);
    const pk = (k: 'p50' | 'p99_16' | 'ttft') => added('portkey', k);
    const srErrors = per.get('sovereign-router')!.errors16.reduce((a, b) => a + b, 0);
    // The same ratio slice by slice (ours and Portkey's added p50 measured seconds apart): its
    // median and range show how much the host's state moved the figure above.
    const directP50 = per.get('upstream')!.p50;
    const sliceRatios = per
      .get('sovereign-router')!
      .p50.map((v, i) => (v - directP50[i]) / (per.get('portkey')!.p50[i] - directP50[i]))
      .filter((x) => Number.isFinite(x))
      .sort((a, b) => a - b);
    const ratioSpread = sliceRatios.length > 0 ? `; per slice: median ${r2(median(sliceRatios))}x, ${sliceRatios.filter((x) => x <= 0.5).length} of ${sliceRatios.length} slices <= 0.5x, range ${r2(sliceRatios[0])}-${r2(sliceRatios[sliceRatios.length - 1])}x` : '';
    return [
      { name: 'peers: added p50, 1 client', value: r2(sr('p50')), unit: 'ms', goal: 1, lowerIsBetter: true },
      { name: 'peers: added p50 / Portkey added p50', value: r2(sr('p50') / pk('p50')), unit: 'x', goal: 0.5, lowerIsBetter: true, note: `Portkey ${r2(pk('p50'))} ms, LiteLLM ${r2(added('litellm', 'p50'))} ms; ours for a tenant without limits ${r2(added('sovereign-router-ungoverned', 'p50'))} ms, ${Math.round(median(per.get('sovereign-router-ungoverned')!.rps16))} req/s at 16 clients${ratioSpread}` },
      { name: 'peers: throughput, 16 clients', value: Math.round(median(per.get('sovereign-router')!.rps16)), unit: 'req/s', goal: 1000, lowerIsBetter: false, note: `Portkey ${Math.round(median(per.get('portkey')!.rps16))}, LiteLLM ${Math.round(median(per.get('litellm')!.rps16))}` },
      { name: 'peers: errors (all runs)', value: srErrors, unit: '', goal: 0, lowerIsBetter: true },
      { name: 'peers: added p99 16 clients minus Portkey', value: r2(sr('p99_16') - pk('p99_16')), unit: 'ms', goal: -0.01, lowerIsBetter: true, note: `ours ${r2(sr('p99_16'))} ms, Portkey ${r2(pk('p99_16'))} ms (ratio ${r2(sr('p99_16') / pk('p99_16'))}x)` },
      { name: 'peers: added time to first SSE chunk p50', value: r2(sr('ttft')), unit: 'ms', goal: 1, lowerIsBetter: true, note: `Portkey ${r2(pk('ttft'))} ms, LiteLLM ${r2(added('litellm', 'ttft'))} ms` },
      {
        name: 'peers: added p50 with 100,000 usage records / with none',
        value: withRecords ? r2(median(flat.full) / median(flat.none)) : NaN,
        unit: 'x',
        goal: 1.1,
        lowerIsBetter: true,
        note: withRecords
          ? `added p50 ${r2(median(flat.full))} ms with 100,000 records, ${r2(median(flat.none))} ms with none`
          : 'not measured: storing 100,000 usage records needs the embedded backend (moto cannot hold them in reasonable time)',
      },
    ];
  } finally {
    for (const c of children) {
      try {
        if (c.pid) process.kill(-c.pid, 'SIGTERM');
      } catch {
        // already gone
      }
    }
    if (logDir) rmSync(logDir, { recursive: true, force: true });
    logDir = undefined;
  }
}

if (require.main === module) {
  peersBench({ rounds: Number(process.env.BENCH_ROUNDS ?? 5) })
    .then((goals) => {
      for (const g of goals) console.log(`${(g.lowerIsBetter ? g.value <= g.goal : g.value >= g.goal) ? 'ok  ' : 'MISS'} ${g.name}: ${g.value} ${g.unit} (goal ${g.lowerIsBetter ? '≤' : '≥'} ${g.goal})${g.note ? ` — ${g.note}` : ''}`);
    })
    .catch((err) => {
      console.error(err);
      process.exitCode = 1;
    });
}
