import { checkAdmission, governanceSettings, planAdmission } from '../../../lambda/core/governance/admission';
import { budgetExceeded, DENIAL_CODES } from '../../../lambda/core/governance/denials';
import { requestCounterKeys } from '../../../lambda/core/governance/keys';
import { PriceBook } from '../../../lambda/core/governance/prices';
import { ApiError, errorHeaders, errorResponse } from '../../../lambda/core/http';
import { AdmissionRequest, counterId, CounterKey } from '../../../lambda/core/router/governance';
import { DEFAULT_MAX_TOKENS } from '../../../lambda/core/router/upstream-exchange';
import type { Target } from '../../../lambda/core/routing/types';
import type { Limits, TenantPolicy } from '../../../lambda/core/tenant-model';

const NOW = Date.UTC(2025, 5, 12, 10, 31, 15);
const VERIFIER = '0f'.repeat(32);
const target = (provider: string, model: string, kind = provider): Target => ({ provider, kind: kind as Target['kind'], baseUrl: 'http://127.0.0.1:9', model, secret: 'default' });

function request(o: { policy?: TenantPolicy; limits?: Limits; model?: string; maxTokens?: number; prompt?: number; ip?: string; targets?: Target[] } = {}): AdmissionRequest {
  return {
    requestId: 'req-1',
    startedAt: NOW,
    deadlineAt: NOW + 300_000,
    tenant: { tenantId: 'acme', region: 'eu-central-1', mode: 'managed', status: 'active', policy: o.policy ?? {}, createdAt: '', updatedAt: '', auditSeq: 0, auditHead: '' },
    token: { verifier: VERIFIER, tokenId: 'tok1', tenantId: 'acme', role: 'invoke', createdAt: '', ...(o.limits ? { limits: o.limits } : {}) },
    model: o.model ?? 'gpt-4o',
    sourceIp: o.ip ?? '203.0.113.7',
    ...(o.maxTokens !== undefined ? { maxTokens: o.maxTokens } : {}),
    promptTokenEstimate: o.prompt ?? 100,
    targets: o.targets ?? [target('openai', o.model ?? 'gpt-4o')],
  };
}

const settings = governanceSettings();
const keys = requestCounterKeys('acme', VERIFIER, NOW);
const counters = (entries: [CounterKey, Record<string, unknown>][] = []) => new Map(entries.map(([k, v]) => [counterId(k), v]));

function denial(fn: () => unknown): ApiError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err;
    throw err;
  }
  throw new Error('expected a denial');
}

describe('planAdmission', () => {
  test('reserves the prompt at one token per byte plus max_tokens, at the dearest target', () => {
    const plan = planAdmission(request({ maxTokens: 1000, prompt: 100, targets: [target('openai', 'gpt-4o-mini'), target('openai', 'gpt-4o')] }), settings);
    // 400 input × $2.50/M + 1000 output × $10/M
    expect(plan.reserveMicros).toBe(1_000 + 10_000);
    expect(plan.worstPrice.source).toBe('openai:gpt-4o');
    expect(plan.tpmTokens).toBe(1100);
    expect(plan.month).toBe('2025-06');
    expect(plan.window).toBe('2025-06-12T10:31Z');
    expect(plan.keys.reservation).toEqual({ pk: 'RESV#acme', sk: 'req-1' });
    expect(plan.reclaimAfter).toBe(Math.ceil((NOW + 300_000 + 120_000) / 1000));
  });

  test('without max_tokens: the model maximum from the table, the router default for Anthropic, else the configured default', () => {
    expect(planAdmission(request({ prompt: 0 }), settings).reserveMicros).toBe(16_384 * 10);
    expect(planAdmission(request({ prompt: 0, targets: [target('anthropic', 'claude-sonnet-4-5')] }), settings).reserveMicros).toBe(DEFAULT_MAX_TOKENS * 15);
    const s = governanceSettings({ prices: new PriceBook({ fallback: { input: 1, output: 1 }, defaultMaxOutputTokens: 1000 }) });
    expect(planAdmission(request({ prompt: 0, targets: [target('self-hosted', 'llama', 'openai-compatible')] }), s).reserveMicros).toBe(1000);
    expect(planAdmission(request({ prompt: 0, maxTokens: 10 }), settings).tpmTokens).toBe(10);
  });

  test('embeddings reserve input only', () => {
    expect(planAdmission(request({ model: 'text-embedding-3-small', prompt: 1000 }), settings).reserveMicros).toBe(80);
  });

  test('the prompt factor is configurable', () => {
    const s = governanceSettings({ promptReserveFactor: 1 });
    expect(planAdmission(request({ maxTokens: 1, prompt: 1000 }), s).reserveMicros).toBe(2_500 + 10);
    expect(() => governanceSettings({ promptReserveFactor: 0 })).toThrow();
    expect(() => governanceSettings({ reservationMarginMs: -1 })).toThrow();
  });
});

describe('checkAdmission', () => {
  test('nothing set: admitted', () => {
    expect(() => checkAdmission(request(), counters(), settings)).not.toThrow();
  });

  test('IP allowlist (IPv4 and IPv6), tenant and token lists both apply', () => {
    const policy = { ipAllowlist: ['203.0.113.0/24', '2001:db8::/32'] };
    expect(() => checkAdmission(request({ policy }), counters(), settings)).not.toThrow();
    expect(() => checkAdmission(request({ policy, ip: '2001:db8::5' }), counters(), settings)).not.toThrow();
    const e = denial(() => checkAdmission(request({ policy, ip: '198.51.100.1' }), counters(), settings));
    expect([e.status, e.code, e.details]).toEqual([403, 'ip_not_allowed', { source_ip: '198.51.100.1' }]);
    expect(denial(() => checkAdmission(request({ policy, limits: { ipAllowlist: ['2001:db8::/32'] } }), counters(), settings)).code).toBe('ip_not_allowed');
    expect(denial(() => checkAdmission({ ...request({ policy }), sourceIp: undefined }, counters(), settings)).code).toBe('ip_not_allowed');
  });

  test('model allowlist', () => {
    const e = denial(() => checkAdmission(request({ policy: { allowedModels: ['gpt-4o-mini', 'fast'] } }), counters(), settings));
    expect([e.status, e.code]).toEqual([403, 'model_not_allowed']);
    expect(e.message).toContain("'gpt-4o'");
    expect(e.details).toEqual({ model: 'gpt-4o', allowed_models: 'fast, gpt-4o-mini' });
    expect(() => checkAdmission(request({ policy: { allowedModels: ['gpt-4o'] } }), counters(), settings)).not.toThrow();
    expect(denial(() => checkAdmission(request({ policy: { allowedModels: ['gpt-4o'] }, limits: { allowedModels: ['fast'] } }), counters(), settings)).code).toBe(
      'model_not_allowed',
    );
  });

  test('max_tokens cap (the smaller of tenant and token)', () => {
    const e = denial(() => checkAdmission(request({ policy: { maxTokens: 1000 }, limits: { maxTokens: 100 }, maxTokens: 101 }), counters(), settings));
    expect([e.status, e.code, e.details]).toEqual([400, 'max_tokens_exceeded', { limit: 100, requested: 101 }]);
    expect(() => checkAdmission(request({ policy: { maxTokens: 100 }, maxTokens: 100 }), counters(), settings)).not.toThrow();
  });

  test('budget: judged on settled spend plus this request’s worst case, per scope', () => {
    const r = request({ maxTokens: 1000, prompt: 100 }); // reserves 11_000 µ$
    const policy = { monthlyBudgetUsd: 1 };
    const at = (spent: number) => counters([[keys.tenantSpend, { spentMicros: spent, reservedMicros: 0 }]]);
    expect(() => checkAdmission({ ...r, tenant: { ...r.tenant, policy } }, at(989_000), settings)).not.toThrow();
    const e = denial(() => checkAdmission({ ...r, tenant: { ...r.tenant, policy } }, at(989_001), settings));
    expect([e.status, e.code]).toEqual([429, 'budget_exceeded']);
    // Settled spend fills the budget: the wait is the rest of the month, and retrying sooner is pointless.
    const toJuly = Math.ceil((Date.UTC(2025, 6, 1) - NOW) / 1000);
    expect(e.details).toEqual({ limit_usd: 1, period: '2025-06', scope: 'tenant', spent_usd: 0.989001, retry_after_seconds: toJuly });
    expect(errorHeaders(e)).toEqual({ 'x-should-retry': 'false', 'retry-after': String(toJuly) });
    expect(e.message).toContain('$1.00');
    expect(e.message).toContain('2025-06');
    // Reservations in flight are not judged here (they may have died): the conditional write does.
    const reservedOnly = counters([[keys.tenantSpend, { spentMicros: 0, reservedMicros: 5_000_000 }]]);
    expect(() => checkAdmission({ ...r, tenant: { ...r.tenant, policy } }, reservedOnly, settings)).not.toThrow();
    // The token's own budget, on its own counter.
    const t = denial(() => checkAdmission(request({ maxTokens: 1000, limits: { monthlyBudgetUsd: 0.01 } }), counters(), settings));
    expect(t.details).toMatchObject({ scope: 'token', limit_usd: 0.01 });
    expect(t.message).toContain('Set a lower max_tokens');
    const spentByToken = counters([[keys.tokenSpend, { spentMicros: 995_000 }]]);
    expect(denial(() => checkAdmission(request({ maxTokens: 1000, limits: { monthlyBudgetUsd: 1 } }), spentByToken, settings)).details.scope).toBe('token');
  });

  test('budget of zero denies anything that costs', () => {
    expect(denial(() => checkAdmission(request({ policy: { monthlyBudgetUsd: 0 } }), counters(), settings)).code).toBe('budget_exceeded');
  });

  test('RPM on the current window', () => {
    const policy = { rpm: 3 };
    expect(() => checkAdmission(request({ policy }), counters([[keys.tenantRate, { requests: 2 }]]), settings)).not.toThrow();
    const e = denial(() => checkAdmission(request({ policy }), counters([[keys.tenantRate, { requests: 3 }]]), settings));
    expect([e.status, e.code, e.details]).toEqual([429, 'rate_limit_exceeded', { limit_rpm: 3, scope: 'tenant', retry_after_seconds: 45 }]);
    const t = denial(() => checkAdmission(request({ limits: { rpm: 1 } }), counters([[keys.tokenRate, { requests: 1 }]]), settings));
    expect(t.details).toEqual({ limit_rpm: 1, scope: 'token', retry_after_seconds: 45 });
  });

  test('TPM on the current window, counting the prompt estimate and max_tokens', () => {
    const r = request({ policy: { tpm: 1000 }, prompt: 100, maxTokens: 400 });
    expect(() => checkAdmission(r, counters([[keys.tenantRate, { tokens: 500 }]]), settings)).not.toThrow();
    const e = denial(() => checkAdmission(r, counters([[keys.tenantRate, { tokens: 501 }]]), settings));
    expect([e.status, e.code, e.details]).toEqual([429, 'rate_limit_exceeded', { limit_tpm: 1000, scope: 'tenant', retry_after_seconds: 45 }]);
    const alone = denial(() => checkAdmission(request({ policy: { tpm: 100 }, prompt: 100, maxTokens: 400 }), counters(), settings));
    expect(alone.message).toContain('this request alone');
  });

  test('order: IP, model, max_tokens, budget, rate', () => {
    const everything = { ipAllowlist: ['10.0.0.0/8'], allowedModels: ['x'], maxTokens: 1, monthlyBudgetUsd: 0, rpm: 1 };
    const full = counters([[keys.tenantRate, { requests: 5 }]]);
    expect(denial(() => checkAdmission(request({ policy: everything, maxTokens: 5 }), full, settings)).code).toBe('ip_not_allowed');
    expect(denial(() => checkAdmission(request({ policy: { ...everything, ipAllowlist: undefined }, maxTokens: 5 }), full, settings)).code).toBe('model_not_allowed');
    expect(denial(() => checkAdmission(request({ policy: { ...everything, ipAllowlist: undefined, allowedModels: undefined }, maxTokens: 5 }), full, settings)).code).toBe(
      'max_tokens_exceeded',
    );
    expect(denial(() => checkAdmission(request({ policy: { monthlyBudgetUsd: 0, rpm: 1 } }), full, settings)).code).toBe('budget_exceeded');
  });

  test('denials render in the OpenAI and the Anthropic error shapes with their details', () => {
    const e = denial(() => checkAdmission(request({ policy: { rpm: 1 } }), counters([[keys.tenantRate, { requests: 1 }]]), settings));
    expect(JSON.parse(errorResponse(e, 'openai').body)).toEqual({
      error: { message: e.message, type: 'rate_limit_error', code: 'rate_limit_exceeded', limit_rpm: 1, scope: 'tenant', retry_after_seconds: 45 },
    });
    expect(JSON.parse(errorResponse(e, 'anthropic').body)).toEqual({
      type: 'error',
      error: { type: 'rate_limit_error', message: e.message, code: 'rate_limit_exceeded', limit_rpm: 1, scope: 'tenant', retry_after_seconds: 45 },
    });
    expect(DENIAL_CODES).toContain(e.code);
  });

  test('malformed counters count as zero', () => {
    expect(() => checkAdmission(request({ policy: { rpm: 1 } }), counters([[keys.tenantRate, { requests: 'x' }]]), settings)).not.toThrow();
  });
});

describe('budget denial: the client is told when waiting helps', () => {
  const base = { scope: 'tenant' as const, period: '2025-06', budgetMicros: 1_000_000, requestMicros: 20_000, nowMs: Date.UTC(2025, 5, 30, 23, 59, 30) };

  it('settled spend fills it: Retry-After is the end of the month and the SDK must not retry', () => {
    const e = budgetExceeded({ ...base, spentMicros: 990_000 });
    expect(errorHeaders(e)).toEqual({ 'retry-after': '30', 'x-should-retry': 'false' });
  });

  it('reservations in flight fill it: the wait is unknown, so no Retry-After and a retry may succeed', () => {
    const e = budgetExceeded({ ...base, spentMicros: 0, reservedMicros: 990_000 });
    expect(errorHeaders(e)).toEqual({});
    expect(e.details.retry_after_seconds).toBeUndefined();
  });

  it('the request alone exceeds the budget: no wait helps, none is promised', () => {
    const e = budgetExceeded({ ...base, requestMicros: 2_000_000 });
    expect(errorHeaders(e)).toEqual({ 'x-should-retry': 'false' });
  });
});
