/**
 * Governance through the router, end to end: moto (DynamoDB, KMS, Secrets Manager), fake
 * providers, the router app with DynamoGovernance, and the admin routes for limits and usage.
 * Denials are shown to cost neither a KMS call nor a provider call by counting both.
 */
import { costMicros, PriceBook } from '../../lambda/core/governance/prices';
import { tokenCounterId } from '../../lambda/core/governance/keys';
import { RouterHarness, startRouterHarness } from '../support/router-harness';
import { chat, counters, governanceRouter, serializeDynamoDb, START, TestClock, counterItem, verifierOf } from './governance-support';

let h: RouterHarness;
beforeAll(async () => {
  h = await startRouterHarness();
  serializeDynamoDb(h);
});
afterAll(() => h?.close());

const prices = new PriceBook();
const providerCalls = () => h.fakes.requests.length;

/** Runs `fn` and returns how many KMS and provider calls it caused. */
async function costOf<T>(fn: () => Promise<T>): Promise<{ result: T; kms: number; provider: number }> {
  const kms = h.kmsCalls.length;
  const provider = providerCalls();
  const result = await fn();
  return { result, kms: h.kmsCalls.length - kms, provider: providerCalls() - provider };
}

describe('settling real costs', () => {
  test('non-streaming: spend is the real cost from the provider usage; reservation and TPM estimate are corrected', async () => {
    const { invokeToken } = await h.tenant('settle-a', { policy: { monthlyBudgetUsd: 100 } });
    const g = governanceRouter(h);
    const res = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_tokens: 50 }) }, invokeToken);
    expect(res.status).toBe(200);
    const usage = { inputTokens: res.json.usage.prompt_tokens, outputTokens: res.json.usage.completion_tokens };
    const expected = costMicros(prices.lookup({ provider: 'openai', kind: 'openai', model: 'gpt-4o-mini' }).entry, usage);
    expect(expected).toBeGreaterThan(0);
    expect(res.record?.costUsd).toBe(expected / 1e6);
    const c = await counters(h, 'settle-a', await verifierOf(h, 'settle-a'), START);
    for (const spend of [c.tenantSpend, c.tokenSpend]) {
      expect(spend).toMatchObject({ spentMicros: expected, reservedMicros: 0, committedMicros: expected });
    }
    expect(c.tokenSpend?.tokenId).toBe(res.record?.tokenId);
    expect(c.reservations).toEqual([]);
    for (const rate of [c.tenantRate, c.tokenRate]) {
      expect(rate).toMatchObject({ requests: 1, tokens: usage.inputTokens + usage.outputTokens });
    }
  });

  test('streaming OpenAI client to an Anthropic model settles with the streamed usage', async () => {
    const { invokeToken } = await h.tenant('settle-b', { policy: { monthlyBudgetUsd: 100 } });
    const g = governanceRouter(h);
    const res = await g.call({ path: '/v1/chat/completions', body: chat('claude-sonnet-4-5', { stream: true, stream_options: { include_usage: true } }) }, invokeToken);
    expect(res.status).toBe(200);
    expect(res.record?.decision).toBe('ok');
    const usage = { inputTokens: res.record!.inputTokens!, outputTokens: res.record!.outputTokens! };
    expect(usage.inputTokens).toBeGreaterThan(0);
    const expected = costMicros(prices.lookup({ provider: 'anthropic', kind: 'anthropic', model: 'claude-sonnet-4-5' }).entry, usage);
    expect(res.record?.costUsd).toBe(expected / 1e6);
    const c = await counters(h, 'settle-b', await verifierOf(h, 'settle-b'), START);
    expect(c.tenantSpend).toMatchObject({ spentMicros: expected, reservedMicros: 0 });
    expect(c.tokenRate).toMatchObject({ requests: 1, tokens: usage.inputTokens + usage.outputTokens });
  });

  test('a request the provider rejects (400) releases its reservation: nothing spent, nothing held', async () => {
    const { invokeToken } = await h.tenant('release-a', { policy: { monthlyBudgetUsd: 100 } });
    const g = governanceRouter(h);
    h.fakes.script('openai', [{ kind: 'status', status: 400 }]);
    const res = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o') }, invokeToken);
    expect(res.status).toBe(400);
    const c = await counters(h, 'release-a', await verifierOf(h, 'release-a'), START);
    expect(c.tenantSpend).toMatchObject({ spentMicros: 0, reservedMicros: 0, committedMicros: 0 });
    expect(c.tokenSpend).toMatchObject({ spentMicros: 0, reservedMicros: 0, committedMicros: 0 });
    expect(c.tenantRate).toMatchObject({ requests: 1, tokens: 0 });
    expect(c.reservations).toEqual([]);
  });
});

describe('a tenant without budget, RPM or TPM', () => {
  test('makes no reservation; its spend and rate windows are still recorded after the answer', async () => {
    const { invokeToken } = await h.tenant('settle-open');
    const g = governanceRouter(h);
    const res = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_tokens: 50 }) }, invokeToken);
    expect(res.status).toBe(200);
    const usage = { inputTokens: res.json.usage.prompt_tokens, outputTokens: res.json.usage.completion_tokens };
    const expected = costMicros(prices.lookup({ provider: 'openai', kind: 'openai', model: 'gpt-4o-mini' }).entry, usage);
    expect(res.record?.costUsd).toBe(expected / 1e6);
    const c = await counters(h, 'settle-open', await verifierOf(h, 'settle-open'), START);
    for (const spend of [c.tenantSpend, c.tokenSpend]) expect(spend).toMatchObject({ spentMicros: expected, committedMicros: expected });
    expect(c.tenantSpend?.reservedMicros ?? 0).toBe(0);
    expect(c.reservations).toEqual([]);
    for (const rate of [c.tenantRate, c.tokenRate]) expect(rate).toMatchObject({ requests: 1, tokens: usage.inputTokens + usage.outputTokens });
  });
});

describe('budgets', () => {
  test('a tenant at its budget is denied before KMS and before any provider, in both error shapes, and the denial is counted', async () => {
    // $1000 per million tokens makes each call cost cents, so a $0.50 budget lasts a few calls.
    const g = governanceRouter(h, { governance: { prices: { models: { openai: { 'gpt-4o-mini': { input: 1000, output: 1000 } } } } } });
    const { invokeToken } = await h.tenant('budget-a', { policy: { monthlyBudgetUsd: 0.5 } });
    let denied: Awaited<ReturnType<typeof g.call>> | undefined;
    let ok = 0;
    for (let i = 0; i < 40 && !denied; i++) {
      const res = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_tokens: 20 }) }, invokeToken);
      if (res.status === 200) ok++;
      else denied = res;
    }
    expect(ok).toBeGreaterThan(1);
    expect(denied?.status).toBe(429);
    expect(denied?.json.error).toMatchObject({ type: 'rate_limit_error', code: 'budget_exceeded', limit_usd: 0.5, period: '2025-06', scope: 'tenant' });
    expect(denied?.json.error.message).toContain('$0.50');
    const spend = (await counters(h, 'budget-a', await verifierOf(h, 'budget-a'), START)).tenantSpend!;
    expect(spend.spentMicros).toBeLessThanOrEqual(500_000);
    expect(spend.reservedMicros).toBe(0);

    // From now on: denied on the counters read with the request, so no KMS and no provider call.
    const again = await costOf(() => g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_tokens: 20 }) }, invokeToken));
    expect(again.result.status).toBe(429);
    expect([again.kms, again.provider]).toEqual([0, 0]);
    expect(again.result.record?.decision).toBe('denied:budget_exceeded');
    const anthropicShape = await costOf(() =>
      g.call({ path: '/v1/messages', headers: { 'x-api-key': invokeToken }, body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 200, messages: [{ role: 'user', content: 'hello there' }] }) }),
    );
    expect(anthropicShape.result.status).toBe(429);
    expect(anthropicShape.result.json).toMatchObject({ type: 'error', error: { type: 'rate_limit_error', code: 'budget_exceeded', limit_usd: 0.5, period: '2025-06' } });
    expect([anthropicShape.kms, anthropicShape.provider]).toEqual([0, 0]);
    const metric = JSON.parse(h.metrics.at(-1)!);
    expect(metric).toMatchObject({ Decision: 'denied', reason: 'denied:budget_exceeded', tenantId: 'budget-a' });
  });

  test('a token budget set through the admin route binds that token only', async () => {
    const g = governanceRouter(h);
    const { adminToken, invokeToken } = await h.tenant('budget-b', { policy: { monthlyBudgetUsd: 100 } });
    const other = (await h.vault(adminToken, 'POST', '/vault/tokens', { role: 'invoke', label: 'second' })).json;
    const tokens = (await h.admin('GET', '/admin/tenants/budget-b/tokens')).json.data as { tokenId: string; label?: string }[];
    const first = tokens.find((t) => t.label === 'app')!;

    const put = await h.admin('PUT', `/admin/tenants/budget-b/tokens/${first.tokenId}/limits`, { limits: { monthlyBudgetUsd: 0.0001, rpm: 100 } });
    expect(put.status).toBe(200);
    expect(put.json).toEqual({ tokenId: first.tokenId, limits: { monthlyBudgetUsd: 0.0001, rpm: 100 }, effective: { monthlyBudgetUsd: 0.0001, rpm: 100 } });

    const denied = await costOf(() => g.call({ path: '/v1/chat/completions', body: chat('gpt-4o', { max_tokens: 100 }) }, invokeToken));
    expect(denied.result.status).toBe(429);
    expect(denied.result.json.error).toMatchObject({ code: 'budget_exceeded', scope: 'token', limit_usd: 0.0001 });
    expect(denied.result.json.error.message).toContain("this API key's budget");
    expect([denied.kms, denied.provider]).toEqual([0, 0]);
    expect((await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o', { max_tokens: 100 }) }, other.token)).status).toBe(200);

    const audit = (await h.admin('GET', '/admin/tenants/budget-b/audit')).json;
    expect(audit.verification).toMatchObject({ ok: true });
    expect(audit.data.at(-1)).toMatchObject({ type: 'token.limits_updated', details: { tokenId: first.tokenId, keys: 'monthlyBudgetUsd,rpm' } });

    // Clearing the limits lifts the token budget.
    const cleared = await h.admin('PUT', `/admin/tenants/budget-b/tokens/${first.tokenId}/limits`, { limits: {} });
    expect(cleared.json).toEqual({ tokenId: first.tokenId, limits: {}, effective: { monthlyBudgetUsd: 100 } });
    expect((await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o', { max_tokens: 100 }) }, invokeToken)).status).toBe(200);
  });

  test('a lost race between the read and the conditional write costs at most a KMS call, never a provider call', async () => {
    // Room for exactly one reservation: the first request holds it while its provider is slow.
    const g = governanceRouter(h);
    const body = chat('gpt-4o', { max_tokens: 1000 });
    const { invokeToken } = await h.tenant('budget-race', { policy: { monthlyBudgetUsd: 0.015 } });
    h.fakes.script('openai', [{ kind: 'delay', ms: 1_500 }]);
    const kms = h.kmsCalls.length;
    const provider = providerCalls();
    const slow = g.call({ path: '/v1/chat/completions', body }, invokeToken);
    // Wait until the slow request's reservation is written, then race it.
    for (let i = 0; i < 100 && (await counters(h, 'budget-race', await verifierOf(h, 'budget-race'), START)).reservations.length === 0; i++) {
      await new Promise((r) => setTimeout(r, 20));
    }
    const second = await g.call({ path: '/v1/chat/completions', body }, invokeToken);
    expect(second.status).toBe(429);
    expect(second.json.error.code).toBe('budget_exceeded');
    expect(second.json.error.message).toContain('reserved by requests in flight');
    expect((await slow).status).toBe(200);
    expect(providerCalls() - provider).toBe(1);
    expect(h.kmsCalls.length - kms).toBe(2);
  });

  test('usage table unavailable: a budgeted request fails closed (503) without reaching a provider', async () => {
    const { invokeToken } = await h.tenant('budget-down', { policy: { monthlyBudgetUsd: 10 } });
    const g = governanceRouter(h, { governance: { table: 'no-such-table' } });
    const res = await costOf(() => g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken));
    expect(res.result.status).toBe(503);
    expect(res.result.json.error.code).toBe('governance_unavailable');
    expect(res.provider).toBe(0);
    expect(g.logs.some((l) => l.includes('governance: reservation failed'))).toBe(true);
  });
});

describe('rate limits', () => {
  test('RPM per tenant: the request over the limit is denied before KMS; the next minute admits again', async () => {
    const clock = new TestClock(START);
    const g = governanceRouter(h, { clock });
    const { invokeToken } = await h.tenant('rpm-a', { policy: { rpm: 2 } });
    for (let i = 0; i < 2; i++) expect((await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken)).status).toBe(200);
    const denied = await costOf(() => g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken));
    expect(denied.result.status).toBe(429);
    expect(denied.result.json.error).toMatchObject({ code: 'rate_limit_exceeded', limit_rpm: 2, scope: 'tenant', retry_after_seconds: 55 });
    expect(denied.result.record?.decision).toBe('denied:rate_limit_exceeded');
    expect([denied.kms, denied.provider]).toEqual([0, 0]);
    clock.advance(60_000);
    expect((await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken)).status).toBe(200);
  });

  test('RPM per token (a token limit narrower than the tenant’s)', async () => {
    const g = governanceRouter(h, { clock: new TestClock(START + 3_600_000) });
    const { invokeToken } = await h.tenant('rpm-b', { policy: { rpm: 100 } });
    const tokenId = (await h.admin('GET', '/admin/tenants/rpm-b/tokens')).json.data.find((t: { label?: string }) => t.label === 'app').tokenId;
    expect((await h.admin('PUT', `/admin/tenants/rpm-b/tokens/${tokenId}/limits`, { limits: { rpm: 1 } })).status).toBe(200);
    expect((await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken)).status).toBe(200);
    const denied = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken);
    expect(denied.json.error).toMatchObject({ code: 'rate_limit_exceeded', limit_rpm: 1, scope: 'token' });
  });

  test('TPM: the estimate is reserved, settle replaces it with the real count, and a full window denies', async () => {
    const clock = new TestClock(START + 7_200_000);
    const g = governanceRouter(h, { clock });
    const { invokeToken } = await h.tenant('tpm-a', { policy: { tpm: 400 } });
    const body = chat('gpt-4o-mini', { max_tokens: 100 });
    const estimate = Math.ceil(Buffer.byteLength(body) / 4) + 100;
    const first = await g.call({ path: '/v1/chat/completions', body }, invokeToken);
    expect(first.status).toBe(200);
    const real = first.json.usage.total_tokens as number;
    expect(real).toBeLessThan(estimate);
    const c = await counters(h, 'tpm-a', await verifierOf(h, 'tpm-a'), clock.t);
    expect(c.tenantRate).toMatchObject({ requests: 1, tokens: real });
    let denied;
    for (let i = 0; i < 20 && !denied; i++) {
      const res = await costOf(() => g.call({ path: '/v1/chat/completions', body }, invokeToken));
      if (res.result.status !== 200) denied = res;
    }
    expect(denied?.result.status).toBe(429);
    expect(denied?.result.json.error).toMatchObject({ code: 'rate_limit_exceeded', limit_tpm: 400, scope: 'tenant' });
    expect([denied?.kms, denied?.provider]).toEqual([0, 0]);
    const after = await counters(h, 'tpm-a', await verifierOf(h, 'tpm-a'), clock.t);
    expect(after.tenantRate!.tokens).toBeLessThanOrEqual(400);
  });
});

describe('allowlists and caps (pure checks, before any KMS or provider call)', () => {
  let invoke: string;
  let g: ReturnType<typeof governanceRouter>;
  beforeAll(async () => {
    g = governanceRouter(h);
    ({ invokeToken: invoke } = await h.tenant('allow-a', {
      policy: { allowedModels: ['gpt-4o-mini', 'claude-haiku-4-5'], maxTokens: 500, ipAllowlist: ['203.0.113.0/24', '2001:db8:1::/48'] },
    }));
  });

  test.each([
    ['model', { path: '/v1/chat/completions', body: chat('gpt-4o') }, 403, 'model_not_allowed', { model: 'gpt-4o', allowed_models: 'claude-haiku-4-5, gpt-4o-mini' }],
    ['max_tokens', { path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_tokens: 501 }) }, 400, 'max_tokens_exceeded', { limit: 500, requested: 501 }],
    ['max_completion_tokens', { path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_completion_tokens: 9999 }) }, 400, 'max_tokens_exceeded', { limit: 500 }],
    ['IPv4 source', { path: '/v1/chat/completions', body: chat('gpt-4o-mini'), sourceIp: '198.51.100.9' }, 403, 'ip_not_allowed', { source_ip: '198.51.100.9' }],
    ['IPv6 source', { path: '/v1/chat/completions', body: chat('gpt-4o-mini'), sourceIp: '2001:db8:2::1' }, 403, 'ip_not_allowed', { source_ip: '2001:db8:2::1' }],
  ])('%s', async (_name, req, status, code, details) => {
    const res = await costOf(() => g.call(req, invoke));
    expect(res.result.status).toBe(status);
    expect(res.result.json.error).toMatchObject({ code, ...details });
    expect([res.kms, res.provider]).toEqual([0, 0]);
    expect(res.result.record?.decision).toBe(`denied:${code}`);
  });

  test('allowed requests pass, IPv6 and IPv4-mapped sources included', async () => {
    expect((await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini', { max_tokens: 500 }), sourceIp: '2001:db8:1:ffff::7' }, invoke)).status).toBe(200);
    expect((await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini'), sourceIp: '::ffff:203.0.113.200' }, invoke)).status).toBe(200);
  });

  test('Anthropic route: the denial is in the Anthropic shape', async () => {
    const res = await g.call({ path: '/v1/messages', headers: { 'x-api-key': invoke }, body: JSON.stringify({ model: 'claude-haiku-4-5', max_tokens: 600, messages: [{ role: 'user', content: 'x' }] }) });
    expect(res.status).toBe(400);
    expect(res.json).toEqual({ type: 'error', error: { type: 'invalid_request_error', code: 'max_tokens_exceeded', message: expect.stringContaining('500'), limit: 500, requested: 600 } });
  });
});

describe('admin routes', () => {
  afterEach(() => h.setAdminClock());
  test('usage: month spend and reservations per tenant and token against budgets, current window against RPM/TPM', async () => {
    // Router and admin read one clock: the window is the request's minute, not the read's. The
    // clock is pinned 1 ms before a minute boundary, and a minute and then a month are crossed below.
    const clock = new TestClock(Date.UTC(2025, 5, 30, 23, 58, 59, 999));
    const g = governanceRouter(h, { clock });
    h.setAdminClock({ now: () => new Date(clock.t) });
    const { invokeToken } = await h.tenant('usage-a', { policy: { monthlyBudgetUsd: 25, rpm: 100, tpm: 100_000 } });
    const tokens = (await h.admin('GET', '/admin/tenants/usage-a/tokens')).json.data as { tokenId: string; label?: string; role: string }[];
    const app = tokens.find((t) => t.label === 'app')!;
    await h.admin('PUT', `/admin/tenants/usage-a/tokens/${app.tokenId}/limits`, { limits: { monthlyBudgetUsd: 5, tpm: 5000 } });
    const res = await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken);
    expect(res.status).toBe(200);
    const cost = Math.round(res.record!.costUsd! * 1e6);
    const tokensUsed = res.json.usage.total_tokens;

    const usage = await h.admin('GET', '/admin/tenants/usage-a/usage');
    expect(usage.status).toBe(200);
    const period = new Date(clock.t).toISOString().slice(0, 7);
    expect(usage.json).toMatchObject({
      tenantId: 'usage-a',
      period,
      window: new Date(clock.t).toISOString().slice(0, 16) + 'Z',
      tenant: {
        spentMicros: cost,
        reservedMicros: 0,
        spentUsd: cost / 1e6,
        reservedUsd: 0,
        budgetUsd: 25,
        remainingUsd: (25_000_000 - cost) / 1e6,
        rpm: { used: 1, limit: 100 },
        tpm: { used: tokensUsed, limit: 100_000 },
      },
    });
    expect(usage.json.tokens).toHaveLength(2);
    expect(usage.json.tokens.find((t: { tokenId: string }) => t.tokenId === app.tokenId)).toEqual({
      tokenId: app.tokenId,
      role: 'invoke',
      label: 'app',
      spentMicros: cost,
      reservedMicros: 0,
      spentUsd: cost / 1e6,
      reservedUsd: 0,
      budgetUsd: 5,
      remainingUsd: (5_000_000 - cost) / 1e6,
      rpm: { used: 1, limit: null },
      tpm: { used: tokensUsed, limit: 5000 },
    });
    const adminTok = usage.json.tokens.find((t: { role: string }) => t.role === 'tenant-admin');
    expect(adminTok).toMatchObject({ spentMicros: 0, budgetUsd: null, remainingUsd: null, rpm: { used: 0, limit: null } });

    // A minute later the rate window is a new one; the month's spend stays.
    clock.advance(60_000);
    const later = (await h.admin('GET', '/admin/tenants/usage-a/usage')).json;
    expect([later.period, later.window]).toEqual(['2025-06', '2025-06-30T23:59Z']);
    expect(later.tenant.rpm).toEqual({ used: 0, limit: 100 });
    expect(later.tenant.spentMicros).toBe(cost);
    // A millisecond after that it is July: a new month, nothing spent in it yet.
    clock.advance(1);
    const july = (await h.admin('GET', '/admin/tenants/usage-a/usage')).json;
    expect([july.period, july.window]).toEqual(['2025-07', '2025-07-01T00:00Z']);
    expect(july.tenant).toMatchObject({ spentMicros: 0, reservedMicros: 0, budgetUsd: 25, rpm: { used: 0, limit: 100 } });

    const past = await h.admin('GET', '/admin/tenants/usage-a/usage/2020-01');
    expect(past.status).toBe(200);
    expect(past.json).toMatchObject({ period: '2020-01', tenant: { spentMicros: 0, budgetUsd: 25 } });
    expect(past.json.window).toBeUndefined();
    expect(past.json.tenant.rpm).toBeUndefined();
    expect((await h.admin('GET', '/admin/tenants/usage-a/usage/2020-13')).status).toBe(400);
    expect((await h.admin('GET', '/admin/tenants/no-such/usage')).status).toBe(404);
  });

  test('token limits: read with the effective limits; 404 for an unknown token; 400 for bad limits; 409 once offboarded', async () => {
    await h.tenant('limits-a', { policy: { maxTokens: 1000, allowedModels: ['a', 'b'], rpm: 60 } });
    const tokenId = (await h.admin('GET', '/admin/tenants/limits-a/tokens')).json.data.find((t: { label?: string }) => t.label === 'app').tokenId;
    expect((await h.admin('GET', `/admin/tenants/limits-a/tokens/${tokenId}/limits`)).json).toEqual({
      tokenId,
      limits: {},
      effective: { allowedModels: ['a', 'b'], maxTokens: 1000, rpm: 60 },
    });
    const put = await h.admin('PUT', `/admin/tenants/limits-a/tokens/${tokenId}/limits`, {
      limits: { maxTokens: 5000, allowedModels: ['b', 'c'], ipAllowlist: ['10.0.0.0/8', '2001:db8::/32'], tpm: 1000 },
    });
    expect(put.json).toEqual({
      tokenId,
      limits: { maxTokens: 5000, allowedModels: ['b', 'c'], ipAllowlist: ['10.0.0.0/8', '2001:db8::/32'], tpm: 1000 },
      effective: { allowedModels: ['b'], maxTokens: 1000, rpm: 60, tpm: 1000, ipAllowlists: [['10.0.0.0/8', '2001:db8::/32']] },
    });
    expect((await h.admin('GET', `/admin/tenants/limits-a/tokens/${tokenId}/limits`)).json.limits.tpm).toBe(1000);
    expect((await h.admin('GET', '/admin/tenants/limits-a/tokens')).json.data.find((t: { tokenId: string }) => t.tokenId === tokenId).limits.tpm).toBe(1000);

    expect((await h.admin('PUT', '/admin/tenants/limits-a/tokens/nope/limits', { limits: {} })).status).toBe(404);
    expect((await h.admin('GET', '/admin/tenants/limits-a/tokens/nope/limits')).status).toBe(404);
    const bad = await h.admin('PUT', `/admin/tenants/limits-a/tokens/${tokenId}/limits`, { limits: { ipAllowlist: ['300.1.1.1/8'] } });
    expect([bad.status, bad.json.error.code]).toEqual([400, 'invalid_request']);
    expect(bad.json.error.message).toContain('300.1.1.1/8');
    expect((await h.admin('PUT', `/admin/tenants/limits-a/tokens/${tokenId}/limits`, { limits: { rpm: 0 } })).status).toBe(400);
    expect((await h.admin('PUT', `/admin/tenants/limits-a/tokens/${tokenId}/limits`, { limits: { bogus: 1 } })).status).toBe(400);
    expect((await h.admin('PUT', '/admin/tenants/limits-a/policy', { policy: { ipAllowlist: ['1.2.3.4/40'] } })).status).toBe(400);
    expect((await h.admin('DELETE', '/admin/tenants/limits-a')).status).toBe(200);
    expect((await h.admin('PUT', `/admin/tenants/limits-a/tokens/${tokenId}/limits`, { limits: {} })).status).toBe(409);
  });

  test.each([
    ['keys-a', {}],
    ['keys-b', { monthlyBudgetUsd: 100 }],
  ] as const)('counter items carry the token id and never the verifier (%s: with and without a reservation)', async (tenantId, policy) => {
    const { invokeToken } = await h.tenant(tenantId, { policy });
    const g = governanceRouter(h);
    expect((await g.call({ path: '/v1/chat/completions', body: chat('gpt-4o-mini') }, invokeToken)).status).toBe(200);
    const verifier = await verifierOf(h, tenantId);
    const item = await counterItem(h, `SPEND#${tenantId}#${tokenCounterId(verifier)}`, '2025-06');
    expect(item?.tokenId).toBeDefined();
    expect(JSON.stringify(item)).not.toContain(verifier);
  });
});
