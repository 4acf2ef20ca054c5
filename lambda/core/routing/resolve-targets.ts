/**
 * Model name → ordered targets. Order of precedence: the tenant's route table (aliases), an
 * explicit `provider/model`, then inference from well-known model-name prefixes. The cell's
 * configured providers are its egress allowlist: nothing outside them is ever returned.
 */
import { AZURE_DEPLOYMENT, bedrockEndpointProblem, bedrockModelProblem, DEFAULT_AZURE_API_VERSION, type ProviderEndpointConfig } from '../cell-config';
import type { RouteTarget, TenantPolicy } from '../tenant-model';
import { NoRouteError, type ProviderKind, type Target } from './types';

export type ResolveApi = 'chat' | 'embeddings';

export interface ResolveTargetsOptions {
  readonly policy: TenantPolicy;
  readonly providers: Readonly<Record<string, ProviderEndpointConfig>>;
  /** Uniform in [0, 1); injected so weighted choice is testable. Defaults to Math.random. */
  readonly random?: () => number;
  /** 'embeddings' drops Anthropic targets (no embeddings API). Defaults to 'chat'. */
  readonly api?: ResolveApi;
  /** The cell's region: a Bedrock endpoint outside it never becomes a target. */
  readonly region?: string;
}

/** A model string the router refuses to even look up (too long, control characters). */
export class InvalidModelError extends NoRouteError {}

export const MAX_MODEL_LENGTH = 256;
export const DEFAULT_SECRET = 'default';

// C0, DEL and C1 controls, plus line/paragraph separators: nothing that could split a log line.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** Prefix → provider kind. Checked in order; model names are case-sensitive at the providers. */
const INFERENCE: ReadonlyArray<readonly [string, ProviderKind]> = [
  ['claude-', 'anthropic'],
  ['gpt-', 'openai'],
  ['o1', 'openai'],
  ['o3', 'openai'],
  ['o4', 'openai'],
  ['chatgpt-', 'openai'],
  ['text-embedding-', 'openai'],
  ['omni-moderation', 'openai'],
  ['mistral-', 'mistral'],
  ['open-mistral', 'mistral'],
  ['open-mixtral', 'mistral'],
  ['ministral-', 'mistral'],
  ['codestral', 'mistral'],
  ['devstral', 'mistral'],
  ['pixtral', 'mistral'],
  ['magistral', 'mistral'],
];

export function resolveTargets(model: string, opts: ResolveTargetsOptions): Target[] {
  validateModel(model);
  const { providers, policy } = opts;
  const api = opts.api ?? 'chat';
  // Named only in errors: made when one is thrown, not on every request.
  const cellProviders = (): string => Object.keys(providers).join(', ') || 'none';

  // Own-property checks throughout: '__proto__' or 'constructor' must never resolve to anything.
  if (policy.routes && Object.hasOwn(policy.routes, model)) {
    const configured = policy.routes[model].filter((t) => Object.hasOwn(providers, t.provider));
    if (configured.length === 0) {
      throw new NoRouteError(`route '${model}' has no target among this cell's providers (${cellProviders()})`);
    }
    const usable = configured.filter((t) => servesApi(providers[t.provider].kind, api));
    if (usable.length === 0) {
      throw new NoRouteError(`route '${model}' has no target that serves embeddings (Anthropic and Bedrock Converse have no embeddings API)`);
    }
    return weightedFirst(usable, opts.random ?? Math.random).map((t) => toTarget(t, providers, opts.region));
  }

  const slash = model.indexOf('/');
  if (slash > 0 && slash < model.length - 1) {
    const provider = model.slice(0, slash);
    if (Object.hasOwn(providers, provider)) {
      return [checkApi(toTarget({ provider, model: model.slice(slash + 1) }, providers, opts.region), api, model)];
    }
  }

  const kind = INFERENCE.find(([prefix]) => model.startsWith(prefix))?.[1];
  if (kind === undefined) {
    if (slash > 0) {
      throw new NoRouteError(`model '${model}' has no route: '${model.slice(0, slash)}' is not a provider of this cell (${cellProviders()})`);
    }
    throw new NoRouteError(`model '${model}' has no route; add one to the tenant's route table or use provider/model`);
  }
  const ids = Object.keys(providers).filter((id) => providers[id].kind === kind);
  if (ids.length === 0) {
    throw new NoRouteError(`model '${model}' needs a provider of kind '${kind}', which this cell does not allow (${cellProviders()})`);
  }
  const provider = ids.includes(kind) ? kind : ids[0];
  return [checkApi(toTarget({ provider, model }, providers, opts.region), api, model)];
}

function validateModel(model: unknown): asserts model is string {
  // The raw value is deliberately not echoed: it may be huge or carry control characters.
  if (typeof model !== 'string' || model.length === 0) throw new InvalidModelError('model must be a non-empty string');
  if (model.length > MAX_MODEL_LENGTH) throw new InvalidModelError(`model must be at most ${MAX_MODEL_LENGTH} characters`);
  if (CONTROL.test(model)) throw new InvalidModelError('model must not contain control characters');
}

function servesApi(kind: ProviderKind, api: ResolveApi): boolean {
  return !(api === 'embeddings' && (kind === 'anthropic' || kind === 'bedrock'));
}

function checkApi(target: Target, api: ResolveApi, model: string): Target {
  if (!servesApi(target.kind, api)) {
    throw new NoRouteError(`model '${model}' resolves to ${target.kind === 'bedrock' ? 'Amazon Bedrock Converse' : 'Anthropic'}, which has no embeddings API`);
  }
  return target;
}

/**
 * With weights present, the primary is drawn among the weighted targets in proportion to their
 * weight; every other target keeps its listed position as a fallback.
 */
function weightedFirst(targets: readonly RouteTarget[], random: () => number): RouteTarget[] {
  const weighted = targets.filter((t) => t.weight !== undefined && Number.isFinite(t.weight) && t.weight > 0);
  if (weighted.length === 0) return [...targets];
  const total = weighted.reduce((sum, t) => sum + (t.weight ?? 0), 0);
  const r = Math.min(Math.max(random(), 0), 1 - Number.EPSILON) * total;
  let acc = 0;
  let chosen = weighted[weighted.length - 1];
  for (const t of weighted) {
    acc += t.weight ?? 0;
    if (r < acc) {
      chosen = t;
      break;
    }
  }
  return [chosen, ...targets.filter((t) => t !== chosen)];
}

function toTarget(t: Pick<RouteTarget, 'provider' | 'model' | 'secret'>, providers: ResolveTargetsOptions['providers'], region: string | undefined): Target {
  const endpoint = providers[t.provider];
  // An Azure target's model is a deployment name, a path segment of its URL: nothing else passes.
  if (endpoint.kind === 'azure-openai' && (!AZURE_DEPLOYMENT.test(t.model) || /^\.+$/.test(t.model))) {
    throw new NoRouteError(`'${t.provider}' is an Azure OpenAI resource: name one of its deployments (letters, digits, '.', '_', '-'), e.g. ${t.provider}/my-deployment`);
  }
  // A Bedrock target's model is a URL path segment too, and must be an in-region model id: a
  // cross-region inference profile would carry the prompt to other regions.
  const bedrockProblem =
    endpoint.kind !== 'bedrock' ? undefined : (region === undefined ? 'no cell region to check its endpoint against' : bedrockEndpointProblem(endpoint.baseUrl, region)) ?? bedrockModelProblem(t.model);
  if (bedrockProblem) throw new NoRouteError(`'${t.provider}' is Amazon Bedrock: ${bedrockProblem}`);
  // Assignments, not conditional spreads (a literal with spreads takes V8's slow path per request).
  const target: { -readonly [K in keyof Target]: Target[K] } = { provider: t.provider, kind: endpoint.kind, baseUrl: endpoint.baseUrl, model: t.model, secret: t.secret ?? DEFAULT_SECRET };
  if (endpoint.kind === 'azure-openai') target.apiVersion = endpoint.apiVersion ?? DEFAULT_AZURE_API_VERSION;
  if (endpoint.kind === 'bedrock') target.auth = endpoint.auth ?? 'api-key';
  return target;
}
