/**
 * The pure half of governance: what a request is allowed, what it must reserve, and the decision
 * on the counters read with the request (no I/O). The DynamoDB adapter makes the same decision
 * exact under concurrency with conditional writes.
 */
import type { AdmissionRequest, CounterItems, CounterKey } from '../router/governance';
import { counterId } from '../router/governance';
import { DEFAULT_MAX_TOKENS } from '../router/upstream-exchange';
import type { Target } from '../routing/types';
import { ipInAnyCidr } from './cidr';
import { budgetExceeded, ipNotAllowed, maxTokensExceeded, modelNotAllowed, rpmExceeded, tpmExceeded } from './denials';
import { counterKeysFor, counterValue, RequestCounterKeys, reservationKey, tokenCounterId } from './keys';
import { effectiveLimits, EffectiveLimits, Scope } from './limits';
import { epochSeconds, monthKey, secondsToNextWindow, windowKey } from './periods';
import { PriceBook, PriceMatch, worstCaseMicros } from './prices';

export interface GovernanceSettings {
  readonly prices: PriceBook;
  /**
   * Prompt tokens reserved per unit of the router's estimate (request bytes / 4). The default 4
   * reserves one token per request byte: byte-level BPE tokenizers never produce more tokens than
   * bytes of text, so text prompts never cost more than reserved. Images referenced by URL are
   * the exception (their tokens do not show in the request size).
   */
  readonly promptReserveFactor: number;
  /** A reservation becomes reclaimable this long after its request's deadline. */
  readonly reservationMarginMs: number;
}

export const DEFAULT_PROMPT_RESERVE_FACTOR = 4;
/** Past the deadline, plus the 30 s by which the router function's timeout exceeds it, plus skew. */
export const DEFAULT_RESERVATION_MARGIN_MS = 120_000;

export function governanceSettings(o: Partial<GovernanceSettings> = {}): GovernanceSettings {
  const factor = o.promptReserveFactor ?? DEFAULT_PROMPT_RESERVE_FACTOR;
  const margin = o.reservationMarginMs ?? DEFAULT_RESERVATION_MARGIN_MS;
  if (!(factor > 0) || !Number.isFinite(factor)) throw new Error('promptReserveFactor must be a positive number');
  if (!(margin >= 0) || !Number.isFinite(margin)) throw new Error('reservationMarginMs must be a non-negative number');
  return { prices: o.prices ?? new PriceBook(), promptReserveFactor: factor, reservationMarginMs: margin };
}

export interface AdmissionPlan {
  readonly limits: EffectiveLimits;
  /** Counter id of the token (digest of its verifier). */
  readonly tokenKey: string;
  readonly month: string;
  readonly window: string;
  readonly keys: RequestCounterKeys & { readonly reservation: CounterKey };
  /** Worst-case cost over every target the request may be sent to (fallbacks included). */
  readonly reserveMicros: number;
  /** The price the reservation assumed (dearest target), for settling without a target. */
  readonly worstPrice: PriceMatch;
  /** Tokens counted against TPM until settle replaces them with the real count. */
  readonly tpmTokens: number;
  /** Epoch seconds after which a reservation left behind may be given back. */
  readonly reclaimAfter: number;
}

/** Output tokens a target may produce for this request, at worst. */
function worstOutput(req: AdmissionRequest, target: Target, price: PriceMatch, prices: PriceBook): number {
  if (req.maxTokens !== undefined) return req.maxTokens;
  // The router itself sets max_tokens for Anthropic targets when an OpenAI-format client did not.
  if (target.kind === 'anthropic') return DEFAULT_MAX_TOKENS;
  return price.entry.maxOutputTokens ?? prices.defaultMaxOutputTokens;
}

export function planAdmission(req: AdmissionRequest, settings: GovernanceSettings): AdmissionPlan {
  const { prices } = settings;
  const limits = effectiveLimits(req.tenant.policy, req.token.limits);
  const tokenKey = tokenCounterId(req.token.verifier);
  const inputTokens = Math.ceil(Math.max(0, req.promptTokenEstimate) * settings.promptReserveFactor);
  const candidates: readonly Target[] =
    req.targets.length > 0 ? req.targets : [{ provider: 'unknown', kind: 'openai-compatible', baseUrl: '', model: req.model, secret: 'default' }];
  let reserveMicros = -1;
  let worstPrice: PriceMatch = { entry: prices.fallback, source: 'fallback' };
  for (const target of candidates) {
    const price = prices.lookup(target);
    const micros = worstCaseMicros(price.entry, inputTokens, worstOutput(req, target, price, prices));
    if (micros > reserveMicros) {
      reserveMicros = micros;
      worstPrice = price;
    }
  }
  const month = monthKey(req.startedAt);
  const window = windowKey(req.startedAt);
  const counters = counterKeysFor(req.tenant.tenantId, tokenKey, month, window);
  return {
    limits,
    tokenKey,
    month,
    window,
    keys: {
      tenantSpend: counters.tenantSpend,
      tokenSpend: counters.tokenSpend,
      tenantRate: counters.tenantRate,
      tokenRate: counters.tokenRate,
      reservation: reservationKey(req.tenant.tenantId, req.requestId),
    },
    reserveMicros: Math.max(0, reserveMicros),
    worstPrice,
    tpmTokens: Math.max(0, Math.ceil(req.promptTokenEstimate)) + (req.maxTokens ?? 0),
    reclaimAfter: epochSeconds(req.deadlineAt + settings.reservationMarginMs),
  };
}

/** Allowlists and caps: the checks that need no counter. */
export function checkAllowlists(req: AdmissionRequest, limits: EffectiveLimits): void {
  for (const list of limits.ipAllowlists) {
    if (!ipInAnyCidr(req.sourceIp, list)) throw ipNotAllowed(req.sourceIp);
  }
  if (limits.allowedModels && !limits.allowedModels.has(req.model)) throw modelNotAllowed(req.model, limits.allowedModels);
  if (limits.maxTokens !== undefined && req.maxTokens !== undefined && req.maxTokens > limits.maxTokens) {
    throw maxTokensExceeded(req.maxTokens, limits.maxTokens);
  }
}

/**
 * The whole pre-flight decision, on the counters read with the request. Budgets are judged on
 * settled spend (which never goes down), so a denial here is certain; money held by in-flight
 * reservations is judged by the conditional write, which can first reclaim reservations left
 * behind by requests that died. Rates are judged on the current window's counts.
 */
export function checkAdmission(req: AdmissionRequest, counters: CounterItems, settings: GovernanceSettings): AdmissionPlan {
  const plan = planAdmission(req, settings);
  checkAllowlists(req, plan.limits);
  const scopes: readonly [Scope, CounterKey, CounterKey][] = [
    ['tenant', plan.keys.tenantSpend, plan.keys.tenantRate],
    ['token', plan.keys.tokenSpend, plan.keys.tokenRate],
  ];
  for (const [scope, spendKey] of scopes) {
    const budgetMicros = plan.limits[scope].budgetMicros;
    if (budgetMicros === undefined) continue;
    const spentMicros = counterValue(counters.get(counterId(spendKey)), 'spentMicros');
    if (spentMicros + plan.reserveMicros > budgetMicros) {
      throw budgetExceeded({ scope, period: plan.month, budgetMicros, spentMicros, requestMicros: plan.reserveMicros, nowMs: req.startedAt });
    }
  }
  const retryAfterSeconds = secondsToNextWindow(req.startedAt);
  for (const [scope, , rateKey] of scopes) {
    const { rpm, tpm } = plan.limits[scope];
    const item = counters.get(counterId(rateKey));
    if (rpm !== undefined && counterValue(item, 'requests') + 1 > rpm) throw rpmExceeded({ scope, limit: rpm, retryAfterSeconds });
    if (tpm !== undefined) {
      const used = counterValue(item, 'tokens');
      if (used + plan.tpmTokens > tpm) throw tpmExceeded({ scope, limit: tpm, used, requestTokens: plan.tpmTokens, retryAfterSeconds });
    }
  }
  return plan;
}
