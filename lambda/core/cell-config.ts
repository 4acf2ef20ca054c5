import { parsePriceTable, PriceTableConfig } from './governance/prices';
import { isSupportedRegion } from './regions';

/** The Azure OpenAI data-plane api-version used when a provider names none (GA). */
export const DEFAULT_AZURE_API_VERSION = '2024-10-21';

/** `YYYY-MM-DD` or `YYYY-MM-DD-preview`, as Azure names its API versions. */
export const AZURE_API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;

/** An Azure OpenAI deployment name, the model of an `azure-openai` target: it becomes a URL path segment. */
export const AZURE_DEPLOYMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface ProviderEndpointConfig {
  readonly kind: 'openai' | 'anthropic' | 'mistral' | 'openai-compatible' | 'azure-openai';
  readonly baseUrl: string;
  /** `azure-openai` only: the api-version query parameter (lib/config/provider-endpoint.ts). */
  readonly apiVersion?: string;
}

/** What every function learns about its cell from the environment the construct sets. */
export interface CellConfig {
  readonly region: string;
  readonly rootKeyArn: string;
  readonly pepperSecretId: string;
  readonly providers: Readonly<Record<string, ProviderEndpointConfig>>;
  readonly maxRequestBytes: number;
  readonly requestDeadlineMs: number;
  readonly tables: { readonly tenants: string; readonly tokens: string; readonly counters: string; readonly usage: string; readonly audit: string };
  /** Price overrides merged over the built-in price table (PRICE_TABLE, optional). */
  readonly prices?: PriceTableConfig;
  /** The audit key (KMS HMAC) and the anchor bucket (S3 Object Lock); set for the functions that append or verify. */
  readonly audit?: { readonly keyArn: string; readonly anchorBucket: string };
}

/** The audit settings of a function that appends to or verifies the audit trail; fails loudly without them. */
export function auditConfigOf(config: CellConfig): NonNullable<CellConfig['audit']> {
  if (!config.audit) throw new Error('Missing environment variables AUDIT_KEY_ARN and AUDIT_ANCHOR_BUCKET');
  return config.audit;
}

/** Reads and checks the environment once at init; a misconfigured function fails loudly at start. */
export function cellConfigFromEnv(env: Readonly<Record<string, string | undefined>>): CellConfig {
  const need = (name: string): string => {
    const v = env[name];
    if (v === undefined || v === '') throw new Error(`Missing environment variable ${name}`);
    return v;
  };
  const region = need('CELL_REGION');
  if (!isSupportedRegion(region)) throw new Error(`CELL_REGION '${region}' is not a supported region`);
  let providers: Record<string, ProviderEndpointConfig>;
  try {
    providers = JSON.parse(need('PROVIDER_ENDPOINTS')) as Record<string, ProviderEndpointConfig>;
  } catch {
    throw new Error('PROVIDER_ENDPOINTS is not valid JSON');
  }
  const num = (name: string, fallback: number): number => {
    const raw = env[name];
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number`);
    return n;
  };
  const prices = parsePriceTable(env.PRICE_TABLE);
  return {
    region,
    rootKeyArn: need('ROOT_KEY_ARN'),
    pepperSecretId: need('PEPPER_SECRET_ARN'),
    providers,
    maxRequestBytes: num('MAX_REQUEST_BYTES', 1024 * 1024),
    requestDeadlineMs: num('REQUEST_DEADLINE_MS', 300_000),
    tables: {
      tenants: need('TENANTS_TABLE'),
      tokens: need('TOKENS_TABLE'),
      counters: need('COUNTERS_TABLE'),
      usage: need('USAGE_TABLE'),
      audit: need('AUDIT_TABLE'),
    },
    ...(prices ? { prices } : {}),
    ...(env.AUDIT_KEY_ARN && env.AUDIT_ANCHOR_BUCKET ? { audit: { keyArn: env.AUDIT_KEY_ARN, anchorBucket: env.AUDIT_ANCHOR_BUCKET } } : {}),
  };
}
