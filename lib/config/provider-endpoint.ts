import { AZURE_API_VERSION, bedrockModelProblem } from '../../lambda/core/cell-config';
import type { ResidencyZone } from './provider-residency';

/**
 * The API a provider endpoint speaks. Operator-defined endpoints speak OpenAI's. `azure-openai`
 * is an Azure OpenAI resource: deployment-based URLs, an `api-key` header and an api-version.
 * `bedrock` is Amazon Bedrock in the cell's own region, through Converse and ConverseStream.
 */
export type ProviderKind = 'openai' | 'anthropic' | 'mistral' | 'openai-compatible' | 'azure-openai' | 'bedrock';

export const PROVIDER_KINDS: readonly ProviderKind[] = ['openai', 'anthropic', 'mistral', 'openai-compatible', 'azure-openai', 'bedrock'];

/** How the router authenticates to Amazon Bedrock. */
export type BedrockAuth = 'api-key' | 'iam';

export { AZURE_API_VERSION, DEFAULT_AZURE_API_VERSION } from '../../lambda/core/cell-config';

/** One provider endpoint that a regional cell is allowed to call. */
export interface ProviderEndpoint {
  /** Which API the endpoint speaks. */
  readonly kind: ProviderKind;
  /**
   * Base URL, without the `/v1` suffix, e.g. `https://api.openai.com`.
   * Must be https; plain http is accepted only for loopback (local gateway and tests).
   */
  readonly baseUrl: string;
  /**
   * `azure-openai` only: the `api-version` query parameter sent with every call, e.g.
   * `2024-10-21` or `2025-04-01-preview`. Route targets name the deployment as their model.
   * @default '2024-10-21'
   */
  readonly apiVersion?: string;
  /**
   * `bedrock` only. `api-key`: each tenant stores a Bedrock API key (sealed like any provider
   * key) and the router sends it as a bearer token. `iam`: the router signs with its own role
   * (SigV4, the cell's region); the construct grants that role `bedrock:InvokeModel` and
   * `bedrock:InvokeModelWithResponseStream` on exactly `models`, in the cell's region, and any
   * tenant of the cell may call them within its policy and budget.
   * @default 'api-key'
   */
  readonly auth?: BedrockAuth;
  /**
   * `bedrock` with `auth: 'iam'`: the foundation-model ids the router's role may invoke, e.g.
   * `anthropic.claude-3-5-haiku-20241022-v1:0`. Cross-region inference profiles (`eu.`, `us.`...)
   * are refused: they may process prompts outside the region.
   * @default - required for `auth: 'iam'`
   */
  readonly models?: readonly string[];
  /**
   * Where this endpoint processes prompts, declared by the operator, for endpoints the built-in
   * catalog does not know (your own models, an Azure OpenAI resource in a region you chose).
   * Ignored in favour of the catalog for known provider hosts; a contradicting declaration fails.
   * @default - the catalog's knowledge; none for unknown hosts
   */
  readonly dataZone?: ResidencyZone;
}

/** Provider id (`openai`, `anthropic`, `mistral` or an operator-chosen id) to endpoint. */
export type ProviderEndpoints = Readonly<Record<string, ProviderEndpoint>>;

const PROVIDER_ID = /^[a-z][a-z0-9-]{1,31}$/;
const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Validates a cell's provider allowlist and returns a list of problems (empty when valid).
 * Kept free of CDK imports so the Lambda code can reuse it on the environment it receives.
 */
export function providerEndpointProblems(endpoints: ProviderEndpoints | undefined, where: string): string[] {
  const problems: string[] = [];
  const entries = Object.entries(endpoints ?? {});
  if (entries.length === 0) {
    problems.push(`${where}: no allowed provider endpoint; list at least one under 'providers'`);
  }
  for (const [id, endpoint] of entries) {
    if (!PROVIDER_ID.test(id)) {
      problems.push(`${where}: provider id '${id}' must match ${PROVIDER_ID}`);
    }
    if (!endpoint || !PROVIDER_KINDS.includes(endpoint.kind)) {
      problems.push(`${where}: provider '${id}' has kind '${endpoint?.kind}'; expected one of ${PROVIDER_KINDS.join(', ')}`);
    }
    if (endpoint?.apiVersion !== undefined) {
      if (endpoint.kind !== 'azure-openai') {
        problems.push(`${where}: provider '${id}' sets apiVersion, which only kind 'azure-openai' uses`);
      } else if (typeof endpoint.apiVersion !== 'string' || !AZURE_API_VERSION.test(endpoint.apiVersion)) {
        problems.push(`${where}: provider '${id}' apiVersion must look like 2024-10-21 or 2025-04-01-preview, got '${endpoint.apiVersion}'`);
      }
    }
    problems.push(...bedrockProblems(id, endpoint, where));
    let url: URL | undefined;
    try {
      url = new URL(endpoint?.baseUrl ?? '');
    } catch {
      problems.push(`${where}: provider '${id}' has an invalid baseUrl '${endpoint?.baseUrl}'`);
    }
    if (url) {
      const loopback = LOOPBACK_HOSTS.has(url.hostname);
      if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) {
        problems.push(`${where}: provider '${id}' baseUrl must use https (http only for loopback), got '${endpoint.baseUrl}'`);
      }
      if (url.username || url.password || url.search || url.hash) {
        problems.push(`${where}: provider '${id}' baseUrl must not carry credentials, a query or a fragment`);
      }
    }
  }
  return problems;
}

/** `auth` and `models` belong to `bedrock`; `iam` needs models, each an in-region model id. */
function bedrockProblems(id: string, endpoint: ProviderEndpoint | undefined, where: string): string[] {
  if (!endpoint) return [];
  const problems: string[] = [];
  if (endpoint.kind !== 'bedrock') {
    if (endpoint.auth !== undefined) problems.push(`${where}: provider '${id}' sets auth, which only kind 'bedrock' uses`);
    if (endpoint.models !== undefined) problems.push(`${where}: provider '${id}' sets models, which only kind 'bedrock' uses`);
    return problems;
  }
  if (endpoint.auth !== undefined && endpoint.auth !== 'api-key' && endpoint.auth !== 'iam') {
    problems.push(`${where}: provider '${id}' auth must be 'api-key' or 'iam', got '${String(endpoint.auth)}'`);
  }
  if (endpoint.models !== undefined && (!Array.isArray(endpoint.models) || endpoint.models.some((m) => typeof m !== 'string'))) {
    problems.push(`${where}: provider '${id}' models must be an array of Bedrock model ids`);
    return problems;
  }
  if (endpoint.auth === 'iam' && (endpoint.models ?? []).length === 0) {
    problems.push(`${where}: provider '${id}' uses auth 'iam' and must list the models the router's role may invoke`);
  }
  for (const model of endpoint.models ?? []) {
    const problem = bedrockModelProblem(model);
    if (problem) problems.push(`${where}: provider '${id}' models: ${problem}`);
  }
  return problems;
}
