/**
 * Effective limits of a request: the tenant's policy narrowed by the token's own limits.
 *
 * - Allowlists and caps (models, max_tokens, IP ranges) combine so that the stricter wins: the
 *   model must be on both lists, the smaller cap applies, the source IP must match both lists.
 * - Budgets and rates are counted at two scopes, each against its own counter: the tenant's limit
 *   on everything the tenant spends, the token's limit on what that token spends. A token can
 *   never widen the tenant's limit, because the tenant counter includes the token's requests.
 */
import type { Limits, TenantPolicy } from '../tenant-model';
import { invalidCidrs } from './cidr';
import { usdToMicros } from './prices';

export type Scope = 'tenant' | 'token';

export interface ScopeLimits {
  readonly budgetMicros?: number;
  readonly budgetUsd?: number;
  readonly rpm?: number;
  readonly tpm?: number;
}

export interface EffectiveLimits {
  /** Models a request may name; undefined: any. */
  readonly allowedModels?: ReadonlySet<string>;
  readonly maxTokens?: number;
  /** Every list must contain the source IP (tenant list, token list). */
  readonly ipAllowlists: readonly (readonly string[])[];
  readonly tenant: ScopeLimits;
  readonly token: ScopeLimits;
}

function scope(l: Limits | undefined): ScopeLimits {
  return {
    ...(l?.monthlyBudgetUsd !== undefined ? { budgetUsd: l.monthlyBudgetUsd, budgetMicros: usdToMicros(l.monthlyBudgetUsd) } : {}),
    ...(l?.rpm !== undefined ? { rpm: l.rpm } : {}),
    ...(l?.tpm !== undefined ? { tpm: l.tpm } : {}),
  };
}

function intersect(a: readonly string[] | undefined, b: readonly string[] | undefined): ReadonlySet<string> | undefined {
  if (!a && !b) return undefined;
  if (!a) return new Set(b);
  if (!b) return new Set(a);
  const other = new Set(b);
  return new Set(a.filter((m) => other.has(m)));
}

function minDefined(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return Math.min(a, b);
}

export function effectiveLimits(policy: TenantPolicy | Limits, tokenLimits?: Limits): EffectiveLimits {
  const allowedModels = intersect(policy.allowedModels, tokenLimits?.allowedModels);
  const maxTokens = minDefined(policy.maxTokens, tokenLimits?.maxTokens);
  return {
    ...(allowedModels ? { allowedModels } : {}),
    ...(maxTokens !== undefined ? { maxTokens } : {}),
    ipAllowlists: [policy.ipAllowlist, tokenLimits?.ipAllowlist].filter((l): l is string[] => l !== undefined),
    tenant: scope(policy),
    token: scope(tokenLimits),
  };
}

/**
 * What a token may do in practice, as the admin API shows it: the stricter of each pair. Budgets
 * and rates shown here are the smaller of the two limits; both counters are enforced. Every IP
 * list in `ipAllowlists` must match.
 */
export function effectiveTokenView(policy: TenantPolicy, tokenLimits?: Limits): Record<string, unknown> {
  const e = effectiveLimits(policy, tokenLimits);
  const budget = minDefined(policy.monthlyBudgetUsd, tokenLimits?.monthlyBudgetUsd);
  const rpm = minDefined(policy.rpm, tokenLimits?.rpm);
  const tpm = minDefined(policy.tpm, tokenLimits?.tpm);
  return {
    ...(e.allowedModels ? { allowedModels: [...e.allowedModels].sort() } : {}),
    ...(e.maxTokens !== undefined ? { maxTokens: e.maxTokens } : {}),
    ...(budget !== undefined ? { monthlyBudgetUsd: budget } : {}),
    ...(rpm !== undefined ? { rpm } : {}),
    ...(tpm !== undefined ? { tpm } : {}),
    ...(e.ipAllowlists.length > 0 ? { ipAllowlists: e.ipAllowlists.map((l) => [...l]) } : {}),
  };
}

/** Problems the schema's regexes let through (CIDRs that do not parse); empty when fine. */
export function limitsProblems(limits: Limits, where = 'limits'): string[] {
  const bad = invalidCidrs(limits.ipAllowlist ?? []);
  return bad.length > 0 ? [`${where}.ipAllowlist: not an IPv4/IPv6 address or CIDR block: ${bad.slice(0, 5).join(', ')}`] : [];
}
