/**
 * The admin view of a tenant's usage: spend and reservations of the month for the tenant and
 * each token against their budgets, and the current one-minute window against RPM/TPM.
 */
import type { CounterItems, CounterKey } from '../router/governance';
import { counterId } from '../router/governance';
import type { Limits, TenantRecord, TokenRecord } from '../tenant-model';
import { counterValue, rateKey, spendKey, tokenCounterId } from './keys';
import { monthKey, windowKey } from './periods';
import { microsToUsd, usdToMicros } from './prices';

export interface RateUsage {
  readonly used: number;
  readonly limit: number | null;
}

export interface ScopeUsage {
  readonly spentUsd: number;
  readonly reservedUsd: number;
  readonly spentMicros: number;
  readonly reservedMicros: number;
  readonly budgetUsd: number | null;
  /** budget − spent − reserved, never below 0; null without a budget. */
  readonly remainingUsd: number | null;
  /** Current window only (absent for a past period). */
  readonly rpm?: RateUsage;
  readonly tpm?: RateUsage;
}

export interface UsageReport {
  readonly tenantId: string;
  readonly period: string;
  /** The current one-minute window (`YYYY-MM-DDTHH:MMZ`), when the period is the current month. */
  readonly window?: string;
  readonly asOf: string;
  readonly tenant: ScopeUsage;
  readonly tokens: readonly (ScopeUsage & { readonly tokenId: string; readonly role: string; readonly label?: string })[];
}

/** The counter items a report reads: spend of the period, and rate windows if it is current. */
export function usageReportKeys(tenantId: string, tokens: readonly Pick<TokenRecord, 'verifier'>[], now: number, period = monthKey(now)): CounterKey[] {
  const current = period === monthKey(now);
  const window = windowKey(now);
  const keys: CounterKey[] = [];
  for (const tokenKey of [undefined, ...tokens.map((t) => tokenCounterId(t.verifier))]) {
    keys.push(spendKey(tenantId, tokenKey, period));
    if (current) keys.push(rateKey(tenantId, tokenKey, window));
  }
  return keys;
}

function scopeUsage(items: CounterItems, spend: CounterKey, rate: CounterKey | undefined, limits: Limits | undefined): ScopeUsage {
  const s = items.get(counterId(spend));
  const spentMicros = counterValue(s, 'spentMicros');
  const reservedMicros = Math.max(0, counterValue(s, 'reservedMicros'));
  const budget = limits?.monthlyBudgetUsd;
  const out: ScopeUsage = {
    spentUsd: microsToUsd(spentMicros),
    reservedUsd: microsToUsd(reservedMicros),
    spentMicros,
    reservedMicros,
    budgetUsd: budget ?? null,
    remainingUsd: budget === undefined ? null : microsToUsd(Math.max(0, usdToMicros(budget) - spentMicros - reservedMicros)),
  };
  if (!rate) return out;
  const r = items.get(counterId(rate));
  return {
    ...out,
    rpm: { used: counterValue(r, 'requests'), limit: limits?.rpm ?? null },
    tpm: { used: Math.max(0, counterValue(r, 'tokens')), limit: limits?.tpm ?? null },
  };
}

export function usageReport(o: {
  tenant: TenantRecord;
  tokens: readonly TokenRecord[];
  items: CounterItems;
  now: number;
  period?: string;
}): UsageReport {
  const period = o.period ?? monthKey(o.now);
  const current = period === monthKey(o.now);
  const window = windowKey(o.now);
  const id = o.tenant.tenantId;
  const rateOf = (tokenKey: string | undefined) => (current ? rateKey(id, tokenKey, window) : undefined);
  return {
    tenantId: id,
    period,
    ...(current ? { window } : {}),
    asOf: new Date(o.now).toISOString(),
    tenant: scopeUsage(o.items, spendKey(id, undefined, period), rateOf(undefined), o.tenant.policy),
    tokens: [...o.tokens]
      .sort((a, b) => a.tokenId.localeCompare(b.tokenId))
      .map((t) => {
        const key = tokenCounterId(t.verifier);
        return {
          tokenId: t.tokenId,
          role: t.role,
          ...(t.label !== undefined ? { label: t.label } : {}),
          ...scopeUsage(o.items, spendKey(id, key, period), rateOf(key), t.limits),
        };
      }),
  };
}
