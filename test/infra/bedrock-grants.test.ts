/**
 * Amazon Bedrock in the construct (issue 14.1): the router's role may invoke exactly the models of
 * the `auth: 'iam'` Bedrock providers, in the cell's region only (template and IAM simulation);
 * another region's Bedrock endpoint, a cross-region inference profile, or `iam` without models
 * fail synthesis; a hand-added grant on another region's model is a residency error.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { RegionalRouter } from '../../lib';
import { decide } from './support/iam-simulator';
import { logicalIdOf } from './support/synth';
import { CfnTemplate, TemplateResolver, TEST_ACCOUNT } from './support/template-resolver';

const REGION = 'eu-central-1';
const HAIKU = 'anthropic.claude-3-5-haiku-20241022-v1:0';
const NOVA = 'amazon.nova-lite-v1:0';
const ENDPOINT = `https://bedrock-runtime.${REGION}.amazonaws.com`;
const modelArn = (model: string, region = REGION) => `arn:aws:bedrock:${region}::foundation-model/${model}`;

function cell(providers: ConstructorParameters<typeof RegionalRouter>[2]['providers'], id = 'Stack') {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, id, { env: { region: REGION, account: TEST_ACCOUNT } });
  return { stack, cell: new RegionalRouter(stack, 'Cell', { providers }) };
}

describe('grantInvokeBedrockModels on the router role', () => {
  const { stack, cell: c } = cell({
    bedrock: { kind: 'bedrock', baseUrl: ENDPOINT, auth: 'iam', models: [HAIKU, NOVA] },
    'bedrock-keys': { kind: 'bedrock', baseUrl: ENDPOINT },
  });
  const template = Template.fromStack(stack);
  const json = template.toJSON() as CfnTemplate;
  const resolver = new TemplateResolver(json, REGION, stack.stackName, TEST_ACCOUNT);
  const may = (role: iam.IRole, action: string, resource: string, requestedRegion = REGION) =>
    decide({
      principal: resolver.arnOf(logicalIdOf(role)),
      identityPolicies: resolver.identityPolicies(logicalIdOf(role)),
      action,
      resourceArn: resource,
      accountId: TEST_ACCOUNT,
      context: { 'aws:RequestedRegion': requestedRegion },
    });

  test('one statement: the two Bedrock invoke actions on exactly the listed models of the region, region pinned', () => {
    const statements = Object.values(json.Resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .flatMap((r) => (r.Properties as { PolicyDocument: { Statement: Array<{ Action: unknown; Resource: unknown; Condition?: unknown }> } }).PolicyDocument.Statement)
      .filter((s) => JSON.stringify(s.Action).includes('bedrock:'));
    expect(statements).toHaveLength(1);
    expect(statements[0].Action).toEqual(['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream']);
    expect(JSON.stringify(statements[0].Resource)).toContain(`:bedrock:${REGION}::foundation-model/${HAIKU}`);
    expect(JSON.stringify(statements[0].Resource)).toContain(`:bedrock:${REGION}::foundation-model/${NOVA}`);
    expect(JSON.stringify(statements[0].Resource)).not.toContain('*');
    expect(statements[0].Condition).toEqual({ StringEquals: { 'aws:RequestedRegion': REGION } });
  });

  test('IAM simulation: the router may Converse and ConverseStream the listed models here, nothing else', async () => {
    expect(await may(c.routerRole, 'bedrock:InvokeModel', modelArn(HAIKU))).toBe('Allowed');
    expect(await may(c.routerRole, 'bedrock:InvokeModelWithResponseStream', modelArn(NOVA))).toBe('Allowed');
    // Another model, another region's copy of a listed model, a cross-region inference profile.
    expect(await may(c.routerRole, 'bedrock:InvokeModel', modelArn('anthropic.claude-opus-4-1-20250805-v1:0'))).toBe('ImplicitlyDenied');
    expect(await may(c.routerRole, 'bedrock:InvokeModel', modelArn(HAIKU, 'us-east-1'), 'us-east-1')).toBe('ImplicitlyDenied');
    expect(await may(c.routerRole, 'bedrock:InvokeModel', modelArn(HAIKU), 'us-east-1')).toBe('ImplicitlyDenied');
    expect(await may(c.routerRole, 'bedrock:InvokeModel', `arn:aws:bedrock:${REGION}:${TEST_ACCOUNT}:inference-profile/eu.${HAIKU}`)).toBe('ImplicitlyDenied');
    // No other Bedrock power: no guardrail, agent or model management.
    expect(await may(c.routerRole, 'bedrock:CreateModelCustomizationJob', modelArn(HAIKU))).toBe('ImplicitlyDenied');
  });

  test('the vault and admin roles may invoke no model', async () => {
    for (const role of [c.vaultRole, c.adminRole]) {
      expect(await may(role, 'bedrock:InvokeModel', modelArn(HAIKU))).toBe('ImplicitlyDenied');
      expect(await may(role, 'bedrock:InvokeModelWithResponseStream', modelArn(HAIKU))).toBe('ImplicitlyDenied');
    }
  });

  test('a cell with only API-key Bedrock providers grants no Bedrock action at all', () => {
    const { stack: s } = cell({ bedrock: { kind: 'bedrock', baseUrl: ENDPOINT } }, 'KeysOnly');
    expect(JSON.stringify(Template.fromStack(s).toJSON())).not.toContain('bedrock:Invoke');
  });
});

describe('synth-time residency and configuration checks', () => {
  test.each([
    [{ kind: 'bedrock' as const, baseUrl: 'https://bedrock-runtime.us-east-1.amazonaws.com' }, "Amazon Bedrock in us-east-1 is outside the cell's region eu-central-1"],
    [{ kind: 'bedrock' as const, baseUrl: 'https://bedrock-runtime.eu-west-1.amazonaws.com', auth: 'iam' as const, models: [HAIKU] }, "Amazon Bedrock in eu-west-1 is outside the cell's region eu-central-1"],
    [{ kind: 'bedrock' as const, baseUrl: 'https://example.com' }, 'baseUrl must be https://bedrock-runtime.eu-central-1.amazonaws.com'],
    [{ kind: 'bedrock' as const, baseUrl: ENDPOINT, auth: 'iam' as const, models: [`eu.${HAIKU}`] }, 'cross-region inference profile'],
    [{ kind: 'bedrock' as const, baseUrl: ENDPOINT, auth: 'iam' as const }, "uses auth 'iam' and must list the models"],
    [{ kind: 'bedrock' as const, baseUrl: ENDPOINT, auth: 'sigv4' as never }, "auth must be 'api-key' or 'iam'"],
    [{ kind: 'openai' as const, baseUrl: 'https://api.openai.com', auth: 'iam' as const }, "sets auth, which only kind 'bedrock' uses"],
  ])('%j is refused', (endpoint, message) => {
    let error: Error | undefined;
    try {
      cell({ 'bedrock-x': endpoint }, 'Bad');
    } catch (err) {
      error = err as Error;
    }
    // Exactly this problem, nothing else wrong with the configuration.
    expect(error?.message.split('\n')).toEqual([expect.stringContaining(message)]);
  });

  test('strict residency accepts the in-region Bedrock endpoint', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new Stack(app, 'Strict', { env: { region: REGION, account: TEST_ACCOUNT } });
    expect(() => new RegionalRouter(stack, 'Cell', { residency: 'strict', providers: { 'bedrock-x': { kind: 'bedrock', baseUrl: ENDPOINT, auth: 'iam', models: [HAIKU] } } })).not.toThrow();
  });

  test('a Bedrock grant on another region added by hand is a ResidencyGuard error', () => {
    const { stack, cell: c } = cell({ 'bedrock-x': { kind: 'bedrock', baseUrl: ENDPOINT } }, 'HandGrant');
    c.routerRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['bedrock:InvokeModel'], resources: [modelArn(HAIKU, 'us-east-1')] }));
    const errors = Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('Residency violation in eu-central-1.*us-east-1'));
    expect(errors.length).toBeGreaterThan(0);
  });
});
