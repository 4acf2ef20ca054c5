/**
 * Residency of prompts: where each endpoint processes data, and strict cells that fail synth on
 * any endpoint without an in-zone declaration.
 */
import { App, Stack } from 'aws-cdk-lib';
import { buildApp } from '../../bin/build-app';
import { DEFAULT_CONFIG } from '../../bin/default-config';
import { ConfigError, ProviderEndpoints, RegionalRouter, residencyOf, residencyProblems, validateDeploymentConfig, zoneOfRegion } from '../../lib';

const OPENAI_EU = { kind: 'openai', baseUrl: 'https://eu.api.openai.com' } as const;
const MISTRAL = { kind: 'mistral', baseUrl: 'https://api.mistral.ai' } as const;
const ANTHROPIC = { kind: 'anthropic', baseUrl: 'https://api.anthropic.com' } as const;
const OPENAI = { kind: 'openai', baseUrl: 'https://api.openai.com' } as const;

const strict = (region: string, providers: ProviderEndpoints) => residencyProblems(region, 'strict', providers, region);

describe('where endpoints process prompts', () => {
  test('catalogued endpoints', () => {
    expect(residencyOf(OPENAI_EU).zone).toBe('EU');
    expect(residencyOf(MISTRAL).zone).toBe('EU');
    expect(residencyOf(ANTHROPIC).zone).toBeUndefined();
    expect(residencyOf(OPENAI).zone).toBeUndefined();
  });

  test('Amazon Bedrock runtime endpoints take the zone of their region', () => {
    expect(residencyOf({ kind: 'openai-compatible', baseUrl: 'https://bedrock-runtime.eu-central-1.amazonaws.com/openai' }).zone).toBe('EU');
    expect(residencyOf({ kind: 'openai-compatible', baseUrl: 'https://bedrock-runtime.us-east-1.amazonaws.com/openai' }).zone).toBe('US');
  });

  test('regions map to jurisdictions; Zurich and London are not the EU', () => {
    expect(['eu-central-1', 'eu-west-1', 'eu-north-1'].map(zoneOfRegion)).toEqual(['EU', 'EU', 'EU']);
    expect([zoneOfRegion('eu-central-2'), zoneOfRegion('eu-west-2'), zoneOfRegion('us-east-1')]).toEqual(['CH', 'UK', 'US']);
  });
});

describe('strict cells', () => {
  test('an EU cell with in-EU endpoints passes: OpenAI EU, Mistral, Bedrock in the EU, a declared Azure OpenAI resource and own model', () => {
    expect(
      strict('eu-central-1', {
        openai: OPENAI_EU,
        mistral: MISTRAL,
        bedrock: { kind: 'openai-compatible', baseUrl: 'https://bedrock-runtime.eu-west-1.amazonaws.com/openai' },
        azure: { kind: 'azure-openai', baseUrl: 'https://acme-sweden.openai.azure.com', dataZone: 'EU' },
        vllm: { kind: 'openai-compatible', baseUrl: 'https://llm.internal.example.com', dataZone: 'EU' },
      }),
    ).toEqual([]);
  });

  test.each([
    ['anthropic', ANTHROPIC, /provider 'anthropic' \(https:\/\/api.anthropic.com\) does not: Anthropic API: no regional processing commitment/],
    ['openai', OPENAI, /provider 'openai' .*OpenAI default endpoint/],
    ['bedrock', { kind: 'openai-compatible', baseUrl: 'https://bedrock-runtime.us-east-1.amazonaws.com/openai' }, /Amazon Bedrock in us-east-1/],
    ['azure', { kind: 'azure-openai', baseUrl: 'https://acme.openai.azure.com' }, /no declaration: set dataZone/],
    ['vllm', { kind: 'openai-compatible', baseUrl: 'https://llm.internal.example.com', dataZone: 'US' }, /declared by the operator as processing in US/],
  ] as const)('an EU cell refuses %s', (id, endpoint, message) => {
    const problems = strict('eu-central-1', { openai_eu: OPENAI_EU, [id]: endpoint } as ProviderEndpoints);
    expect(problems).toEqual([expect.stringMatching(message)]);
    expect(problems[0]).toMatch(/strict residency allows only endpoints that process prompts in EU/);
  });

  test('a Zurich (CH) cell refuses the EU endpoints', () => {
    expect(strict('eu-central-2', { openai: OPENAI_EU, mistral: MISTRAL })).toHaveLength(2);
  });

  test('standard cells allow any endpoint, but a declaration that contradicts the catalog fails in every mode', () => {
    expect(residencyProblems('eu-central-1', 'standard', { anthropic: ANTHROPIC, openai: OPENAI }, 'x')).toEqual([]);
    expect(residencyProblems('eu-central-1', undefined, { anthropic: { ...ANTHROPIC, dataZone: 'EU' } }, 'x')).toEqual([
      expect.stringMatching(/declares dataZone EU for api.anthropic.com, but Anthropic API: no regional processing commitment/),
    ]);
    expect(residencyProblems('eu-central-1', 'strict', { b: { kind: 'openai-compatible', baseUrl: 'https://bedrock-runtime.us-east-1.amazonaws.com', dataZone: 'EU' } }, 'x')).toEqual([
      expect.stringMatching(/declares dataZone EU .* Amazon Bedrock in us-east-1/),
    ]);
  });

  test('unknown modes and zones are refused', () => {
    expect(residencyProblems('eu-central-1', 'lenient' as never, { openai: OPENAI_EU }, 'x')).toEqual([expect.stringMatching(/'standard' or 'strict'/)]);
    expect(residencyProblems('eu-central-1', 'strict', { v: { kind: 'openai-compatible', baseUrl: 'https://x.example.com', dataZone: 'Mars' as never } }, 'x')).toEqual([
      expect.stringMatching(/dataZone 'Mars'/),
    ]);
  });
});

describe('synth fails in strict mode', () => {
  test('RegionalRouter throws naming the endpoint', () => {
    const stack = new Stack(new App(), 'S', { env: { region: 'eu-central-1' } });
    expect(() => new RegionalRouter(stack, 'Cell', { residency: 'strict', providers: { openai: OPENAI_EU, anthropic: ANTHROPIC } })).toThrow(/provider 'anthropic'/);
  });

  test('the deployment configuration (bin/, -c config=...) fails with a ConfigError', () => {
    const config = { cells: [{ region: 'eu-central-1', residency: 'strict' as const, providers: { openai: OPENAI } }] };
    expect(() => validateDeploymentConfig(config)).toThrow(ConfigError);
    expect(() => buildApp(new App({ context: { 'aws:cdk:bundling-stacks': [] } }), config)).toThrow(/strict residency .* provider 'openai'/);
  });

  test('the default EU cell is strict and keeps prompts in the EU; the US cell is standard', () => {
    const eu = DEFAULT_CONFIG.cells.find((c) => c.region === 'eu-central-1')!;
    expect(eu.residency).toBe('strict');
    expect(Object.values(eu.providers).map((p) => residencyOf(p).zone)).toEqual(['EU', 'EU']);
    expect(DEFAULT_CONFIG.cells.find((c) => c.region === 'us-east-1')!.residency).toBeUndefined();
    expect(() => validateDeploymentConfig(DEFAULT_CONFIG)).not.toThrow();
  });
});
