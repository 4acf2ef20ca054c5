/**
 * The router app with in-memory ports: a store, fake KMS (FakeDataKeys), a scripted provider
 * client, a recording governance. Covers orderings and error mappings that are awkward to reach
 * over real I/O: KMS and pepper failures, tampered secrets, governance denials before KMS,
 * reservation in parallel with Decrypt and released on failure, usage-record write failures.
 */
import { sealSecret, type SealedSecret } from '../../../lambda/core/envelope';
import type { HttpRequest } from '../../../lambda/core/http';
import { jsonLogger } from '../../../lambda/core/logger';
import { ApiError } from '../../../lambda/core/http';
import type { Admission, AdmissionRequest, Governance } from '../../../lambda/core/router/governance';
import type { ProviderClient, ProviderRequest, ProviderResponse } from '../../../lambda/core/router/provider-port';
import { MemorySink } from '../../../lambda/core/router/response-sink';
import { createRouterApp, type RouterDeps } from '../../../lambda/core/router/router-app';
import { secretKeyOf, type RawItem, type RouterStore } from '../../../lambda/core/router/router-store';
import type { UsageRecord } from '../../../lambda/core/router/usage-record';
import { CircuitBreaker } from '../../../lambda/core/routing/circuit-breaker';
import type { TenantPolicy, TenantRecord, TokenRecord } from '../../../lambda/core/tenant-model';
import { computeVerifier, generateToken } from '../../../lambda/core/token';
import { FakeDataKeys } from '../core/fake-data-keys';
import { waitUntil } from '../../support/wait';

const REGION = 'eu-central-1';
const PEPPER = Buffer.alloc(32, 7);
const PROVIDERS = {
  openai: { kind: 'openai', baseUrl: 'https://api.openai.example' },
  anthropic: { kind: 'anthropic', baseUrl: 'https://api.anthropic.example' },
} as const;
const KEYS = { openai: 'sk-unit-openai-0123456789', anthropic: 'sk-ant-unit-0123456789' };

interface World {
  deps: RouterDeps;
  kms: FakeDataKeys;
  store: MemoryStore;
  sends: ProviderRequest[];
  logs: string[];
  metrics: string[];
  events: string[];
  token: string;
  call(body: unknown, opts?: { path?: string; headers?: Record<string, string> }): Promise<{ sink: MemorySink; record?: UsageRecord; json: any }>;
}

/** The unit tenant's erasure key (v2 rows need it). */
const ERASURE_KEY = Buffer.alloc(32, 0x2e);

class MemoryStore implements RouterStore {
  tokens = new Map<string, TokenRecord>();
  tenants = new Map<string, TenantRecord>();
  secrets = new Map<string, SealedSecret>();
  erasureKeys = new Map<string, { tenantId: string; key: string; createdAt: string }>();
  usage: UsageRecord[] = [];
  reads: string[] = [];
  failUsage = false;
  constructor(private readonly events: string[]) {}
  async loadRequestContext(verifier: string, tenantId: string, providers: readonly string[]) {
    this.reads.push('batch');
    this.events.push('read');
    const secrets = new Map<string, RawItem>();
    for (const p of providers) {
      const s = this.secrets.get(`${tenantId}|${secretKeyOf(p, 'default')}`);
      if (s) secrets.set(secretKeyOf(p, 'default'), s as unknown as RawItem);
    }
    const raw = (x: unknown) => x as RawItem | undefined;
    const erasureKey = raw(this.erasureKeys.get(tenantId));
    return { token: raw(this.tokens.get(verifier)), tenant: raw(this.tenants.get(tenantId)), secrets, counters: new Map(), ...(erasureKey ? { erasureKey } : {}) };
  }
  async moveTokenVerifier(): Promise<boolean> {
    return false;
  }
  async getSecret(tenantId: string, provider: string, name: string) {
    this.reads.push(`get ${provider}#${name}`);
    return this.secrets.get(`${tenantId}|${secretKeyOf(provider, name)}`) as unknown as RawItem | undefined;
  }
  /** Stores a row and records its version on the tenant META, as the vault's transaction does. */
  putSecret(sealed: SealedSecret) {
    this.secrets.set(`${sealed.tenant}|${secretKeyOf(sealed.provider, sealed.secret)}`, sealed);
    const t = this.tenants.get(sealed.tenant)!;
    this.tenants.set(sealed.tenant, { ...t, secretVersions: { ...t.secretVersions, [secretKeyOf(sealed.provider, sealed.secret)]: { version: sealed.version } } });
  }
  /** Removes every row and META entry of the tenant's secrets. */
  clearSecrets(tenantId: string) {
    this.secrets.clear();
    const t = this.tenants.get(tenantId)!;
    this.tenants.set(tenantId, { ...t, secretVersions: {} });
  }
  async putUsage(record: UsageRecord) {
    if (this.failUsage) throw new Error('ProvisionedThroughputExceeded');
    this.usage.push(record);
  }
}

function okResponse(body: unknown): ProviderResponse {
  return { status: 200, headers: new Headers({ 'content-type': 'application/json' }), body: new Response(JSON.stringify(body)).body };
}
const OA_OK = { id: 'c', object: 'chat.completion', created: 1, model: 'gpt-4o', choices: [{ index: 0, message: { role: 'assistant', content: 'yo' }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 1 } };

async function world(opts: { policy?: TenantPolicy; governance?: Governance; providers?: ProviderClient; role?: 'invoke' | 'tenant-admin' } = {}): Promise<World> {
  const events: string[] = [];
  const kms = new FakeDataKeys({ region: REGION });
  const store = new MemoryStore(events);
  const tenantId = 'unit-co';
  const token = generateToken('euc1', tenantId);
  const verifier = computeVerifier(PEPPER, token).toString('hex');
  const now = new Date().toISOString();
  store.tenants.set(tenantId, { tenantId, region: REGION, mode: 'managed', status: 'active', policy: opts.policy ?? {}, createdAt: now, updatedAt: now, auditSeq: 0, auditHead: '' });
  store.tokens.set(verifier, { verifier, tokenId: 'tk_unit', tenantId, role: opts.role ?? 'invoke', createdAt: now });
  store.erasureKeys.set(tenantId, { tenantId, key: ERASURE_KEY.toString('base64'), createdAt: now });
  for (const [provider, key] of Object.entries(KEYS)) {
    const sealed = await sealSecret({
      identity: { app: 'sovereign-router', region: REGION, tenant: tenantId, provider, secret: 'default', version: 1 },
      plaintext: Buffer.from(key),
      dataKeys: kms,
      fingerprintKey: Buffer.alloc(32, 5),
      erasureKey: ERASURE_KEY,
    });
    store.putSecret(sealed);
  }
  kms.issued.length = 0;
  kms.decryptCalls = 0;
  const sends: ProviderRequest[] = [];
  const logs: string[] = [];
  const metrics: string[] = [];
  const providers: ProviderClient = {
    async send(req) {
      sends.push(req);
      events.push(`send ${req.target.provider}`);
      return opts.providers ? opts.providers.send(req) : okResponse(OA_OK);
    },
  };
  const origDecrypt = kms.decryptDataKey.bind(kms);
  kms.decryptDataKey = async (...args) => {
    events.push('decrypt');
    return origDecrypt(...args);
  };
  const deps: RouterDeps = {
    config: { region: REGION, providers: PROVIDERS, maxRequestBytes: 64 * 1024, requestDeadlineMs: 5_000 },
    store,
    pepper: { getPepper: async () => Buffer.from(PEPPER), getPeppers: async () => ({ current: { version: 1, pepper: Buffer.from(PEPPER) }, issuing: 1 }) },
    dataKeys: kms,
    providers,
    governance: opts.governance,
    breaker: new CircuitBreaker(),
    log: jsonLogger('router', (l) => logs.push(l)),
    emitMetric: (l) => metrics.push(l),
    sleep: async () => undefined,
    random: () => 0.5,
  };
  const w: World = {
    deps,
    kms,
    store,
    sends,
    logs,
    metrics,
    events,
    token,
    async call(body, o = {}) {
      const app = createRouterApp(w.deps);
      const sink = new MemorySink();
      const req: HttpRequest = {
        method: 'POST',
        path: o.path ?? '/v1/chat/completions',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', ...o.headers },
        body: JSON.stringify(body),
      };
      const record = await app(req, sink);
      let json: any;
      try {
        json = JSON.parse(sink.body);
      } catch {
        json = sink.body;
      }
      return { sink, record, json };
    },
  };
  return w;
}

const chat = (model = 'gpt-4o', extra: Record<string, unknown> = {}) => ({ model, messages: [{ role: 'user', content: 'hi' }], ...extra });

describe('normal path', () => {
  // Core ordering with in-memory ports and no governance; the production I/O per request
  // (DynamoGovernance included) is counted in test/e2e/router-routes.test.ts 'per-request I/O'.
  test('ungoverned core path: one read, one Decrypt, then the provider with the decrypted key; keys zeroed; usage and metric written', async () => {
    const w = await world();
    const { sink, record, json } = await w.call(chat());
    expect(sink.status).toBe(200);
    expect(json.choices[0].message.content).toBe('yo');
    expect(w.events).toEqual(['read', 'decrypt', 'send openai']);
    expect(w.sends[0].apiKey).toBe(KEYS.openai);
    expect(w.sends[0].target).toMatchObject({ provider: 'openai', baseUrl: PROVIDERS.openai.baseUrl, model: 'gpt-4o' });
    expect(w.kms.issued).toHaveLength(1);
    expect(w.kms.allIssuedZeroed()).toBe(true);
    expect(w.store.usage).toEqual([record]);
    expect(record).toMatchObject({ tenantId: 'unit-co', tokenId: 'tk_unit', provider: 'openai', inputTokens: 3, outputTokens: 1, decision: 'ok' });
    expect(w.metrics).toHaveLength(1);
    expect(JSON.parse(w.metrics[0])).toMatchObject({ Decision: 'ok', Provider: 'openai', Requests: 1, InputTokens: 3, OutputTokens: 1, Fallbacks: 0 });
  });

  test('same format both ways: the provider JSON goes out byte for byte; a translated answer is serialized anew', async () => {
    const text = `{ "id": "c",  "object": "chat.completion", "created": 1, "model": "gpt-4o",\n  "choices": [{ "index": 0, "message": { "role": "assistant", "content": "yo \\u00e9" }, "finish_reason": "stop" }], "usage": { "prompt_tokens": 3, "completion_tokens": 1 } }`;
    const raw: ProviderClient = { send: async () => ({ status: 200, headers: new Headers({ 'content-type': 'application/json' }), body: new Response(text).body }) };
    const w = await world({ providers: raw });
    const same = await w.call(chat());
    expect(same.sink.status).toBe(200);
    expect(same.sink.body).toBe(text);
    expect(same.record).toMatchObject({ inputTokens: 3, outputTokens: 1 });
    // An Anthropic-format client of the same OpenAI answer gets the translation.
    const translated = await w.call({ model: 'gpt-4o', max_tokens: 10, messages: [{ role: 'user', content: 'hi' }] }, { path: '/v1/messages' });
    expect(translated.sink.status).toBe(200);
    expect(translated.json).toMatchObject({ type: 'message', content: [{ type: 'text', text: 'yo é' }] });
    expect(translated.sink.body).not.toBe(text);
  });

  test('the provider key is opened per attempt: a fallback decrypts the next secret', async () => {
    let n = 0;
    const w = await world({
      policy: { routes: { r: [{ provider: 'openai', model: 'gpt-4o' }, { provider: 'anthropic', model: 'claude-x' }] } },
      providers: {
        async send(req) {
          n++;
          if (req.target.provider === 'openai') return { status: 503, headers: new Headers(), body: null };
          return okResponse({ id: 'm', type: 'message', role: 'assistant', model: 'claude-x', content: [{ type: 'text', text: 'hey' }], stop_reason: 'end_turn', usage: { input_tokens: 1, output_tokens: 1 } });
        },
      },
    });
    const { sink, record } = await w.call(chat('r'));
    expect(sink.status).toBe(200);
    expect(n).toBe(3);
    expect(w.sends.map((s) => [s.target.provider, s.apiKey])).toEqual([
      ['openai', KEYS.openai],
      ['openai', KEYS.openai],
      ['anthropic', KEYS.anthropic],
    ]);
    expect(w.kms.decryptCalls).toBe(3);
    expect(w.kms.allIssuedZeroed()).toBe(true);
    expect(record?.fallbackChain.map((s) => s.outcome)).toEqual(['status', 'status', 'ok']);
    expect(JSON.parse(w.metrics[0]).Fallbacks).toBe(2);
  });

  test('a named secret on a route target is read with a second Get, only then', async () => {
    const w = await world({ policy: { routes: { r: [{ provider: 'openai', model: 'gpt-4o', secret: 'team-b' }, { provider: 'anthropic', model: 'claude-x' }] } } });
    const named = await sealSecret({
      identity: { app: 'sovereign-router', region: REGION, tenant: 'unit-co', provider: 'openai', secret: 'team-b', version: 1 },
      plaintext: Buffer.from('sk-team-b-0123456789'),
      dataKeys: w.kms,
      fingerprintKey: Buffer.alloc(32, 5),
      erasureKey: ERASURE_KEY,
    });
    w.store.putSecret(named);
    const { sink } = await w.call(chat('r'));
    expect(sink.status).toBe(200);
    expect(w.store.reads).toEqual(['batch', 'get openai#team-b']);
    expect(w.sends[0].apiKey).toBe('sk-team-b-0123456789');
    await w.call(chat('gpt-4o'));
    expect(w.store.reads).toEqual(['batch', 'get openai#team-b', 'batch']);
  });

  test('targets without a stored secret are skipped; none at all is a 400 naming the provider', async () => {
    const w = await world({ policy: { routes: { r: [{ provider: 'openai', model: 'gpt-4o', secret: 'missing' }, { provider: 'anthropic', model: 'claude-x' }] } } });
    w.deps = { ...w.deps, providers: { send: async (req) => (w.sends.push(req), okResponse({ id: 'm', type: 'message', role: 'assistant', model: 'c', content: [], stop_reason: 'end_turn', usage: {} })) } };
    expect((await w.call(chat('r'))).sink.status).toBe(200);
    expect(w.sends.map((s) => s.target.provider)).toEqual(['anthropic']);
    w.store.clearSecrets('unit-co');
    const none = await w.call(chat('gpt-4o'));
    expect(none.sink.status).toBe(400);
    expect(none.json.error).toMatchObject({ code: 'no_provider_secret' });
    expect(none.json.error.message).toContain('openai');
    expect(w.kms.decryptCalls).toBe(1);
  });
});

describe('failures of the ports', () => {
  test('KMS unavailable → 503 key_service_unavailable, no provider call', async () => {
    const w = await world();
    w.kms.decryptDataKey = async () => {
      const e = new Error('KMS Decrypt failed: unavailable');
      e.name = 'KeyServiceError';
      throw e;
    };
    const { sink, json, record } = await w.call(chat());
    expect(sink.status).toBe(503);
    expect(json.error.code).toBe('key_service_unavailable');
    expect(w.sends).toEqual([]);
    expect(record?.decision).toBe('failed:key_service_unavailable');
  });

  test('a tampered sealed secret → 500 secret_integrity_failure (not retryable), no provider call, no key material in the answer', async () => {
    const w = await world();
    const key = `unit-co|${secretKeyOf('openai', 'default')}`;
    const s = w.store.secrets.get(key)!;
    const ct = Buffer.from(s.ciphertext, 'base64');
    ct[0] ^= 1;
    w.store.secrets.set(key, { ...s, ciphertext: ct.toString('base64') });
    const { sink, json, record } = await w.call(chat());
    expect(sink.status).toBe(500);
    expect(json.error.code).toBe('secret_integrity_failure');
    expect(json.error.request_id).toBe(record!.requestId);
    expect(sink.headers['x-should-retry']).toBe('false');
    expect(w.sends).toEqual([]);
    expect(w.kms.allIssuedZeroed()).toBe(true);
  });

  test('a sealed row swapped from another provider does not open', async () => {
    const w = await world();
    const anth = w.store.secrets.get(`unit-co|${secretKeyOf('anthropic', 'default')}`)!;
    w.store.secrets.set(`unit-co|${secretKeyOf('openai', 'default')}`, anth);
    const { sink } = await w.call(chat());
    expect(sink.status).toBe(500);
    expect(w.sends).toEqual([]);
  });

  test('pepper unavailable → 503 before any read', async () => {
    const w = await world();
    w.deps = {
      ...w.deps,
      pepper: {
        getPepper: async () => {
          const e = new Error('x');
          e.name = 'PepperError';
          throw e;
        },
        getPeppers: async () => {
          const e = new Error('x');
          e.name = 'PepperError';
          throw e;
        },
      },
    };
    const { sink, json } = await w.call(chat());
    expect(sink.status).toBe(503);
    expect(json.error.code).toBe('service_unavailable');
    expect(w.store.reads).toEqual([]);
  });

  test('a usage record that cannot be written is logged, the answer still goes out', async () => {
    const w = await world();
    w.store.failUsage = true;
    const { sink } = await w.call(chat());
    expect(sink.status).toBe(200);
    expect(w.logs.some((l) => JSON.parse(l).message === 'usage record not written')).toBe(true);
    expect(w.logs.join('\n')).not.toContain('ProvisionedThroughputExceeded');
  });

  test('an unexpected error is a 500 with the request id, logged by name only', async () => {
    const w = await world({
      providers: {
        async send() {
          throw new Error(`boom with ${KEYS.openai}`);
        },
      },
    });
    const { sink, json, record } = await w.call(chat());
    expect(sink.status).toBe(500);
    expect(json.error.code).toBe('internal_error');
    expect(json.error.message).toContain(record!.requestId);
    expect(sink.body).not.toContain(KEYS.openai);
    expect(w.logs.join('\n')).not.toContain(KEYS.openai);
    expect(w.kms.allIssuedZeroed()).toBe(true);
  });

  test('an offboarded tenant → 401, no KMS', async () => {
    const w = await world();
    const t = w.store.tenants.get('unit-co')!;
    w.store.tenants.set('unit-co', { ...t, status: 'offboarded' });
    const { sink } = await w.call(chat());
    expect(sink.status).toBe(401);
    expect(w.kms.decryptCalls).toBe(0);
  });

  test('a token record of another tenant under this verifier → 401', async () => {
    const w = await world();
    for (const [v, rec] of w.store.tokens) w.store.tokens.set(v, { ...rec, tenantId: 'someone-else' });
    expect((await w.call(chat())).sink.status).toBe(401);
    expect(w.kms.decryptCalls).toBe(0);
  });
});

describe('governance hooks', () => {
  function recordingGovernance(events: string[], opts: { deny?: boolean; reserveFails?: boolean; reserveUntil?: () => boolean } = {}) {
    const admissions: AdmissionRequest[] = [];
    const calls: string[] = [];
    const gov: Governance = {
      counterKeys: () => [{ pk: 'C#unit-co', sk: 'rpm' }],
      check(req) {
        events.push('check');
        admissions.push(req);
        if (opts.deny) throw new ApiError(429, 'rate_limited', 'Rate limit of 1 request per minute reached.', { limit: 1 });
      },
      async reserve(): Promise<Admission> {
        events.push('reserve start');
        if (opts.reserveUntil) await waitUntil(opts.reserveUntil, 'the condition the reservation waits for', 5_000);
        events.push('reserve end');
        if (opts.reserveFails) throw new ApiError(402, 'budget_exhausted', 'Monthly budget of 10 USD is spent.');
        return {
          settle: async (usage, target) => {
            calls.push(`settle ${usage?.inputTokens}/${usage?.outputTokens} ${target?.provider}`);
            return { costUsd: 0.001 };
          },
          release: async () => {
            calls.push('release');
          },
        };
      },
    };
    return { gov, admissions, calls };
  }

  test('check runs after the read and before KMS; a denial costs no Decrypt and names its limit', async () => {
    const events: string[] = [];
    const g = recordingGovernance(events, { deny: true });
    const w = await world({ governance: g.gov });
    w.events.length = 0;
    const { sink, json, record } = await w.call(chat('gpt-4o', { max_tokens: 12 }), { headers: {} });
    expect(sink.status).toBe(429);
    expect(json.error).toMatchObject({ code: 'rate_limited', limit: 1 });
    expect(w.kms.decryptCalls).toBe(0);
    expect(w.sends).toEqual([]);
    expect(record?.decision).toBe('denied:rate_limited');
    expect(g.admissions[0]).toMatchObject({ model: 'gpt-4o', maxTokens: 12, targets: [expect.objectContaining({ provider: 'openai' })] });
    expect(g.admissions[0].deadlineAt - g.admissions[0].startedAt).toBe(5_000);
  });

  test('reserve runs in parallel with Decrypt and completes before the provider; settle gets the real usage', async () => {
    // The reservation ends only once Decrypt has started (an order, not a 30 ms delay a loaded
    // machine can outlast): a router that waited for the reservation before Decrypt never gets there.
    const g = recordingGovernance([], { reserveUntil: () => w.events.includes('decrypt') });
    const w = await world({ governance: g.gov });
    const orig = g.gov.reserve.bind(g.gov);
    g.gov.reserve = async (r) => {
      w.events.push('reserve start');
      const a = await orig(r);
      w.events.push('reserve end');
      return a;
    };
    const { sink, record } = await w.call(chat());
    expect(sink.status).toBe(200);
    expect(w.events).toEqual(['read', 'reserve start', 'decrypt', 'reserve end', 'send openai']);
    expect(g.calls).toEqual(['settle 3/1 openai']);
    expect(record?.costUsd).toBe(0.001);
  });

  test('a failed reservation is the answer; no provider call', async () => {
    const g = recordingGovernance([], { reserveFails: true });
    const w = await world({ governance: g.gov });
    const { sink, json } = await w.call(chat());
    expect(sink.status).toBe(402);
    expect(json.error.code).toBe('budget_exhausted');
    expect(w.sends).toEqual([]);
    expect(w.kms.allIssuedZeroed()).toBe(true);
  });

  test('the reservation is released when every target fails or the provider rejects the request', async () => {
    const g = recordingGovernance([]);
    const w = await world({ governance: g.gov, providers: { send: async () => ({ status: 500, headers: new Headers(), body: null }) } });
    expect((await w.call(chat())).sink.status).toBe(502);
    expect(g.calls).toEqual(['release']);
    const g2 = recordingGovernance([]);
    const w2 = await world({ governance: g2.gov, providers: { send: async () => ({ status: 400, headers: new Headers(), body: new Response('{"error":{"message":"bad"}}').body }) } });
    expect((await w2.call(chat())).sink.status).toBe(400);
    expect(g2.calls).toEqual(['release']);
  });
});
