import { parsePriceTable, PriceTableConfig } from './governance/prices';
import { isSupportedRegion } from './regions';

/** The Azure OpenAI data-plane api-version used when a provider names none (GA). */
export const DEFAULT_AZURE_API_VERSION = '2024-10-21';

/** `YYYY-MM-DD` or `YYYY-MM-DD-preview`, as Azure names its API versions. */
export const AZURE_API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;

/** An Azure OpenAI deployment name, the model of an `azure-openai` target: it becomes a URL path segment. */
export const AZURE_DEPLOYMENT = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export interface ProviderEndpointConfig {
  readonly kind: 'openai' | 'anthropic' | 'mistral' | 'openai-compatible' | 'azure-openai' | 'bedrock';
  readonly baseUrl: string;
  /** `azure-openai` only: the api-version query parameter (lib/config/provider-endpoint.ts). */
  readonly apiVersion?: string;
  /**
   * `bedrock` only: `iam` signs with the router's role (SigV4, no tenant secret), `api-key` sends
   * the tenant's sealed Bedrock API key as a bearer token. Default `api-key`.
   */
  readonly auth?: BedrockAuth;
  /** `bedrock` with `iam`: the model ids the role may invoke (the construct's grant names them). */
  readonly models?: readonly string[];
}

export type BedrockAuth = 'api-key' | 'iam';

/**
 * A Bedrock model id as Converse takes it in its URL: `provider.model[-version][:n]`, e.g.
 * `anthropic.claude-3-5-haiku-20241022-v1:0`. ARNs and inference-profile ids are not model ids.
 */
export const BEDROCK_MODEL_ID = /^[a-z0-9][a-z0-9-]{0,31}\.[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * Geographic prefixes of Bedrock cross-region inference profiles (`eu.anthropic...`): such a
 * profile may run the prompt in any region of its geography, so a cell never calls one.
 */
export const BEDROCK_CROSS_REGION_PREFIXES: readonly string[] = ['us', 'us-gov', 'eu', 'apac', 'ap', 'ca', 'jp', 'au', 'global'];

/** Why a Bedrock model id is refused, or undefined when it is an in-region foundation model id. */
export function bedrockModelProblem(model: string): string | undefined {
  if (!BEDROCK_MODEL_ID.test(model) || /\.\./.test(model)) {
    return `'${model.slice(0, 64)}' is not a Bedrock model id (e.g. anthropic.claude-3-5-haiku-20241022-v1:0)`;
  }
  const prefix = model.slice(0, model.indexOf('.'));
  if (BEDROCK_CROSS_REGION_PREFIXES.includes(prefix)) {
    return `'${model.slice(0, 64)}' is a cross-region inference profile, which may process prompts outside the cell's region; use the in-region model id`;
  }
  return undefined;
}

/** The Bedrock runtime host of a region (the FIPS endpoint is accepted where it exists). */
const BEDROCK_HOST = /^bedrock-runtime(?:-fips)?\.([a-z]{2}(?:-gov)?-[a-z]+-\d)\.amazonaws\.com$/;
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '[::1]']);

/**
 * Why a `bedrock` endpoint is not callable from the cell's region: its host must be that region's
 * Bedrock runtime (https), or loopback (local gateway, tests). Undefined when fine.
 */
export function bedrockEndpointProblem(baseUrl: string, region: string): string | undefined {
  let url: URL;
  try {
    url = new URL(baseUrl);
  } catch {
    return 'baseUrl is not a valid URL';
  }
  if (LOOPBACK.has(url.hostname)) return undefined;
  const m = BEDROCK_HOST.exec(url.hostname.toLowerCase());
  if (!m || url.protocol !== 'https:') return `baseUrl must be https://bedrock-runtime.${region}.amazonaws.com, got '${baseUrl}'`;
  if (m[1] !== region) return `Amazon Bedrock in ${m[1]} is outside the cell's region ${region}; use https://bedrock-runtime.${region}.amazonaws.com`;
  if (url.pathname !== '/' && url.pathname !== '') return 'baseUrl must not carry a path';
  return undefined;
}

/** What every function learns about its cell from the environment the construct sets. */
export interface CellConfig {
  readonly region: string;
  readonly rootKeyArn: string;
  /**
   * Root keys this cell used before `rootKeyArn` (same region): records still wrapped under them
   * open during a root-key migration (PREVIOUS_ROOT_KEY_ARNS, comma-separated, optional).
   */
  readonly previousRootKeyArns?: readonly string[];
  readonly pepperSecretId: string;
  readonly providers: Readonly<Record<string, ProviderEndpointConfig>>;
  readonly maxRequestBytes: number;
  readonly requestDeadlineMs: number;
  readonly tables: {
    readonly tenants: string;
    readonly tokens: string;
    readonly counters: string;
    readonly usage: string;
    readonly audit: string;
    /** The response-cache table (CACHE_TABLE); without it the router caches nothing. */
    readonly cache?: string;
    /** Tenant erasure keys: no PITR, no backups (crypto-shredding). */
    readonly erasure: string;
  };
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
  // The residency check of synth, again at init: a Bedrock endpoint outside the region never starts.
  for (const [id, p] of Object.entries(providers)) {
    const problem = p?.kind === 'bedrock' ? bedrockEndpointProblem(p.baseUrl, region) : undefined;
    if (problem) throw new Error(`PROVIDER_ENDPOINTS: provider '${id}': ${problem}`);
  }
  const num = (name: string, fallback: number): number => {
    const raw = env[name];
    const n = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number`);
    return n;
  };
  const prices = parsePriceTable(env.PRICE_TABLE);
  const previousRootKeyArns = (env.PREVIOUS_ROOT_KEY_ARNS ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  return {
    region,
    rootKeyArn: need('ROOT_KEY_ARN'),
    ...(previousRootKeyArns.length > 0 ? { previousRootKeyArns } : {}),
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
      ...(env.CACHE_TABLE ? { cache: env.CACHE_TABLE } : {}),
      erasure: need('ERASURE_TABLE'),
    },
    ...(prices ? { prices } : {}),
    ...(env.AUDIT_KEY_ARN && env.AUDIT_ANCHOR_BUCKET ? { audit: { keyArn: env.AUDIT_KEY_ARN, anchorBucket: env.AUDIT_ANCHOR_BUCKET } } : {}),
  };
}
