import { AZURE_API_VERSION } from '../../lambda/core/cell-config';
import type { ResidencyZone } from './provider-residency';

/**
 * The API a provider endpoint speaks. Operator-defined endpoints speak OpenAI's. `azure-openai`
 * is an Azure OpenAI resource: deployment-based URLs, an `api-key` header and an api-version.
 */
export type ProviderKind = 'openai' | 'anthropic' | 'mistral' | 'openai-compatible' | 'azure-openai';

export const PROVIDER_KINDS: readonly ProviderKind[] = ['openai', 'anthropic', 'mistral', 'openai-compatible', 'azure-openai'];

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
