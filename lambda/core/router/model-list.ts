/**
 * GET /v1/models: the models this token may actually call, with the provider that serves each as
 * `owned_by`. Candidates are the tenant's route aliases, its allowlist, and the known models of
 * every provider of the cell (routing/known-models.ts, plus models the operator priced for that
 * provider id in PRICE_TABLE), so a tenant without a policy sees its providers' defaults. A candidate is listed only if it passes
 * the allowlists (tenant and token), resolves to a provider of this cell, and that provider has a
 * stored key (or the route names its own secret). Pure: no I/O beyond what the request read.
 */
import type { ProviderEndpointConfig } from '../cell-config';
import { effectiveLimits } from '../governance/limits';
import type { PriceTableConfig } from '../governance/prices';
import { KNOWN_MODELS } from '../routing/known-models';
import { DEFAULT_SECRET, resolveTargets } from '../routing/resolve-targets';
import type { ProviderKind } from '../routing/types';
import type { TenantRecord, TokenRecord } from '../tenant-model';
import { secretKeyOf } from './router-store';

export interface ModelListInput {
  readonly tenant: TenantRecord;
  readonly token: TokenRecord;
  readonly providers: Readonly<Record<string, ProviderEndpointConfig>>;
  readonly prices?: PriceTableConfig;
  /** Which `<provider>#<secret>` keys the tenant has stored (from the request's one read). */
  readonly storedSecrets: { has(key: string): boolean };
  /** The cell's region (Bedrock endpoints are checked against it). */
  readonly region?: string;
}

export interface ModelEntry {
  readonly id: string;
  readonly object: 'model';
  readonly created: number;
  readonly owned_by: string;
}

/** A provider's known models: the built-in list of its kind, plus the operator's price entries for its id. */
function knownModels(providerId: string, endpoint: ProviderEndpointConfig, prices: PriceTableConfig | undefined): string[] {
  const priced = prices?.models && Object.hasOwn(prices.models, providerId) ? Object.keys(prices.models[providerId]) : [];
  // A Bedrock provider signed with the router's role serves exactly the models it was granted.
  const granted = endpoint.kind === 'bedrock' ? (endpoint.models ?? []) : [];
  return [...(KNOWN_MODELS[endpoint.kind as ProviderKind] ?? []), ...granted, ...priced.filter((m) => m !== '')];
}

export function modelList(input: ModelListInput): { object: 'list'; data: ModelEntry[] } {
  const { tenant, token, providers } = input;
  const policy = tenant.policy;
  const allowed = effectiveLimits(policy, token.limits).allowedModels;

  const candidates = new Set<string>([...Object.keys(policy.routes ?? {}), ...(allowed ?? [])]);
  for (const [id, endpoint] of Object.entries(providers)) {
    for (const model of knownModels(id, endpoint, input.prices)) {
      // Inference sends a bare name to one provider of its kind; the others are reachable as id/model.
      const owner = ownerOf(model, input);
      candidates.add(owner === id ? model : `${id}/${model}`);
    }
  }

  const data: ModelEntry[] = [];
  for (const id of [...candidates].sort()) {
    if (allowed && !allowed.has(id)) continue;
    const owner = ownerOf(id, input);
    if (owner !== undefined) data.push({ id, object: 'model', created: 0, owned_by: owner });
  }
  return { object: 'list', data };
}

/** The provider that serves `model` first, if the model routes and some target has a usable key. */
function ownerOf(model: string, input: ModelListInput): string | undefined {
  let targets;
  try {
    targets = resolveTargets(model, { policy: input.tenant.policy, providers: input.providers, random: () => 0, region: input.region });
  } catch {
    return undefined;
  }
  // A named (non-default) secret is read only when a request uses it: assume it is there.
  // An IAM-authenticated Bedrock target needs no tenant key.
  const usable = targets.find((t) => t.secret !== DEFAULT_SECRET || (t.kind === 'bedrock' && t.auth === 'iam') || input.storedSecrets.has(secretKeyOf(t.provider, t.secret)));
  return usable?.provider;
}
