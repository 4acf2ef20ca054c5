/**
 * `npm run bench:first-start`: the first `npm start` on a fresh clone (issue 12.6). Clones this
 * checkout's HEAD into a temporary directory, runs `npm ci` there (timed apart: it is the clone's
 * install, not the start), then `npm start -- --quickstart` with a fake OpenAI key and a fake
 * upstream on loopback, and measures from the spawn of `npm start` to: each progress line, the
 * listening line, the first answered /healthz, and the first chat completion answered with the
 * quick start's invoke token. Goal: the first request is answered within 60 s. Exits 1 on a miss.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { startFakeProviders } from '../test/support/fake-providers';
import { freePort } from '../test/support/free-port';

const GOAL_MS = 60_000;
const ROOT = resolve(__dirname, '..');
const FAKE_KEY = 'sk-first-start-bench-0123456789';

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sr-first-start-'));
  const fakes = await startFakeProviders();
  fakes.setKey('openai', FAKE_KEY);
  let failed = false;
  try {
    const clone = join(dir, 'sovereign-router');
    execFileSync('git', ['clone', '--quiet', ROOT, clone]);
    const head = execFileSync('git', ['-C', clone, 'log', '-1', '--format=%h %s'], { encoding: 'utf8' }).trim();
    console.log(`fresh clone of ${head.slice(0, 100)}`);
    let t = performance.now();
    execFileSync('npm', ['ci', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: clone, stdio: 'ignore' });
    console.log(`npm ci: ${((performance.now() - t) / 1000).toFixed(1)} s (not part of the goal)`);

    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    t = performance.now();
    const since = () => performance.now() - t;
    const proc = spawn('npm', ['start', '--', '--port', String(port), '--quickstart', '--openai-base-url', fakes.openai.baseUrl], {
      cwd: clone,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, OPENAI_API_KEY: FAKE_KEY },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const events: [number, string][] = [];
    let text = '';
    const onData = (d: Buffer) => {
      for (const line of d.toString('utf8').split('\n')) if (line.trim() !== '' && !line.startsWith('{')) events.push([since(), line.trim()]);
      text += d.toString('utf8');
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    const exited = new Promise<void>((r) => proc.once('exit', () => r()));

    let healthzAt: number | undefined;
    let completionAt: number | undefined;
    const deadline = performance.now() + 5 * GOAL_MS;
    while (completionAt === undefined && performance.now() < deadline && proc.exitCode === null) {
      if (healthzAt === undefined) {
        const ok = await fetch(`${url}/healthz`).then((r) => r.status === 200).catch(() => false);
        if (ok) healthzAt = since();
      }
      const token = /invoke token \(for your applications\):\s+(sr_\S+)/.exec(text)?.[1];
      if (token) {
        const res = await fetch(`${url}/v1/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'first' }] }),
        });
        if (res.status !== 200) throw new Error(`first completion answered ${res.status}: ${await res.text()}`);
        completionAt = since();
      }
      if (completionAt === undefined) await new Promise((r) => setTimeout(r, 50));
    }
    if (proc.exitCode === null) process.kill(proc.pid!, 'SIGTERM');
    await exited;

    console.log('\noutput of npm start, with the time since its spawn:');
    for (const [ms, line] of events.slice(0, 40)) console.log(`  ${(ms / 1000).toFixed(2).padStart(7)} s  ${line.slice(0, 110)}`);
    const fmt = (ms: number | undefined) => (ms === undefined ? 'never' : `${(ms / 1000).toFixed(2)} s`);
    console.log(`\nfirst /healthz answered:          ${fmt(healthzAt)}`);
    console.log(`first completion (quick start):   ${fmt(completionAt)}   goal <= ${GOAL_MS / 1000} s`);
    failed = healthzAt === undefined || healthzAt > GOAL_MS || completionAt === undefined || completionAt > GOAL_MS;
    console.log(failed ? 'MISSED' : 'met');
  } finally {
    await fakes.close();
    rmSync(dir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
