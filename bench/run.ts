/**
 * `npm run bench`: speed and memory goals, measured on loopback (moto + fake providers).
 * Prints each measurement against its goal and exits non-zero if a goal is missed.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { buildSync } from 'esbuild';
import { openSecret, sealSecret } from '../lambda/core/envelope';
import type { DataKeyService } from '../lambda/core/ports';
import { computeVerifier, generateToken, parseToken } from '../lambda/core/token';
import { startRouterHarness } from '../test/support/router-harness';
import { randomBytes, createCipheriv, createDecipheriv } from 'node:crypto';

interface Result {
  name: string;
  value: number;
  unit: string;
  goal: number;
  lowerIsBetter: boolean;
}
const results: Result[] = [];
const record = (name: string, value: number, unit: string, goal: number, lowerIsBetter = true) =>
  results.push({ name, value: Math.round(value * 100) / 100, unit, goal, lowerIsBetter });

function percentile(values: number[], p: number): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
}

/** A local stand-in for KMS: AES-GCM wrap with the context as AAD (no network, no moto). */
const memoryKms = (): DataKeyService => {
  const master = randomBytes(32);
  const aad = (c: Record<string, string>) => Buffer.from(JSON.stringify(Object.entries(c).sort()));
  return {
    async generateDataKey(context) {
      const plaintext = randomBytes(32);
      const iv = randomBytes(12);
      const c = createCipheriv('aes-256-gcm', master, iv).setAAD(aad(context));
      const wrapped = Buffer.concat([iv, c.update(plaintext), c.final(), c.getAuthTag()]);
      return { plaintext, wrapped, keyArn: 'arn:aws:kms:eu-central-1:111122223333:key/bench' };
    },
    async decryptDataKey(wrapped, context) {
      const d = createDecipheriv('aes-256-gcm', master, wrapped.subarray(0, 12)).setAAD(aad(context));
      d.setAuthTag(wrapped.subarray(wrapped.length - 16));
      return Buffer.concat([d.update(wrapped.subarray(12, wrapped.length - 16)), d.final()]);
    },
  };
};

async function microbenchmarks(): Promise<void> {
  const pepper = randomBytes(48);
  const token = generateToken('euc1', 'acme');
  const n = 20_000;
  let t = performance.now();
  for (let i = 0; i < n; i++) computeVerifier(pepper, parseToken(token, 'eu-central-1').token);
  record('token parse + CRC + HMAC verifier', ((performance.now() - t) * 1000) / n, 'µs/op', 50);

  const kms = memoryKms();
  const identity = { app: 'sovereign-router' as const, region: 'eu-central-1', tenant: 'acme', provider: 'openai', secret: 'default', version: 1 };
  const m = 2_000;
  t = performance.now();
  for (let i = 0; i < m; i++) {
    const sealed = await sealSecret({ identity, plaintext: Buffer.from('sk-bench-0123456789'), dataKeys: kms, fingerprintKey: Buffer.alloc(32, 1) });
    await openSecret({ record: sealed, expected: identity, dataKeys: kms, use: (k) => k.length });
  }
  record('seal + open (HKDF, AES-256-GCM, in-memory KMS)', ((performance.now() - t) * 1000) / m, 'µs/op', 1000);
}

async function routerOverhead(): Promise<void> {
  const h = await startRouterHarness();
  try {
    const { invokeToken } = await h.tenant('bench');
    const body = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'ping' }] });
    for (let i = 0; i < 20; i++) await h.call({ path: '/v1/chat/completions', body }, invokeToken); // warm up
    const latencies: number[] = [];
    const before = process.memoryUsage().rss;
    for (let i = 0; i < 300; i++) {
      const t = performance.now();
      const { sink } = await h.call({ path: '/v1/chat/completions', body }, invokeToken);
      if (sink.status !== 200) throw new Error(`bench request failed: ${sink.body}`);
      latencies.push(performance.now() - t);
    }
    const growth = (process.memoryUsage().rss - before) / 1024 / 1024;
    record('router request p50 (moto + fake OpenAI on loopback)', percentile(latencies, 50), 'ms', 60);
    record('router request p95', percentile(latencies, 95), 'ms', 150);
    record('RSS growth over 300 requests', growth, 'MiB', 64);

    const ttfts: number[] = [];
    const streamBody = JSON.stringify({ model: 'claude-sonnet-4-5', stream: true, messages: [{ role: 'user', content: 'stream me' }] });
    for (let i = 0; i < 50; i++) {
      const { record: r } = await h.call({ path: '/v1/chat/completions', body: streamBody }, invokeToken);
      if (r?.timeToFirstTokenMs !== undefined) ttfts.push(r.timeToFirstTokenMs);
    }
    record('time to first token p50 (OpenAI client → Anthropic, streamed)', percentile(ttfts, 50), 'ms', 80);
  } finally {
    await h.close();
  }
}

function bundlesAndInit(): void {
  const dir = mkdtempSync(join(tmpdir(), 'sr-bench-'));
  try {
    const env = {
      ...process.env,
      CELL_REGION: 'eu-central-1',
      ROOT_KEY_ARN: 'arn:aws:kms:eu-central-1:111122223333:key/bench',
      PEPPER_SECRET_ARN: 'arn:aws:secretsmanager:eu-central-1:111122223333:secret:bench',
      PROVIDER_ENDPOINTS: '{"openai":{"kind":"openai","baseUrl":"https://api.openai.com"}}',
      TENANTS_TABLE: 't',
      TOKENS_TABLE: 't',
      USAGE_TABLE: 't',
      AUDIT_TABLE: 't',
      AWS_REGION: 'eu-central-1',
      AWS_EC2_METADATA_DISABLED: 'true',
    };
    for (const fn of ['router', 'vault', 'admin']) {
      const outfile = join(dir, fn, 'index.js');
      buildSync({ entryPoints: [`lambda/handlers/${fn}.ts`], bundle: true, minify: true, platform: 'node', target: 'node20', format: 'cjs', external: ['@aws-sdk/*'], outfile });
      record(`${fn} bundle size (minified, AWS SDK external)`, statSync(outfile).size / 1024, 'KiB', fn === 'router' ? 400 : 300);
      // Init: load the bundle with the SDK resolved from node_modules, as the runtime would.
      const script = `globalThis.awslambda={streamifyResponse:(f)=>f,HttpResponseStream:{from:(s)=>s}};const t=process.hrtime.bigint();require(${JSON.stringify(outfile)});process.stdout.write(String(Number(process.hrtime.bigint()-t)/1e6))`;
      const ms = Number(execFileSync(process.execPath, ['-e', script], { env: { ...env, NODE_PATH: join(process.cwd(), 'node_modules') }, encoding: 'utf8' }));
      record(`${fn} init (require of the bundle)`, ms, 'ms', 400);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  await microbenchmarks();
  bundlesAndInit();
  await routerOverhead();
  let missed = 0;
  console.log('\nbenchmark                                                   value        goal');
  for (const r of results) {
    const ok = r.lowerIsBetter ? r.value <= r.goal : r.value >= r.goal;
    if (!ok) missed++;
    console.log(`${ok ? 'ok  ' : 'MISS'} ${r.name.padEnd(56)} ${String(r.value).padStart(9)} ${r.unit.padEnd(6)} ≤ ${r.goal}`);
  }
  console.log(`\n${results.length - missed} goals met, ${missed} missed`);
  process.exit(missed > 0 ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
