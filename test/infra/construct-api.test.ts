/**
 * The construct's public API in the aws-cdk-lib style: grants, metrics, typed props with defaults,
 * and no member that weakens the key separation by accident (KeySeparationGuard reports the rest).
 */
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { RegionalRouter, RegionalRouterProps, KeyHierarchy, RegionalRouterStack } from '../../lib';

const PROVIDERS = { openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' } } as const;

function cellStack(props: Partial<RegionalRouterProps> = {}, extra?: (stack: Stack, cell: RegionalRouter) => void) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'S', { env: { region: 'eu-central-1', account: '111122223333' } });
  const cell = new RegionalRouter(stack, 'Cell', { providers: PROVIDERS, ...props });
  extra?.(stack, cell);
  return { app, stack, cell };
}

const errorsOf = (stack: Stack) => Annotations.fromStack(stack).findError('*', Match.anyValue()).map((e) => String(e.entry.data));
const warningsOf = (stack: Stack) => Annotations.fromStack(stack).findWarning('*', Match.anyValue()).map((e) => String(e.entry.data));

type Statement = { Sid?: string; Effect: string; Action: string | string[]; Resource?: unknown; Principal?: unknown; Condition?: Record<string, unknown> };
const list = (v: string | string[]) => (Array.isArray(v) ? v : [v]);

function identityStatements(template: Template, roleLogicalIdPrefix: string): Statement[] {
  const policies = template.findResources('AWS::IAM::Policy');
  return Object.values(policies)
    .filter((p) => JSON.stringify(p.Properties.Roles).includes(roleLogicalIdPrefix))
    .flatMap((p) => p.Properties.PolicyDocument.Statement as Statement[]);
}

function keyPolicies(template: Template): Statement[][] {
  return Object.values(template.findResources('AWS::KMS::Key')).map((k) => k.Properties.KeyPolicy.Statement as Statement[]);
}

describe('defaults of the props', () => {
  const { stack } = cellStack();
  const template = Template.fromStack(stack);

  test('reserved concurrency: router capped at 100, vault and admin keep 5 and 2, root-key migration 1', () => {
    const fns = Object.values(template.findResources('AWS::Lambda::Function')).map((f) => [f.Properties.MemorySize, f.Properties.ReservedConcurrentExecutions]);
    expect(fns.sort()).toEqual([[1024, 100], [512, 2], [512, 5], [512, 1]].sort());
  });

  test('stage prod; no error, and outside us-east-1 only the warning that IAM events need a us-east-1 rule', () => {
    template.hasResourceProperties('AWS::ApiGateway::Stage', { StageName: 'prod' });
    expect(errorsOf(stack)).toEqual([]);
    expect(warningsOf(stack)).toEqual([expect.stringMatching(/^IAM events reach EventBridge only in us-east-1/)]);
  });

  test('a WAF web ACL rejects Content-Length over 1 MiB with 413, associated with the stage', () => {
    template.hasResourceProperties('AWS::WAFv2::WebACL', {
      Scope: 'REGIONAL',
      DefaultAction: { Allow: {} },
      Rules: [
        Match.objectLike({
          Action: { Block: { CustomResponse: { ResponseCode: 413, CustomResponseBodyKey: 'RequestTooLarge' } } },
          Statement: { RegexMatchStatement: Match.objectLike({ FieldToMatch: { SingleHeader: { Name: 'content-length' } }, RegexString: Match.stringLikeRegexp('1048') }) },
          VisibilityConfig: Match.objectLike({ SampledRequestsEnabled: false }),
        }),
      ],
      VisibilityConfig: Match.objectLike({ SampledRequestsEnabled: false }),
    });
    template.resourceCountIs('AWS::WAFv2::WebACLAssociation', 1);
  });

  test('the API resource policy opens the tenant routes and denies /admin to other accounts, without an Allow on /admin', () => {
    const api = Object.values(template.findResources('AWS::ApiGateway::RestApi'))[0];
    const statements = api.Properties.Policy.Statement as Statement[];
    const allow = statements.find((s) => s.Effect === 'Allow')!;
    expect(allow.Principal).toEqual({ AWS: '*' });
    expect(allow.Resource).toEqual(expect.arrayContaining(['execute-api:/*/*/v1/*', 'execute-api:/*/*/vault/*']));
    expect(JSON.stringify(allow.Resource)).not.toContain('admin');
    const deny = statements.filter((s) => s.Effect === 'Deny');
    expect(deny).toHaveLength(1);
    expect(deny[0].Resource).toEqual(['execute-api:/*/*/admin', 'execute-api:/*/*/admin/*']);
    expect(deny[0].Condition).toEqual({ StringNotEquals: { 'aws:PrincipalAccount': '111122223333' } });
  });
});

describe('props change what they say', () => {
  test('memory, concurrency and stage name', () => {
    const { stack } = cellStack({ memory: { router: 2048 }, concurrency: { router: 40, vault: 3 }, stageName: 'live' });
    const template = Template.fromStack(stack);
    const fns = Object.values(template.findResources('AWS::Lambda::Function')).map((f) => [f.Properties.MemorySize, f.Properties.ReservedConcurrentExecutions]);
    expect(fns.sort()).toEqual([[2048, 40], [512, 2], [512, 3], [512, 1]].sort());
    template.hasResourceProperties('AWS::ApiGateway::Stage', { StageName: 'live' });
  });

  test('reserveConcurrency: false reserves nothing; requestSizeWebAcl: false creates no web ACL', () => {
    const template = Template.fromStack(cellStack({ reserveConcurrency: false, requestSizeWebAcl: false }).stack);
    for (const f of Object.values(template.findResources('AWS::Lambda::Function'))) expect(f.Properties.ReservedConcurrentExecutions).toBeUndefined();
    template.resourceCountIs('AWS::WAFv2::WebACL', 0);
    template.resourceCountIs('AWS::WAFv2::WebACLAssociation', 0);
  });

  test('an own webAclArn replaces the size ACL', () => {
    const arn = 'arn:aws:wafv2:eu-central-1:111122223333:regional/webacl/mine/abc';
    const template = Template.fromStack(cellStack({ webAclArn: arn }).stack);
    template.resourceCountIs('AWS::WAFv2::WebACL', 0);
    template.hasResourceProperties('AWS::WAFv2::WebACLAssociation', { WebACLArn: arn });
  });

  test.each([
    [{ memory: { router: 64 } }, /memory.router/],
    [{ concurrency: { vault: 0 } }, /concurrency.vault/],
    [{ concurrency: { router: 2.5 } }, /concurrency.router/],
    [{ stageName: 'bad stage' }, /stageName/],
  ] as [Partial<RegionalRouterProps>, RegExp][])('invalid props fail with a clear message: %j', (props, message) => {
    expect(() => cellStack(props)).toThrow(message);
  });
});

describe('grants', () => {
  test('grantInvokeAdminApi: execute-api:Invoke on /admin/* of the stage, and joins the resource-policy allow list', () => {
    const { stack } = cellStack({ adminPrincipals: [new iam.ArnPrincipal('arn:aws:iam::111122223333:role/ops')] }, (s, cell) => {
      cell.grantInvokeAdminApi(new iam.Role(s, 'Operator', { assumedBy: new iam.AccountRootPrincipal() }));
    });
    const template = Template.fromStack(stack);
    const st = identityStatements(template, 'Operator');
    expect(st).toHaveLength(1);
    expect(st[0].Action).toBe('execute-api:Invoke');
    expect(JSON.stringify(st[0].Resource)).toContain('/prod/*/admin/*');
    const deny = (Object.values(template.findResources('AWS::ApiGateway::RestApi'))[0].Properties.Policy.Statement as Statement[]).filter((s) => s.Effect === 'Deny');
    expect(deny).toHaveLength(2);
    const listed = deny.find((s) => s.Condition?.ArnNotLike)!;
    const arns = (listed.Condition!.ArnNotLike as Record<string, unknown[]>)['aws:PrincipalArn'];
    expect(arns).toEqual(['arn:aws:iam::111122223333:role/ops', { 'Fn::GetAtt': [expect.stringMatching(/^Operator/), 'Arn'] }]);
    expect(errorsOf(stack)).toEqual([]);
  });

  test('grantReadUsage (usage + counters) / grantReadAuditTrail (audit): reads of those tables only, storage key through DynamoDB only, nothing on the root key', () => {
    const { stack, cell } = cellStack({}, (s, c) => {
      c.grantReadUsage(new iam.Role(s, 'Finance', { assumedBy: new iam.AccountRootPrincipal() }));
      c.grantReadAuditTrail(new iam.Role(s, 'Auditor', { assumedBy: new iam.AccountRootPrincipal() }));
    });
    const template = Template.fromStack(stack);
    const rootKeyId = stack.getLogicalId(cell.rootKey.node.defaultChild as kms.CfnKey);
    const tableId = (t: { node: { defaultChild?: unknown } }) => stack.getLogicalId(t.node.defaultChild as never);
    const usageIds = [tableId(cell.usageTable), tableId(cell.countersTable)];
    const auditIds = [tableId(cell.auditTable)];
    for (const [role, tables, others] of [['Finance', usageIds, auditIds], ['Auditor', auditIds, usageIds]] as const) {
      const st = identityStatements(template, role);
      const actions = st.flatMap((s) => list(s.Action));
      expect(actions.filter((a) => a.startsWith('dynamodb:')).sort()).toEqual(['dynamodb:BatchGetItem', 'dynamodb:DescribeTable', 'dynamodb:GetItem', 'dynamodb:Query']);
      expect(actions.filter((a) => a.startsWith('kms:')).sort()).toEqual(['kms:Decrypt', 'kms:DescribeKey']);
      const text = JSON.stringify(st);
      for (const t of tables) expect(text).toContain(t);
      for (const t of [...others, tableId(cell.tenantsTable), tableId(cell.tokensTable)]) expect(text).not.toContain(t);
      expect(text).not.toContain(rootKeyId);
      const kmsStatement = st.find((s) => list(s.Action).includes('kms:Decrypt'))!;
      expect(kmsStatement.Condition).toEqual({ StringEquals: { 'kms:ViaService': ['dynamodb.eu-central-1.amazonaws.com'] } });
    }
    expect(errorsOf(stack)).toEqual([]);
  });

  test('grantKeyAdministration: administration of both keys in both key policies, no cryptographic action', () => {
    const { stack, cell } = cellStack({}, (s, c) => c.grantKeyAdministration(new iam.Role(s, 'KeyAdmin', { assumedBy: new iam.AccountRootPrincipal() })));
    const template = Template.fromStack(stack);
    const keys = template.findResources('AWS::KMS::Key');
    const cellKeys = [cell.rootKey, cell.storageKey].map((k) => stack.getLogicalId(k.node.defaultChild as kms.CfnKey));
    for (const statements of cellKeys.map((id) => keys[id].Properties.KeyPolicy.Statement as Statement[])) {
      const mine = statements.filter((s) => JSON.stringify(s.Principal).includes('KeyAdmin'));
      expect(mine).toHaveLength(1);
      expect(list(mine[0].Action)).toEqual(expect.arrayContaining(['kms:PutKeyPolicy', 'kms:ScheduleKeyDeletion', 'kms:DescribeKey']));
      expect(list(mine[0].Action).filter((a) => /Decrypt|Encrypt|GenerateDataKey|CreateGrant|kms:\*/.test(a))).toEqual([]);
    }
    expect(errorsOf(stack)).toEqual([]);
  });
});

describe('key separation cannot be weakened by accident', () => {
  test('the public rootKey has no grant methods in its type; calling one anyway (plain JS) fails synth', () => {
    const { stack } = cellStack({}, (s, cell) => {
      const role = new iam.Role(s, 'Sneaky', { assumedBy: new iam.AccountRootPrincipal() });
      (cell.rootKey as unknown as kms.IKey).grantDecrypt(role);
    });
    const errors = errorsOf(stack);
    expect(errors).toEqual([expect.stringMatching(/^Key separation: IAM policy S\/Sneaky\/DefaultPolicy\/Resource grants kms:Decrypt on the root key/)]);
  });

  test('an escape-hatch key policy statement is reported, with its actions', () => {
    const { stack } = cellStack({}, (_s, cell) => {
      (cell.rootKey as unknown as kms.Key).addToResourcePolicy(
        new iam.PolicyStatement({ sid: 'Mine', principals: [new iam.AccountRootPrincipal()], actions: ['kms:Decrypt', 'kms:CreateGrant'], resources: ['*'] }),
      );
    });
    expect(errorsOf(stack)).toEqual([expect.stringMatching(/statement Mine grants kms:Decrypt, kms:CreateGrant outside the separation of duties/)]);
  });

  test('a CloudFormation property override that adds kms:* is reported', () => {
    const { stack } = cellStack({}, (_s, cell) => {
      const cfn = cell.rootKey.node.defaultChild as kms.CfnKey;
      cfn.addPropertyOverride('KeyPolicy.Statement.0.Action', ['kms:*']);
    });
    expect(errorsOf(stack)).toEqual([expect.stringMatching(/KeyAdministrationWithoutUse grants kms:\* outside/)]);
  });

  test('a second grantOpenSecrets or grantSealSecrets on a hierarchy throws', () => {
    const app = new App();
    const stack = new Stack(app, 'K', { env: { region: 'eu-central-1' } });
    const keys = new KeyHierarchy(stack, 'Keys');
    const role = (id: string) => new iam.Role(stack, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    keys.grantOpenSecrets(role('Router'));
    keys.grantSealSecrets(role('Vault'));
    expect(() => keys.grantOpenSecrets(role('Other'))).toThrow(/already called.*additionalDecryptors/);
    expect(() => keys.grantSealSecrets(role('Other2'))).toThrow(/already called/);
  });

  test('additionalDecryptors: an explicit opt-in that lands in the key policy and is reported as a warning on every synth', () => {
    const breakGlass = new iam.ArnPrincipal('arn:aws:iam::111122223333:role/break-glass');
    const { stack } = cellStack({ additionalDecryptors: [{ principal: breakGlass, reason: 'Incident response can re-seal secrets after a router outage' }] });
    const root = keyPolicies(Template.fromStack(stack)).find((st) => st.some((s) => s.Sid?.startsWith('OpenSecrets')))!;
    const extra = root.filter((s) => s.Sid?.startsWith('AdditionalDecryptor'));
    expect(extra).toHaveLength(1);
    expect(extra[0]).toMatchObject({ Action: 'kms:Decrypt', Principal: { AWS: 'arn:aws:iam::111122223333:role/break-glass' } });
    expect(extra[0].Condition).toMatchObject({ StringEquals: { 'kms:EncryptionContext:region': 'eu-central-1' } });
    expect(warningsOf(stack).filter((w) => w.startsWith('Key separation'))).toEqual([
      expect.stringMatching(/Key separation weakened on purpose: .*break-glass.*Incident response/),
    ]);
    expect(errorsOf(stack)).toEqual([]);
  });

  test('an additional decryptor without a real reason is refused', () => {
    expect(() => cellStack({ additionalDecryptors: [{ principal: new iam.AccountRootPrincipal(), reason: 'because' }] })).toThrow(/reason/);
  });
});

describe('the cell applies the residency guard itself', () => {
  test('a multi-Region key inside a composed cell fails synth without any aspect added by the user', () => {
    const { stack } = cellStack({}, (_s, cell) => {
      new kms.Key(cell, 'Replicated', { multiRegion: true });
    });
    expect(errorsOf(stack)).toEqual([expect.stringMatching(/Residency violation in eu-central-1: S\/Cell\/Replicated.*multi-Region/)]);
  });

  test('in a RegionalRouterStack (which adds the guard too) a violation is reported once', () => {
    const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
    const stack = new RegionalRouterStack(app, 'R', { env: { region: 'eu-central-1' }, providers: PROVIDERS });
    new kms.Key(stack.router, 'Replicated', { multiRegion: true });
    expect(errorsOf(stack)).toHaveLength(1);
  });
});

describe('metrics', () => {
  const { stack, cell } = cellStack();
  const render = (m: { toMetricConfig(): unknown }) => stack.resolve(m.toMetricConfig()) as { metricStat: { namespace: string; metricName: string; statistic: string; dimensions?: { name: string; value: string }[] } };

  test.each([
    ['metricDenials', 'Requests', 'Sum', { Region: 'eu-central-1', Decision: 'denied' }],
    ['metricUpstreamFailures', 'Requests', 'Sum', { Region: 'eu-central-1', Decision: 'failed' }],
    ['metricLatency', 'Latency', 'p95', { Region: 'eu-central-1' }],
    ['metricTimeToFirstToken', 'TimeToFirstToken', 'p95', { Region: 'eu-central-1' }],
  ] as const)('%s: %s (%s) in the SovereignRouter namespace', (method, name, stat, dims) => {
    const m = render(cell[method]());
    expect(m.metricStat.namespace).toBe('SovereignRouter');
    expect(m.metricStat.metricName).toBe(name);
    expect(m.metricStat.statistic).toBe(stat);
    expect(Object.fromEntries((m.metricStat.dimensions ?? []).map((d) => [d.name, d.value]))).toEqual(dims);
  });

  test('metricErrors and metricApiServerErrors come from Lambda and API Gateway; options override defaults', () => {
    expect(render(cell.metricErrors()).metricStat).toMatchObject({ namespace: 'AWS/Lambda', metricName: 'Errors' });
    expect(render(cell.metricApiServerErrors()).metricStat).toMatchObject({ namespace: 'AWS/ApiGateway', metricName: '5XXError', statistic: 'Sum' });
    expect(render(cell.metricLatency({ statistic: 'p50' })).metricStat.statistic).toBe('p50');
  });
});

describe('keyLifecycle (factor rotation and mode conversion in the cell)', () => {
  test('off by default: the admin role has no root-key action and no KEY_LIFECYCLE variable', () => {
    const { stack } = cellStack();
    const t = Template.fromStack(stack);
    const root = keyPolicies(t).find((st) => st.some((s) => s.Sid?.startsWith('OpenSecrets')))!;
    expect(root.filter((s) => s.Sid?.startsWith('KeyLifecycle'))).toEqual([]);
    const fns = Object.values(t.findResources('AWS::Lambda::Function')) as { Properties: { Environment?: { Variables?: Record<string, unknown> } } }[];
    expect(fns.filter((f) => f.Properties.Environment?.Variables?.KEY_LIFECYCLE !== undefined)).toEqual([]);
    expect(warningsOf(stack).filter((w) => w.includes('key lifecycle'))).toEqual([]);
  });

  test('on: only the admin role gets Decrypt and GenerateDataKey, bound to the cell context; the guard accepts it and synth warns', () => {
    const { stack, cell } = cellStack({ keyLifecycle: true });
    const t = Template.fromStack(stack);
    const root = keyPolicies(t).find((st) => st.some((s) => s.Sid?.startsWith('OpenSecrets')))!;
    const lifecycle = root.filter((s) => s.Sid?.startsWith('KeyLifecycle'));
    expect(lifecycle).toHaveLength(1);
    expect(list(lifecycle[0].Action).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    expect(lifecycle[0].Principal).toEqual({ AWS: stack.resolve(cell.adminRole.roleArn) });
    expect(lifecycle[0].Condition).toMatchObject({
      StringEquals: { 'kms:EncryptionContext:region': 'eu-central-1', 'kms:EncryptionContext:app': 'sovereign-router' },
    });
    const admin = t.findResources('AWS::Lambda::Function', { Properties: { Role: stack.resolve(cell.adminRole.roleArn) } });
    expect(Object.values(admin).map((f) => (f as { Properties: { Environment: { Variables: Record<string, unknown> } } }).Properties.Environment.Variables.KEY_LIFECYCLE)).toEqual(['enabled']);
    expect(warningsOf(stack).filter((w) => w.includes('key lifecycle'))).toEqual([expect.stringMatching(/Key separation weakened on purpose: .* kms:Decrypt and kms:GenerateDataKey .*factor rotation/)]);
    expect(errorsOf(stack)).toEqual([]);
  });

  test('a second grantKeyLifecycle, or one without a reason, is refused', () => {
    const app = new App();
    const stack = new Stack(app, 'K', { env: { region: 'eu-central-1' } });
    const keys = new KeyHierarchy(stack, 'Keys');
    const role = (id: string) => new iam.Role(stack, id, { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
    expect(() => keys.grantKeyLifecycle(role('A'), 'short')).toThrow(/reason/);
    keys.grantKeyLifecycle(role('B'), 'maintenance window for a factor rotation');
    expect(() => keys.grantKeyLifecycle(role('C'), 'maintenance window for a factor rotation')).toThrow(/already called/);
  });
});
