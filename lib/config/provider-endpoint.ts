/** The API a provider endpoint speaks. Operator-defined endpoints speak OpenAI's. */
export type ProviderKind = 'openai' | 'anthropic' | 'mistral' | 'openai-compatible';

export const PROVIDER_KINDS: readonly ProviderKind[] = ['openai', 'anthropic', 'mistral', 'openai-compatible'];

/** One provider endpoint that a regional cell is allowed to call. */
export interface ProviderEndpoint {
  /** Which API the endpoint speaks. */
  readonly kind: ProviderKind;
  /**
   * Base URL, without the `/v1` suffix, e.g. `https://api.openai.com`.
   * Must be https; plain http is accepted only for loopback (local gateway and tests).
   */
  readonly baseUrl: string;
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
