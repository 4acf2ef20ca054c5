/**
 * Counters-table keys of governance. Per-token items are keyed by a digest of the token's verifier,
 * because the router must name them before its one read, when it knows the tenant id and the
 * verifier but not yet the token id (which is random and lives in the token record).
 *
 * - `SPEND#<tenant>` / `SPEND#<tenant>#<tokenKey>`, sk `YYYY-MM`: spentMicros, reservedMicros,
 *   committedMicros (= spent + reserved, the one number a budget condition compares).
 * - `RATE#<tenant>` / `RATE#<tenant>#<tokenKey>`, sk `YYYY-MM-DDTHH:MMZ`: requests, tokens.
 * - `RESV#<tenant>`, sk `<requestId>`: one in-flight reservation.
 */
import { createHash } from 'node:crypto';
import type { CounterKey } from '../router/governance';
import { monthKey, windowKey } from './periods';

/**
 * Stable id of a token's counters: a domain-separated SHA-256 of its verifier, shortened. The
 * verifier itself never lands in the counters table (which more roles can read than the tokens table).
 */
export function tokenCounterId(verifier: string): string {
  // A request asks twice (its counter keys before the read, its admission plan after): the last answer is kept.
  if (lastCounterId !== undefined && verifier === lastCounterId.verifier) return lastCounterId.id;
  const id = 'k' + createHash('sha256').update(`sovereign-router/governance-counter/v1\0${verifier}`).digest('hex').slice(0, 32);
  lastCounterId = { verifier, id };
  return id;
}
/** None at first: a placeholder verifier ('' once) would answer its placeholder id, for '' the tenant's own key. */
let lastCounterId: { readonly verifier: string; readonly id: string } | undefined;

export const spendKey = (tenantId: string, tokenKey: string | undefined, month: string): CounterKey => ({
  pk: tokenKey ? `SPEND#${tenantId}#${tokenKey}` : `SPEND#${tenantId}`,
  sk: month,
});

export const rateKey = (tenantId: string, tokenKey: string | undefined, window: string): CounterKey => ({
  pk: tokenKey ? `RATE#${tenantId}#${tokenKey}` : `RATE#${tenantId}`,
  sk: window,
});

export const reservationPk = (tenantId: string) => `RESV#${tenantId}`;
export const reservationKey = (tenantId: string, requestId: string): CounterKey => ({ pk: reservationPk(tenantId), sk: requestId });

/** The four counters of one request, in this order: tenant spend, token spend, tenant rate, token rate. */
export interface RequestCounterKeys {
  readonly tenantSpend: CounterKey;
  readonly tokenSpend: CounterKey;
  readonly tenantRate: CounterKey;
  readonly tokenRate: CounterKey;
}

export function requestCounterKeys(tenantId: string, verifier: string, now: number): RequestCounterKeys {
  return counterKeysFor(tenantId, tokenCounterId(verifier), monthKey(now), windowKey(now));
}

/** requestCounterKeys from the token's counter id, month and window already at hand. */
export function counterKeysFor(tenantId: string, tokenKey: string, month: string, window: string): RequestCounterKeys {
  return {
    tenantSpend: spendKey(tenantId, undefined, month),
    tokenSpend: spendKey(tenantId, tokenKey, month),
    tenantRate: rateKey(tenantId, undefined, window),
    tokenRate: rateKey(tenantId, tokenKey, window),
  };
}

/** A number attribute of a counter item; 0 when absent or malformed. */
export function counterValue(item: Readonly<Record<string, unknown>> | undefined, name: string): number {
  const v = item?.[name];
  const n = typeof v === 'number' ? v : typeof v === 'string' ? Number(v) : typeof v === 'bigint' ? Number(v) : NaN;
  return Number.isFinite(n) ? n : 0;
}
