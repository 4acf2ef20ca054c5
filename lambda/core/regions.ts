/**
 * AWS regions a cell may be deployed to, with the short code embedded in tenant tokens.
 * Tokens carry the code so a token presented to the wrong cell is rejected before any I/O,
 * with an error that names the token's home region.
 */
export const REGION_CODES = {
  'us-east-1': 'use1',
  'us-east-2': 'use2',
  'us-west-2': 'usw2',
  'ca-central-1': 'cac1',
  'eu-central-1': 'euc1',
  'eu-central-2': 'euc2',
  'eu-west-1': 'euw1',
  'eu-west-2': 'euw2',
  'eu-west-3': 'euw3',
  'eu-north-1': 'eun1',
  'eu-south-1': 'eus1',
  'ap-northeast-1': 'apne1',
  'ap-southeast-1': 'apse1',
  'ap-southeast-2': 'apse2',
  'ap-south-1': 'aps1',
  'sa-east-1': 'sae1',
} as const;

export type SupportedRegion = keyof typeof REGION_CODES;
export type RegionCode = (typeof REGION_CODES)[SupportedRegion];

export function isSupportedRegion(region: string): region is SupportedRegion {
  return Object.prototype.hasOwnProperty.call(REGION_CODES, region);
}

export function regionCodeOf(region: string): RegionCode {
  if (!isSupportedRegion(region)) {
    throw new Error(`Unsupported region '${region}'. Supported regions: ${Object.keys(REGION_CODES).join(', ')}`);
  }
  return REGION_CODES[region];
}

/** Code to region, made once: every presented token is looked up (Object.entries per call allocated ~1 KB). */
const REGION_OF_CODE: ReadonlyMap<string, SupportedRegion> = new Map((Object.keys(REGION_CODES) as SupportedRegion[]).map((r) => [REGION_CODES[r], r]));

/** Reverse lookup; undefined for an unknown code. */
export function regionOfCode(code: string): SupportedRegion | undefined {
  return REGION_OF_CODE.get(code);
}
