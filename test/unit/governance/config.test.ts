import { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { RegionalRouter } from '../../../lib';
import { cellConfigFromEnv } from '../../../lambda/core/cell-config';
import { newTestApp } from '../../infra/support/synth';

const ENV = {
  CELL_REGION: 'eu-central-1',
  ROOT_KEY_ARN: 'arn:aws:kms:eu-central-1:111122223333:key/x',
  PEPPER_SECRET_ARN: 'arn:aws:secretsmanager:eu-central-1:111122223333:secret:p',
  PROVIDER_ENDPOINTS: '{"openai":{"kind":"openai","baseUrl":"https://api.openai.com"}}',
  TENANTS_TABLE: 't',
  TOKENS_TABLE: 'k',
  COUNTERS_TABLE: 'c',
  USAGE_TABLE: 'u',
  AUDIT_TABLE: 'a',
  ERASURE_TABLE: 'e',
};

describe('PRICE_TABLE in the cell configuration', () => {
  test('absent: no overrides', () => {
    expect(cellConfigFromEnv(ENV).prices).toBeUndefined();
  });
  test('present: parsed and checked', () => {
    const prices = { models: { openai: { 'gpt-4o': { input: 3, output: 12 } } }, fallback: { input: 30, output: 120 } };
    expect(cellConfigFromEnv({ ...ENV, PRICE_TABLE: JSON.stringify(prices) }).prices).toEqual(prices);
  });
  test('invalid: the function fails at start, naming the field', () => {
    expect(() => cellConfigFromEnv({ ...ENV, PRICE_TABLE: '{"fallback":{"input":0,"output":1}}' })).toThrow('never free');
    expect(() => cellConfigFromEnv({ ...ENV, PRICE_TABLE: '{' })).toThrow('PRICE_TABLE is not valid JSON');
  });
});

describe('RegionalRouterProps.prices', () => {
  const synth = (prices?: unknown) => {
    const { app } = newTestApp();
    const stack = new Stack(app, 'S', { env: { account: '111122223333', region: 'eu-central-1' } });
    new RegionalRouter(stack, 'Cell', { providers: { openai: { kind: 'openai', baseUrl: 'https://api.openai.com' } }, ...(prices ? { prices: prices as never } : {}) });
    return Template.fromStack(stack).findResources('AWS::Lambda::Function');
  };
  const envs = (fns: Record<string, any>) =>
    Object.values(fns)
      .map((f) => f.Properties?.Environment?.Variables as Record<string, unknown> | undefined)
      .filter((v): v is Record<string, unknown> => v?.CELL_REGION !== undefined);

  test('becomes PRICE_TABLE of the functions; absent by default', () => {
    const prices = { models: { openai: { 'gpt-4o': { input: 2, output: 8 } } } };
    const withPrices = envs(synth(prices));
    expect(withPrices.length).toBeGreaterThanOrEqual(3);
    for (const v of withPrices) expect(JSON.parse(String(v.PRICE_TABLE))).toEqual(prices);
    for (const v of envs(synth())) expect(v.PRICE_TABLE).toBeUndefined();
  });

  test('is validated at synth', () => {
    expect(() => synth({ fallback: { input: 0, output: 0 } })).toThrow('RegionalRouterProps.prices.fallback');
    const huge = { models: { openai: Object.fromEntries(Array.from({ length: 60 }, (_, i) => [`model-${i}`, { input: 1, output: 2 }])) } };
    expect(() => synth(huge)).toThrow('keep it under 2048');
  });
});
