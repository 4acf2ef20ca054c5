/**
 * Amazon Bedrock Guardrails in the construct (issue 14 point 4): the router's role may call
 * ApplyGuardrail on exactly the listed guardrails of the cell's region and account (template and
 * IAM simulation); nothing is granted without a list; malformed ids fail synthesis.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { RegionalRouter } from '../../lib';
import { decide } from './support/iam-simulator';
import { logicalIdOf } from './support/synth';
import { CfnTemplate, TemplateResolver, TEST_ACCOUNT } from './support/template-resolver';

const REGION = 'eu-central-1';
const OPENAI = { openai: { kind: 'openai' as const, baseUrl: 'https://api.openai.com' } };
const guardrailArn = (id: string, region = REGION, account = TEST_ACCOUNT) => `arn:aws:bedrock:${region}:${account}:guardrail/${id}`;

function cell(bedrockGuardrails: string[] | undefined, id = 'Stack') {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, id, { env: { region: REGION, account: TEST_ACCOUNT } });
  return { stack, cell: new RegionalRouter(stack, 'Cell', { providers: OPENAI, ...(bedrockGuardrails ? { bedrockGuardrails } : {}) }) };
}

describe('grantApplyBedrockGuardrails on the router role', () => {
  const { stack, cell: c } = cell(['gr7xk2abc9', 'second1', 'gr7xk2abc9']);
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

  test('one statement on the router role: bedrock:ApplyGuardrail on the listed guardrails (deduplicated) of this region and account, region pinned', () => {
    template.hasResourceProperties('AWS::IAM::Policy', {
      Roles: [{ Ref: logicalIdOf(c.routerRole) }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          {
            Effect: 'Allow',
            Action: 'bedrock:ApplyGuardrail',
            Resource: [
              { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:bedrock:${REGION}:${TEST_ACCOUNT}:guardrail/gr7xk2abc9`]] },
              { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, `:bedrock:${REGION}:${TEST_ACCOUNT}:guardrail/second1`]] },
            ],
            Condition: { StringEquals: { 'aws:RequestedRegion': REGION } },
          },
        ]),
      },
    });
    const statements = Object.values(json.Resources)
      .filter((r) => r.Type === 'AWS::IAM::Policy')
      .flatMap((r) => (r.Properties as { PolicyDocument: { Statement: Array<{ Action: unknown }> } }).PolicyDocument.Statement)
      .filter((s) => JSON.stringify(s.Action).includes('bedrock:'));
    expect(statements).toHaveLength(1);
  });

  test('IAM simulation: the router may apply the listed guardrails here, nothing else', async () => {
    expect(await may(c.routerRole, 'bedrock:ApplyGuardrail', guardrailArn('gr7xk2abc9'))).toBe('Allowed');
    expect(await may(c.routerRole, 'bedrock:ApplyGuardrail', guardrailArn('second1'))).toBe('Allowed');
    // Another guardrail, another region's or account's guardrail of the same id, another requested region.
    expect(await may(c.routerRole, 'bedrock:ApplyGuardrail', guardrailArn('other9'))).toBe('ImplicitlyDenied');
    expect(await may(c.routerRole, 'bedrock:ApplyGuardrail', guardrailArn('gr7xk2abc9', 'us-east-1'), 'us-east-1')).toBe('ImplicitlyDenied');
    expect(await may(c.routerRole, 'bedrock:ApplyGuardrail', guardrailArn('gr7xk2abc9', REGION, '999999999999'))).toBe('ImplicitlyDenied');
    expect(await may(c.routerRole, 'bedrock:ApplyGuardrail', guardrailArn('gr7xk2abc9'), 'us-east-1')).toBe('ImplicitlyDenied');
    // No guardrail management, and no model invocation from this grant.
    expect(await may(c.routerRole, 'bedrock:UpdateGuardrail', guardrailArn('gr7xk2abc9'))).toBe('ImplicitlyDenied');
    expect(await may(c.routerRole, 'bedrock:GetGuardrail', guardrailArn('gr7xk2abc9'))).toBe('ImplicitlyDenied');
    expect(await may(c.routerRole, 'bedrock:InvokeModel', `arn:aws:bedrock:${REGION}::foundation-model/amazon.nova-lite-v1:0`)).toBe('ImplicitlyDenied');
  });

  test('the vault and admin roles may apply no guardrail', async () => {
    for (const role of [c.vaultRole, c.adminRole]) expect(await may(role, 'bedrock:ApplyGuardrail', guardrailArn('gr7xk2abc9'))).toBe('ImplicitlyDenied');
  });
});

test('a cell without bedrockGuardrails grants no guardrail action', () => {
  const { stack } = cell(undefined, 'NoGuardrails');
  expect(JSON.stringify(Template.fromStack(stack).toJSON())).not.toContain('bedrock:ApplyGuardrail');
});

test.each([['arn:aws:bedrock:us-east-1:111122223333:guardrail/abc123'], ['ABC'], ['a/b'], ['']])('bedrockGuardrails refuses %j at synthesis', (bad) => {
  expect(() => cell([bad], 'Bad')).toThrow(/RegionalRouterProps.bedrockGuardrails: '.*' is not a Bedrock guardrail id/);
});
