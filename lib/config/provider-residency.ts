/**
 * Where provider endpoints process prompts, and the strict-residency check. Free of CDK imports,
 * like provider-endpoint.ts, so the configuration check and the construct share it.
 */
import { bedrockEndpointProblem } from '../../lambda/core/cell-config';
import type { ProviderEndpoint, ProviderEndpoints } from './provider-endpoint';

/** A jurisdiction prompts may be processed in. Cells map to one by their region. */
export type ResidencyZone = 'EU' | 'US' | 'CA' | 'CH' | 'UK' | 'JP' | 'SG' | 'AU' | 'IN' | 'BR';

export const RESIDENCY_ZONES: readonly ResidencyZone[] = ['EU', 'US', 'CA', 'CH', 'UK', 'JP', 'SG', 'AU', 'IN', 'BR'];

/**
 * How a cell treats endpoints outside its zone.
 * - `standard`: any allowed endpoint may be called (prompts may leave the zone; the README says which do).
 * - `strict`: only endpoints that process prompts inside the cell's zone; synth fails otherwise.
 */
export type ResidencyMode = 'standard' | 'strict';

const REGION_ZONES: Readonly<Record<string, ResidencyZone>> = {
  'us-east-1': 'US',
  'us-east-2': 'US',
  'us-west-2': 'US',
  'ca-central-1': 'CA',
  'eu-central-1': 'EU',
  'eu-west-1': 'EU',
  'eu-west-3': 'EU',
  'eu-north-1': 'EU',
  'eu-south-1': 'EU',
  'eu-central-2': 'CH',
  'eu-west-2': 'UK',
  'ap-northeast-1': 'JP',
  'ap-southeast-1': 'SG',
  'ap-southeast-2': 'AU',
  'ap-south-1': 'IN',
  'sa-east-1': 'BR',
};

/** The jurisdiction of a cell's region (undefined for an unknown region). */
export function zoneOfRegion(region: string): ResidencyZone | undefined {
  return REGION_ZONES[region];
}

/** What is known about where an endpoint processes prompts. */
export interface EndpointResidency {
  /** The zone prompts are processed in, when the provider commits to one for this endpoint. */
  readonly zone?: ResidencyZone;
  /** Where that knowledge comes from, for messages and the README. */
  readonly basis: string;
}

/**
 * Provider endpoints whose processing location is published by the provider. The catalog wins
 * over an operator's declaration: declaring api.anthropic.com "EU" is an error, not a fact.
 */
export const KNOWN_ENDPOINTS: Readonly<Record<string, EndpointResidency>> = {
  'eu.api.openai.com': { zone: 'EU', basis: 'OpenAI European data residency endpoint (EU-residency projects): prompts processed and stored in the EU' },
  'api.openai.com': { basis: 'OpenAI default endpoint: no regional processing commitment (processed in the US or elsewhere)' },
  'api.anthropic.com': { basis: 'Anthropic API: no regional processing commitment (processed in the US or elsewhere)' },
  'api.mistral.ai': { zone: 'EU', basis: 'Mistral La Plateforme: hosted and processed in the EU' },
};

const BEDROCK = /^bedrock-runtime(?:-fips)?\.([a-z]{2}(?:-gov)?-[a-z]+-\d)\.amazonaws\.com$/;
const AZURE_OPENAI = /\.(openai\.azure\.com|cognitiveservices\.azure\.com|services\.ai\.azure\.com)$/;

/** Where an endpoint processes prompts: the catalog, an in-region AWS endpoint, or the operator's declaration. */
export function residencyOf(endpoint: ProviderEndpoint): EndpointResidency {
  let host: string;
  try {
    host = new URL(endpoint.baseUrl).hostname.toLowerCase();
  } catch {
    return { basis: 'invalid baseUrl' };
  }
  const known = KNOWN_ENDPOINTS[host];
  if (known) return known;
  const bedrock = BEDROCK.exec(host);
  if (bedrock) {
    const zone = zoneOfRegion(bedrock[1]);
    return { zone, basis: `Amazon Bedrock in ${bedrock[1]} (in-region inference; cross-region inference profiles excluded)` };
  }
  if (endpoint.dataZone) {
    const what = AZURE_OPENAI.test(host) ? 'Azure OpenAI resource' : 'operator-run endpoint';
    return { zone: endpoint.dataZone, basis: `${what}, declared by the operator as processing in ${endpoint.dataZone}` };
  }
  return { basis: 'no declaration: set dataZone on an endpoint you run or whose region you chose (e.g. an Azure OpenAI resource)' };
}

/**
 * Residency problems of a cell's endpoints: contradicted declarations always, and in strict mode
 * every endpoint that does not process prompts in the cell's zone. Empty when fine.
 */
export function residencyProblems(region: string, mode: ResidencyMode | undefined, endpoints: ProviderEndpoints | undefined, where: string): string[] {
  const problems: string[] = [];
  if (mode !== undefined && mode !== 'standard' && mode !== 'strict') {
    return [`${where}: residency '${String(mode)}' must be 'standard' or 'strict'`];
  }
  const cellZone = zoneOfRegion(region);
  for (const [id, endpoint] of Object.entries(endpoints ?? {})) {
    if (!endpoint) continue;
    if (endpoint.dataZone !== undefined && !RESIDENCY_ZONES.includes(endpoint.dataZone)) {
      problems.push(`${where}: provider '${id}' has dataZone '${String(endpoint.dataZone)}'; expected one of ${RESIDENCY_ZONES.join(', ')}`);
      continue;
    }
    // Amazon Bedrock is the in-region route: another region's endpoint fails in every mode.
    const bedrock = endpoint.kind === 'bedrock' ? bedrockEndpointProblem(endpoint.baseUrl, region) : undefined;
    if (bedrock) {
      problems.push(`${where}: provider '${id}' (kind bedrock): ${bedrock}`);
      continue;
    }
    const residency = residencyOf(endpoint);
    let host = '';
    try {
      host = new URL(endpoint.baseUrl).hostname.toLowerCase();
    } catch {
      continue; // reported by providerEndpointProblems
    }
    const catalogued = KNOWN_ENDPOINTS[host] ?? (BEDROCK.test(host) ? residency : undefined);
    if (catalogued && endpoint.dataZone !== undefined && endpoint.dataZone !== catalogued.zone) {
      problems.push(
        `${where}: provider '${id}' declares dataZone ${endpoint.dataZone} for ${host}, but ${catalogued.basis}; remove the declaration`,
      );
      continue;
    }
    if (mode === 'strict' && (cellZone === undefined || residency.zone !== cellZone)) {
      problems.push(
        `${where}: strict residency allows only endpoints that process prompts in ${cellZone ?? region}; provider '${id}' (${endpoint.baseUrl}) ` +
          `does not: ${residency.basis}`,
      );
    }
  }
  return problems;
}
