/**
 * A complete cell for router tests: moto (KMS, DynamoDB, Secrets Manager), fake providers on
 * loopback, a tenant with stored provider keys and an invoke token, and the router app wired
 * with the production adapters. AWS SDK calls are counted per command.
 */
import { AttributeValue, ScanCommand, ScanCommandOutput } from '@aws-sdk/client-dynamodb';
import { ProviderHttpClient } from '../../lambda/adapters/provider-http';
import { FAKE_AWS_CREDENTIALS } from './fake-bedrock';
import { createAdminApp } from '../../lambda/core/admin-app';
import type { ProviderEndpointConfig } from '../../lambda/core/cell-config';
import type { HttpRequest } from '../../lambda/core/http';
import { jsonLogger } from '../../lambda/core/logger';
import type { Clock, DataKeyService, EncryptionContext, GeneratedDataKey } from '../../lambda/core/ports';
import { systemClock } from '../../lambda/core/ports';
import type { ProviderClient } from '../../lambda/core/router/provider-port';
import { SseParser, SseEvent } from '../../lambda/core/sse';
import { createRouterApp, RouterDeps } from '../../lambda/core/router/router-app';
import { MemorySink } from '../../lambda/core/router/response-sink';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import type { TenantPolicy } from '../../lambda/core/tenant-model';
import { createVaultApp } from '../../lambda/core/vault-app';
import { routerDeps } from '../../lambda/handlers/router-wiring';
import { recordCommands } from './aws-clients';
import { cellFixture, CellFixture } from './cell-fixture';
import { FakeProviders, startFakeProviders } from './fake-providers';
import { MotoServer, startMoto } from './moto';

export interface RouterHarness {
  readonly moto: MotoServer;
  readonly fakes: FakeProviders;
  readonly cell: CellFixture;
  readonly logs: string[];
  readonly metrics: string[];
  readonly kmsCalls: string[];
  readonly ddbCalls: string[];
  admin(method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  /** The clock the admin routes read (the system clock until set; `undefined` restores it). */
  setAdminClock(clock?: Clock): void;
  vault(token: string, method: string, path: string, body?: unknown): Promise<{ status: number; json: any }>;
  /** Creates a tenant with secrets for every fake provider and an invoke token. */
  tenant(
    id: string,
    opts?: { mode?: 'managed' | 'sovereign'; policy?: TenantPolicy; keys?: Partial<Record<string, string>> },
  ): Promise<{ adminToken: string; invokeToken: string }>;
  call(req: Partial<HttpRequest> & { path: string }, token?: string): Promise<{ sink: MemorySink; record?: UsageRecord; json: any }>;
  router: ReturnType<typeof createRouterApp>;
  makeRouter(overrides?: Partial<RouterDeps>): ReturnType<typeof createRouterApp>;
  close(): Promise<void>;
}

export const FAKE_PROVIDER_KEYS = {
  openai: 'sk-openai-fake-0123456789abcdef',
  anthropic: 'sk-ant-fake-0123456789abcdef',
  mistral: 'mistral-fake-0123456789abcdef',
};

export async function startRouterHarness(
  opts: {
    region?: string;
    requestDeadlineMs?: number;
    maxRequestBytes?: number;
    /** More providers for the cell, e.g. the fake Azure resource (their keys go in tenant()'s `keys`). */
    extraProviders?: (fakes: FakeProviders) => Record<string, ProviderEndpointConfig>;
  } = {},
): Promise<RouterHarness> {
  const region = opts.region ?? 'eu-central-1';
  const [moto, fakes] = await Promise.all([startMoto(), startFakeProviders()]);
  const providers = {
    openai: { kind: 'openai', baseUrl: fakes.openai.baseUrl },
    anthropic: { kind: 'anthropic', baseUrl: fakes.anthropic.baseUrl },
    mistral: { kind: 'mistral', baseUrl: fakes.mistral.baseUrl },
    'self-hosted': { kind: 'openai-compatible', baseUrl: fakes.mistral.baseUrl },
    ...opts.extraProviders?.(fakes),
  };
  const cell = await cellFixture(moto.endpoint, region, { providers, maxRequestBytes: opts.maxRequestBytes });
  const config = { ...cell.config, requestDeadlineMs: opts.requestDeadlineMs ?? cell.config.requestDeadlineMs };
  for (const [p, key] of Object.entries(FAKE_PROVIDER_KEYS)) fakes.setKey(p as 'openai', key);
  const kmsCalls = recordCommands(cell.clients.kms);
  const ddbCalls = recordCommands(cell.clients.ddb);
  const logs: string[] = [];
  const metrics: string[] = [];
  // A test that drives the router on a TestClock reads usage windows on the same clock: against the
  // system clock a minute boundary between the request and the read would move the window.
  let adminClock: Clock = systemClock;
  const adminApp = createAdminApp({ config, store: cell.store, pepper: cell.pepper, audit: cell.audit, clock: { now: () => adminClock.now() } });
  const vaultApp = createVaultApp({ config, store: cell.store, pepper: cell.pepper, dataKeys: cell.dataKeys, usage: cell.usage, audit: cell.audit });

  // The production wiring (lambda/handlers/router-wiring.ts, as the Lambda handler and the local
  // gateway compose it), governance included; tests override single dependencies.
  const makeRouter = (overrides: Partial<RouterDeps> = {}) =>
    createRouterApp({
      ...routerDeps({
        config,
        ddb: cell.clients.ddb,
        pepper: cell.pepper,
        dataKeys: cell.dataKeys,
        // Bedrock as deployed: the cell's region only; IAM targets signed with fake role credentials.
        providers: new ProviderHttpClient({ firstByteTimeoutMs: 2_000, bedrock: { region, credentials: async () => ({ ...FAKE_AWS_CREDENTIALS }) } }),
        log: jsonLogger('router', (l) => logs.push(l)),
        emitMetric: (l) => metrics.push(l),
      }),
      ...overrides,
    });
  const router = makeRouter();

  const parse = (body: string) => {
    try {
      return JSON.parse(body);
    } catch {
      return body;
    }
  };
  const admin: RouterHarness['admin'] = async (method, path, body) => {
    const res = await adminApp({ method, path, headers: { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body), iamCaller: 'arn:aws:iam::111122223333:role/Operator' });
    return { status: res.status, json: parse(res.body) };
  };
  const vault: RouterHarness['vault'] = async (token, method, path, body) => {
    const res = await vaultApp({ method, path, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
    return { status: res.status, json: parse(res.body) };
  };

  const harness: RouterHarness = {
    moto,
    fakes,
    cell,
    logs,
    metrics,
    kmsCalls,
    ddbCalls,
    admin,
    setAdminClock: (clock) => {
      adminClock = clock ?? systemClock;
    },
    vault,
    router,
    makeRouter,
    async tenant(id, o = {}) {
      const created = await admin('POST', '/admin/tenants', { tenantId: id, mode: o.mode ?? 'managed', policy: o.policy ?? {} });
      if (created.status !== 201) throw new Error(`tenant ${id}: ${JSON.stringify(created.json)}`);
      const adminToken = created.json.token as string;
      const keys = { ...FAKE_PROVIDER_KEYS, ...o.keys };
      for (const [provider, apiKey] of Object.entries(keys)) {
        const stored = await vault(adminToken, 'POST', '/vault/secrets', { provider, apiKey });
        if (stored.status !== 201) throw new Error(`secret ${provider}: ${JSON.stringify(stored.json)}`);
      }
      const stored = await vault(adminToken, 'POST', '/vault/secrets', { provider: 'self-hosted', apiKey: keys.mistral });
      if (stored.status !== 201) throw new Error(`secret self-hosted: ${JSON.stringify(stored.json)}`);
      const inv = await vault(adminToken, 'POST', '/vault/tokens', { role: 'invoke', label: 'app' });
      if (inv.status !== 201) throw new Error(`invoke token: ${JSON.stringify(inv.json)}`);
      return { adminToken, invokeToken: inv.json.token as string };
    },
    async call(req, token) {
      const sink = new MemorySink();
      const headers: Record<string, string> = { 'content-type': 'application/json', ...(req.headers as Record<string, string>) };
      if (token) headers.authorization = `Bearer ${token}`;
      const record = await router({ method: req.method ?? 'POST', path: req.path, headers, body: req.body, sourceIp: req.sourceIp ?? '203.0.113.7' }, sink);
      return { sink, record, json: parse(sink.body) };
    },
    async close() {
      await Promise.allSettled([moto.stop(), fakes.close()]);
    },
  };
  return harness;
}

// ---------------------------------------------------------------- additive helpers for router tests

/** The SSE events of a response body, in order (event name, raw data). */
export function parseSse(body: string): SseEvent[] {
  const parser = new SseParser();
  return [...parser.push(body), ...parser.end()];
}

/** Wraps a DataKeyService and keeps every plaintext data key it hands out, to check zero-filling. */
export class SpyDataKeys implements DataKeyService {
  readonly returned: Buffer[] = [];
  constructor(private readonly inner: DataKeyService) {}
  async generateDataKey(context: EncryptionContext): Promise<GeneratedDataKey> {
    const out = await this.inner.generateDataKey(context);
    this.returned.push(out.plaintext);
    return out;
  }
  async decryptDataKey(wrapped: Buffer, context: EncryptionContext, keyArn: string): Promise<Buffer> {
    const out = await this.inner.decryptDataKey(wrapped, context, keyArn);
    this.returned.push(out);
    return out;
  }
  /** True when every key handed out so far is all zero bytes. */
  allZero(): boolean {
    return this.returned.every((b) => b.every((x) => x === 0));
  }
}

/** A ProviderClient that records, for each call, the AWS commands sent before it and its target. */
export function spyProviders(h: Pick<RouterHarness, 'kmsCalls' | 'ddbCalls'>, inner: ProviderClient = new ProviderHttpClient({ firstByteTimeoutMs: 2_000 })) {
  const sends: { provider: string; model: string; kmsSoFar: number; ddbSoFar: number; apiKey: string }[] = [];
  const client: ProviderClient = {
    send(req) {
      sends.push({ provider: req.target.provider, model: req.target.model, kmsSoFar: h.kmsCalls.length, ddbSoFar: h.ddbCalls.length, apiKey: req.apiKey });
      return inner.send(req);
    },
  };
  return { client, sends };
}

/** Every item of the cell's four tables, rendered as text (binary attributes as base64 and hex). */
export async function dumpTables(h: Pick<RouterHarness, 'cell'>): Promise<string> {
  const out: string[] = [];
  for (const table of Object.values(h.cell.config.tables)) {
    let start: Record<string, AttributeValue> | undefined;
    do {
      const page: ScanCommandOutput = await h.cell.clients.ddb.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start }));
      for (const item of page.Items ?? []) {
        out.push(
          JSON.stringify(item, (_k, v: unknown) =>
            v instanceof Uint8Array ? { b64: Buffer.from(v).toString('base64'), hex: Buffer.from(v).toString('hex') } : v,
          ),
        );
      }
      start = page.LastEvaluatedKey;
    } while (start);
  }
  return out.join('\n');
}
