#!/usr/bin/env node
/**
 * `npm start`: the local gateway on 127.0.0.1, for development. By default it keeps its state in
 * an embedded SQLite database in .state/local (needs only Node.js); every answered change and
 * usage record is on disk before its response completes.
 * Options (flags or environment variables):
 *   --port N                 SR_PORT            default 8787
 *   --region R               SR_REGION          default eu-central-1
 *   --state-dir DIR          SR_STATE_DIR       keep state in DIR (default .state/local)
 *   --ephemeral              SR_EPHEMERAL=1     keep state in memory only (lost at exit)
 *   --sync-full              SR_SYNC_FULL=1     fsync every commit (survive power loss, not only a crash)
 *   --backend embedded|moto  SR_BACKEND         moto: the AWS adapters against moto (needs python3)
 *   --openai-base-url URL    SR_OPENAI_BASE_URL     default https://api.openai.com
 *   --anthropic-base-url URL SR_ANTHROPIC_BASE_URL  default https://api.anthropic.com
 *   --mistral-base-url URL   SR_MISTRAL_BASE_URL    default https://api.mistral.ai
 *   --quickstart [--tenant ID]  SR_QUICKSTART=1  once up, create a local tenant (default 'local'), seal
 *                            OPENAI_API_KEY / ANTHROPIC_API_KEY / MISTRAL_API_KEY from the environment
 *                            and print a ready invoke token (the keys are never printed or stored in clear)
 *   --provider ID=KIND:URL   (repeatable) another provider, e.g. vllm=openai-compatible:http://127.0.0.1:8000
 *                            Azure OpenAI: az=azure-openai:https://RES.openai.azure.com, or with an
 *                            api-version: az=azure-openai@2025-04-01-preview:https://RES.openai.azure.com
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { providerEndpointProblems } from '../lib/config/provider-endpoint';
import { isSupportedRegion, REGION_CODES } from '../lambda/core/regions';
import { BackendKind, LocalProvider, startLocalGateway } from './gateway';
import { installLifecycle } from './lifecycle';
import { stdoutLog } from './log-batch';
import { startProgress } from './progress';
import { quickstartAfterStart } from './quickstart';

function fail(message: string): never {
  console.error(`sovereign-router local gateway: ${message}`);
  process.exit(2);
}

function options() {
  let parsed;
  try {
    parsed = parseArgs({
      options: {
        port: { type: 'string' },
        region: { type: 'string' },
        persist: { type: 'boolean' },
        'state-dir': { type: 'string' },
        ephemeral: { type: 'boolean' },
        'sync-full': { type: 'boolean' },
        backend: { type: 'string' },
        'openai-base-url': { type: 'string' },
        'anthropic-base-url': { type: 'string' },
        'mistral-base-url': { type: 'string' },
        provider: { type: 'string', multiple: true },
        quickstart: { type: 'boolean' },
        tenant: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (err) {
    fail(`${(err as Error).message}. See --help.`);
  }
  if (parsed.help) {
    const doc = readFileSync(__filename, 'utf8').split('*/')[0];
    console.log(doc.replace(/^#!.*\n\/\*\*\n/, '').replace(/^ \* ?/gm, ''));
    process.exit(0);
  }
  const env = process.env;
  const port = Number(parsed.port ?? env.SR_PORT ?? 8787);
  if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be 0-65535, got '${parsed.port ?? env.SR_PORT}'`);
  const region = parsed.region ?? env.SR_REGION ?? 'eu-central-1';
  if (!isSupportedRegion(region)) fail(`unknown region '${region}'; supported: ${Object.keys(REGION_CODES).join(', ')}`);
  const stateDirArg = parsed['state-dir'] ?? env.SR_STATE_DIR;
  const ephemeral = parsed.ephemeral || env.SR_EPHEMERAL === '1';
  if (ephemeral && stateDirArg !== undefined) fail('--ephemeral and --state-dir exclude each other');
  // Durable by default; --persist is still accepted (it was needed before this was the default).
  const stateDir = ephemeral ? undefined : resolve(stateDirArg ?? '.state/local');
  const backend = (parsed.backend ?? env.SR_BACKEND ?? 'embedded') as BackendKind;
  if (backend !== 'embedded' && backend !== 'moto') fail(`--backend must be embedded or moto, got '${String(backend)}'`);
  const syncFull = parsed['sync-full'] || env.SR_SYNC_FULL === '1';
  const providers: Record<string, LocalProvider> = {
    openai: { kind: 'openai', baseUrl: parsed['openai-base-url'] ?? env.SR_OPENAI_BASE_URL ?? 'https://api.openai.com' },
    anthropic: { kind: 'anthropic', baseUrl: parsed['anthropic-base-url'] ?? env.SR_ANTHROPIC_BASE_URL ?? 'https://api.anthropic.com' },
    mistral: { kind: 'mistral', baseUrl: parsed['mistral-base-url'] ?? env.SR_MISTRAL_BASE_URL ?? 'https://api.mistral.ai' },
  };
  for (const spec of parsed.provider ?? []) {
    const m = /^([a-z][a-z0-9-]{1,31})=(openai|anthropic|mistral|openai-compatible|azure-openai|bedrock)(?:@([^:]+))?:(.+)$/.exec(spec);
    if (!m) fail(`--provider '${spec}' must look like id=kind:url, e.g. vllm=openai-compatible:http://127.0.0.1:8000`);
    providers[m[1]] = { kind: m[2] as LocalProvider['kind'], baseUrl: m[4], ...(m[3] !== undefined ? { apiVersion: m[3] } : {}) };
  }
  const problems = providerEndpointProblems(providers, 'providers');
  if (problems.length > 0) fail(problems.join('; '));
  const quickstart = parsed.quickstart === true || env.SR_QUICKSTART === '1';
  return { port, region, stateDir, providers, backend, syncFull, quickstart, tenant: parsed.tenant };
}

async function main(): Promise<void> {
  // Output that nobody reads any more (a pipe whose reader went away: EPIPE, emitted as an error
  // event) must end neither the gateway nor its graceful stop; the request log says so once on
  // stderr (log-batch.ts), the rest is notes to the operator.
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  const opts = options();
  const lifecycle = installLifecycle();
  if (opts.backend === 'moto') {
    console.error('Starting the local gateway on moto (KMS, DynamoDB and Secrets Manager emulated by moto)...');
    ensureMoto();
  } else {
    console.error('Starting the local gateway (embedded store, development only)...');
  }
  // One JSON line per request on stdout (ids, route, status, timings, cost; never a key, token,
  // prompt or completion); warnings and errors on stderr.
  const json = stdoutLog('local-gateway');
  const progress = startProgress();
  progress.stage(stateStage(opts));
  const gw = await startLocalGateway({ ...opts, log: { info: json.info, warn: (m) => console.error(m), error: (m, f) => console.error(m, f ?? '') } });
  progress.ready();
  const cli = 'npx sovereign-router';
  console.log(`
sovereign-router local gateway (${opts.region}) listening on ${gw.url}
backend: ${gw.backend === 'moto' ? 'moto (the AWS adapters)' : `embedded SQLite${opts.syncFull ? ', fsync on every commit' : ''}`}; local mode is for development, not production
${opts.stateDir ? `state: ${opts.stateDir}${gw.restoredItems ? ` (restored ${gw.restoredItems} items)` : ''}` : 'state: in memory only (--ephemeral)'}${gw.awsEndpoint ? `\nAWS emulator (moto): ${gw.awsEndpoint}` : ''}
providers: ${Object.entries(opts.providers).map(([id, p]) => `${id}=${p.baseUrl}`).join(', ')}

Next, in another terminal:
  export SR_ENDPOINT=${gw.url}
  ${cli} tenants create acme                      # prints a tenant-admin token once
  export SR_TOKEN=<that token>
  printf %s "$OPENAI_API_KEY" | ${cli} secrets put openai --api-key-stdin
  ${cli} tokens create --role invoke              # prints an invoke token for your app

Then point an SDK at it:
  new OpenAI({ baseURL: '${gw.url}/v1', apiKey: '<invoke token>' })
  new Anthropic({ baseURL: '${gw.url}', apiKey: '<invoke token>' })

Ctrl-C (or SIGTERM to npm or node) stops the gateway and everything it started.`);
  lifecycle.attach(() => gw.stop());
  if (opts.quickstart) progress.stage('quick start: creating a tenant, sealing the keys, issuing an invoke token');
  await quickstartAfterStart({
    url: gw.url,
    providers: Object.keys(opts.providers),
    run: opts.quickstart,
    tenant: opts.tenant,
    env: process.env,
    out: (t) => console.log(t),
    err: (t) => console.error(t),
  });
}

/** What the first stage does: a first start creates the state (database, root key, pepper). */
function stateStage(opts: { backend: string; stateDir?: string }): string {
  if (opts.backend === 'moto') return 'starting moto, then creating the tables, root key and pepper in it';
  if (!opts.stateDir) return 'creating an in-memory cell (root key, pepper)';
  const fresh = !existsSync(opts.stateDir) || readdirSync(opts.stateDir).length === 0;
  return fresh ? `creating the state in ${opts.stateDir} (database, root key, pepper)` : `opening the state in ${opts.stateDir}`;
}

/** The moto backend needs the project's Python venv; set it up the first time (1-2 minutes). */
function ensureMoto(): void {
  const root = resolve(__dirname, '..');
  if (existsSync(join(root, '.venv', 'bin', 'moto_server'))) return;
  console.error('Setting up moto in .venv (python3, first time only)...');
  const out = spawnSync('bash', [join(root, 'scripts', 'setup-python.sh')], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  if (out.status !== 0) fail('could not set up moto (scripts/setup-python.sh); the default embedded backend needs no python');
}

main().catch((err) => fail((err as Error).message));
