import type { LogFields } from '../logger';
import type { TenantRecord, TokenRecord } from '../tenant-model';
import type { ChainStep } from '../routing/types';

/** What the router knows about a request when it is over (ids, counts, timings; nothing else). */
export interface RequestOutcome {
  readonly requestId: string;
  readonly route: string;
  readonly model?: string;
  readonly provider?: string;
  readonly upstreamModel?: string;
  readonly stream?: boolean;
  readonly status: number;
  readonly decision: string;
  readonly latencyMs: number;
  readonly timeToFirstTokenMs?: number;
  readonly inputTokens?: number;
  readonly outputTokens?: number;
  readonly costUsd?: number;
  readonly fallbackChain: readonly ChainStep[];
}

/**
 * The one log line per request. Fields are picked one by one (never spread from a request,
 * header or body), so a token, key, prompt or completion cannot reach it. The model name is the
 * client's and is cut to a short identifier-like string.
 */
export function requestLogFields(o: RequestOutcome, principal?: { tenant: Pick<TenantRecord, 'tenantId'>; token: Pick<TokenRecord, 'tokenId'> }): LogFields {
  return {
    requestId: o.requestId,
    tenantId: principal?.tenant.tenantId,
    tokenId: principal?.token.tokenId,
    route: o.route,
    model: safeName(o.model),
    provider: o.provider,
    upstreamModel: o.upstreamModel,
    stream: o.stream,
    status: o.status,
    decision: o.decision,
    denialReason: o.decision.startsWith('denied:') ? o.decision.slice('denied:'.length) : undefined,
    latencyMs: o.latencyMs,
    timeToFirstTokenMs: o.timeToFirstTokenMs,
    inputTokens: o.inputTokens,
    outputTokens: o.outputTokens,
    costUsd: o.costUsd,
    fallbackChain: o.fallbackChain.length > 0 ? o.fallbackChain.map((s) => `${s.provider}/${s.model}:${s.status ?? s.outcome}`).join('>') : undefined,
  };
}

/** A client-chosen model name, as an identifier of at most 100 characters (else withheld). */
function safeName(name: string | undefined): string | undefined {
  if (name === undefined || name === '') return undefined;
  return /^[A-Za-z0-9._:/@+-]{1,100}$/.test(name) ? name : '[unprintable]';
}
