/**
 * Every governance denial: a specific code, an honest status, a message that names the reason and
 * the limit, and the same facts as details in the OpenAI/Anthropic error object. The router
 * records `denied:<code>` on the usage record and the metric line.
 */
import { ApiError } from '../http';
import type { Scope } from './limits';
import { monthEndMs } from './periods';
import { formatUsd, microsToUsd } from './prices';

export const DENIAL_CODES = ['budget_exceeded', 'rate_limit_exceeded', 'model_not_allowed', 'max_tokens_exceeded', 'ip_not_allowed'] as const;
export type DenialCode = (typeof DENIAL_CODES)[number];

const whose = (scope: Scope) => (scope === 'tenant' ? "the tenant's" : "this API key's");

export function budgetExceeded(o: {
  scope: Scope;
  period: string;
  budgetMicros: number;
  /** Settled spend of the period, when known. */
  spentMicros?: number;
  /** In-flight reservations, when they are what fills the budget. */
  reservedMicros?: number;
  requestMicros: number;
  /** Now (epoch ms): lets the denial say when the budget period ends. */
  nowMs: number;
}): ApiError {
  const spent = o.spentMicros === undefined ? '' : `, ${formatUsd(o.spentMicros)} is spent`;
  const inFlight = o.reservedMicros ? ` and ${formatUsd(o.reservedMicros)} reserved by requests in flight` : '';
  const hint = o.requestMicros > o.budgetMicros ? ' Set a lower max_tokens or send a shorter prompt.' : '';
  return new ApiError(
    429,
    'budget_exceeded',
    `Monthly budget exceeded: ${whose(o.scope)} budget for ${o.period} is ${formatUsd(o.budgetMicros)}${spent}${inFlight}, ` +
      `and this request may cost up to ${formatUsd(o.requestMicros)}.${hint}`,
    {
      limit_usd: microsToUsd(o.budgetMicros),
      period: o.period,
      scope: o.scope,
      ...(o.spentMicros !== undefined ? { spent_usd: microsToUsd(o.spentMicros) } : {}),
      ...budgetWait(o),
    },
    // Retrying within seconds cannot help unless requests in flight give their reservations back.
    o.reservedMicros ? {} : { 'x-should-retry': 'false' },
  );
}

/**
 * The wait is known only when settled spend (not in-flight reservations) fills the budget and the
 * request would fit an empty one: then it is the end of the budget period.
 */
function budgetWait(o: { period: string; budgetMicros: number; reservedMicros?: number; requestMicros: number; nowMs: number }): Record<string, number> {
  if (o.reservedMicros || o.requestMicros > o.budgetMicros) return {};
  return { retry_after_seconds: Math.max(1, Math.ceil((monthEndMs(o.period) - o.nowMs) / 1000)) };
}

export function rpmExceeded(o: { scope: Scope; limit: number; retryAfterSeconds: number }): ApiError {
  return new ApiError(
    429,
    'rate_limit_exceeded',
    `Rate limit exceeded: ${whose(o.scope)} limit is ${o.limit} requests per minute; retry in ${o.retryAfterSeconds} s.`,
    { limit_rpm: o.limit, scope: o.scope, retry_after_seconds: o.retryAfterSeconds },
  );
}

export function tpmExceeded(o: { scope: Scope; limit: number; used: number; requestTokens: number; retryAfterSeconds: number }): ApiError {
  const message =
    o.requestTokens > o.limit
      ? `Rate limit exceeded: this request alone (about ${o.requestTokens} tokens with its max_tokens) is more than ${whose(o.scope)} limit of ` +
        `${o.limit} tokens per minute; send a shorter prompt or a lower max_tokens.`
      : `Rate limit exceeded: ${whose(o.scope)} limit is ${o.limit} tokens per minute, ${o.used} are used in this minute and this request ` +
        `needs about ${o.requestTokens}; retry in ${o.retryAfterSeconds} s.`;
  // A request larger than the whole limit never passes: no wait to announce.
  const wait: Record<string, number> = o.requestTokens > o.limit ? {} : { retry_after_seconds: o.retryAfterSeconds };
  return new ApiError(429, 'rate_limit_exceeded', message, { limit_tpm: o.limit, scope: o.scope, ...wait });
}

export function modelNotAllowed(model: string, allowed: ReadonlySet<string>): ApiError {
  const list = [...allowed].sort();
  const shown = list.length === 0 ? 'none' : list.slice(0, 20).join(', ') + (list.length > 20 ? `, … (${list.length} in all)` : '');
  return new ApiError(403, 'model_not_allowed', `The model '${model}' is not allowed for this API key; allowed models: ${shown}.`, {
    model,
    allowed_models: shown,
  });
}

export function maxTokensExceeded(requested: number, limit: number): ApiError {
  return new ApiError(400, 'max_tokens_exceeded', `max_tokens ${requested} is above this API key's limit of ${limit}; send max_tokens <= ${limit}.`, {
    limit,
    requested,
  });
}

export function ipNotAllowed(sourceIp: string | undefined): ApiError {
  return new ApiError(
    403,
    'ip_not_allowed',
    sourceIp ? `Requests from ${sourceIp} are not allowed for this API key (IP allowlist).` : 'This API key has an IP allowlist and the source address is unknown.',
    sourceIp ? { source_ip: sourceIp } : {},
  );
}

/** Limits could not be checked (counters table unreachable): fail closed. */
export function governanceUnavailable(): ApiError {
  return new ApiError(503, 'governance_unavailable', 'Usage limits could not be checked; the request was not sent. Retry later.');
}
