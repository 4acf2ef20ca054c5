/**
 * Account-level guards: EventBridge rules on CloudTrail management events touching the cell's
 * keys, functions and roles, each sent to the alarm topic. The rendered patterns are evaluated
 * against realistic CloudTrail events with moto's EventBridge pattern engine (no AWS).
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as signer from 'aws-cdk-lib/aws-signer';
import * as sns from 'aws-cdk-lib/aws-sns';
import { RegionalRouter, RoleChangeGuard } from '../../lib';
import { REPO_ROOT, SynthesizedApp, logicalIdOf, synthApp } from './support/synth';
import { TemplateResolver, TEST_ACCOUNT } from './support/template-resolver';

const PYTHON = path.join(REPO_ROOT, '.venv', 'bin', 'python');
const MATCHER = path.join(__dirname, 'support', 'event-pattern-match.py');

function matches(pattern: unknown, events: unknown[]): boolean[] {
  const out = execFileSync(PYTHON, [MATCHER], { input: JSON.stringify({ pattern, events }), encoding: 'utf8' });
  return (JSON.parse(out) as { matches: boolean[] }).matches;
}

function cloudTrail(source: string, eventName: string, requestParameters: Record<string, unknown>, userIdentity: Record<string, unknown> = { type: 'AssumedRole' }) {
  return {
    version: '0',
    id: 'e1',
    'detail-type': 'AWS API Call via CloudTrail',
    source: `aws.${source}`,
    account: TEST_ACCOUNT,
    region: 'eu-central-1',
    time: '2026-12-01T12:00:00Z',
    resources: [],
    detail: { eventSource: `${source}.amazonaws.com`, eventName, requestParameters, userIdentity },
  };
}

let synth: SynthesizedApp;
beforeAll(() => {
  synth = synthApp();
});
afterAll(() => synth.cleanup());

function cell(region: string) {
  const c = synth.cells.get(region)!;
  const template = c.template.toJSON() as { Resources: Record<string, { Type: string; Properties: Record<string, unknown> }> };
  const resolver = new TemplateResolver(template as never, region, c.stack.stackName);
  const rules = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::Events::Rule');
  const rule = (idPart: string) => {
    const found = rules.filter(([id]) => id.includes(idPart));
    if (found.length !== 1) throw new Error(`${found.length} rules named like ${idPart} in ${region}`);
    return found[0][1].Properties;
  };
  const pattern = (idPart: string) => resolver.resolve(rule(idPart).EventPattern);
  const r = c.stack.router;
  return {
    c,
    rules,
    rule,
    pattern,
    rootKey: { id: logicalIdOf(r.rootKey), arn: resolver.arnOf(logicalIdOf(r.rootKey)) },
    storageKey: { id: logicalIdOf(r.storageKey), arn: resolver.arnOf(logicalIdOf(r.storageKey)) },
    functions: [r.routerFunction, r.vaultFunction, r.adminFunction].map((f) => logicalIdOf(f)),
    roles: [r.routerRole, r.vaultRole, r.adminRole].map((x) => logicalIdOf(x)),
    topic: logicalIdOf(r.alarmTopic),
  };
}

describe.each(['eu-central-1', 'us-east-1'])('guards of the %s cell', (region) => {
  test('every rule is enabled and targets the cell alarm topic', () => {
    const x = cell(region);
    expect(x.rules.length).toBe(region === 'us-east-1' ? 7 : 6);
    for (const [, r] of x.rules) {
      expect(r.Properties.State).toBe('ENABLED');
      expect(r.Properties.Targets).toEqual([expect.objectContaining({ Arn: { Ref: x.topic } })]);
    }
    // EventBridge may publish to the topic.
    const policies = Object.values(x.c.template.findResources('AWS::SNS::TopicPolicy'));
    expect(JSON.stringify(policies)).toContain('events.amazonaws.com');
  });

  test('key rules fire on PutKeyPolicy, DisableKey, ScheduleKeyDeletion of either key (by id or ARN), not on other keys or reads', () => {
    const x = cell(region);
    const p = x.pattern('KeyChanges');
    const events = [
      cloudTrail('kms', 'PutKeyPolicy', { keyId: x.rootKey.id, policyName: 'default' }),
      cloudTrail('kms', 'PutKeyPolicy', { keyId: x.rootKey.arn, policyName: 'default' }),
      cloudTrail('kms', 'DisableKey', { keyId: x.storageKey.id }),
      cloudTrail('kms', 'ScheduleKeyDeletion', { keyId: x.rootKey.arn, pendingWindowInDays: 7 }),
      cloudTrail('kms', 'DisableKeyRotation', { keyId: x.rootKey.id }),
      cloudTrail('kms', 'PutKeyPolicy', { keyId: 'some-other-key' }),
      cloudTrail('kms', 'Decrypt', { keyId: x.rootKey.arn }),
      cloudTrail('kms', 'DescribeKey', { keyId: x.rootKey.id }),
    ];
    expect(matches(p, events)).toEqual([true, true, true, true, true, false, false, false]);
  });

  test('CreateGrant on the root key fires whoever calls; on the storage key only when no AWS service made it', () => {
    const x = cell(region);
    const root = x.pattern('SecretKeyGrants');
    const storage = x.pattern('StorageKeyGrants');
    const byService = { type: 'AWSService', invokedBy: 'dynamodb.amazonaws.com' };
    const events = [
      cloudTrail('kms', 'CreateGrant', { keyId: x.rootKey.arn, operations: ['Decrypt'] }),
      cloudTrail('kms', 'CreateGrant', { keyId: x.rootKey.id }, byService),
      cloudTrail('kms', 'CreateGrant', { keyId: x.storageKey.arn }),
      cloudTrail('kms', 'CreateGrant', { keyId: x.storageKey.arn }, byService),
    ];
    const rootOrStorage = matches(root, events).map((m, i) => m || matches(storage, events)[i]);
    expect(rootOrStorage).toEqual([true, true, true, false]);
  });

  test('function rule fires on code, configuration and permission changes of each cell function, by name or ARN, not on other functions or invokes', () => {
    const x = cell(region);
    const p = x.pattern('FunctionChanges');
    const fnArn = (name: string) => `arn:aws:lambda:${region}:${TEST_ACCOUNT}:function:${name}`;
    const positives = x.functions.flatMap((fn) => [
      cloudTrail('lambda', 'UpdateFunctionCode20150331v2', { functionName: fn }),
      cloudTrail('lambda', 'UpdateFunctionConfiguration20150331v2', { functionName: fnArn(fn) }),
      cloudTrail('lambda', 'AddPermission20150331v2', { functionName: `${fn}:live` }),
      cloudTrail('lambda', 'PutFunctionConcurrency20171031', { functionName: `${TEST_ACCOUNT}:function:${fn}` }),
    ]);
    const negatives = [
      cloudTrail('lambda', 'UpdateFunctionCode20150331v2', { functionName: 'someone-elses-function' }),
      cloudTrail('lambda', 'GetFunction20150331v2', { functionName: x.functions[0] }),
      cloudTrail('lambda', 'Invoke', { functionName: x.functions[0] }),
    ];
    expect(matches(p, [...positives, ...negatives])).toEqual([...positives.map(() => true), ...negatives.map(() => false)]);
  });

  test('erasure-key table: a backup, PITR, stream or replica change, or a new or removed resource policy, fires; other tables and reads do not', () => {
    const x = cell(region);
    const resolver = new TemplateResolver(x.c.template.toJSON() as never, region, x.c.stack.stackName);
    const erasure = logicalIdOf(x.c.stack.router.tables.erasure);
    const tenants = logicalIdOf(x.c.stack.router.tables.tenants);
    const byName = x.pattern('NoCopyTableChanges');
    const named = [
      cloudTrail('dynamodb', 'UpdateContinuousBackups', { tableName: erasure, pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true } }),
      cloudTrail('dynamodb', 'CreateBackup', { tableName: erasure, backupName: 'copy' }),
      cloudTrail('dynamodb', 'UpdateTable', { tableName: erasure, streamSpecification: { streamEnabled: true } }),
      cloudTrail('dynamodb', 'CreateBackup', { tableName: tenants, backupName: 'nightly' }),
      cloudTrail('dynamodb', 'DescribeTable', { tableName: erasure }),
    ];
    expect(matches(byName, named)).toEqual([true, true, true, false, false]);
    const byArn = x.pattern('NoCopyTablePolicy');
    const policy = [
      cloudTrail('dynamodb', 'DeleteResourcePolicy', { resourceArn: resolver.arnOf(erasure) }),
      cloudTrail('dynamodb', 'PutResourcePolicy', { resourceArn: resolver.arnOf(erasure), policy: '{}' }),
      cloudTrail('dynamodb', 'PutResourcePolicy', { resourceArn: resolver.arnOf(tenants), policy: '{}' }),
      cloudTrail('dynamodb', 'GetResourcePolicy', { resourceArn: resolver.arnOf(erasure) }),
    ];
    expect(matches(byArn, policy)).toEqual([true, true, false, false]);
  });
});

test('the us-east-1 cell watches policy and trust changes of its three roles; the EU cell says where to put that rule', () => {
  const us = cell('us-east-1');
  const p = us.pattern('RoleChanges');
  const events = [
    ...us.roles.map((role) => cloudTrail('iam', 'PutRolePolicy', { roleName: role, policyName: 'x' })),
    cloudTrail('iam', 'UpdateAssumeRolePolicy', { roleName: us.roles[0] }),
    cloudTrail('iam', 'AttachRolePolicy', { roleName: us.roles[1], policyArn: 'arn:aws:iam::aws:policy/AdministratorAccess' }),
    cloudTrail('iam', 'DeleteRolePermissionsBoundary', { roleName: us.roles[2] }),
    cloudTrail('iam', 'PutRolePolicy', { roleName: 'unrelated-role' }),
    cloudTrail('iam', 'GetRole', { roleName: us.roles[0] }),
  ];
  expect(matches(p, events)).toEqual([true, true, true, true, true, true, false, false]);

  const eu = synth.cells.get('eu-central-1')!;
  expect(Annotations.fromStack(eu.stack).findWarning('*', Match.stringLikeRegexp('IAM events reach EventBridge only in us-east-1')).length).toBe(1);
});

test('RoleChangeGuard refuses any region but us-east-1', () => {
  const app = new App();
  const stack = new Stack(app, 'G', { env: { region: 'eu-west-1' } });
  const topic = new sns.Topic(stack, 'T');
  expect(() => new RoleChangeGuard(stack, 'R', { roles: [iam.Role.fromRoleName(stack, 'Role', 'x')], alarmTopic: topic })).toThrow(/us-east-1/);
});

describe('code signing and permissions boundary (props)', () => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Signed', { env: { region: 'eu-central-1' } });
  const profile = new signer.SigningProfile(stack, 'Profile', { platform: signer.Platform.AWS_LAMBDA_SHA384_ECDSA });
  const csc = new lambda.CodeSigningConfig(stack, 'Csc', { signingProfiles: [profile], untrustedArtifactOnDeployment: lambda.UntrustedArtifactOnDeployment.ENFORCE });
  const boundary = new iam.ManagedPolicy(stack, 'Boundary', { statements: [new iam.PolicyStatement({ actions: ['*'], resources: ['*'] })] });
  new RegionalRouter(stack, 'Cell', {
    providers: { openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' } },
    codeSigningConfig: csc,
    rolePermissionsBoundary: boundary,
  });
  const template = Template.fromStack(stack);

  test('every cell function uses the code signing configuration', () => {
    const fns = Object.values(template.findResources('AWS::Lambda::Function'));
    expect(fns).toHaveLength(4);
    for (const f of fns) expect(f.Properties.CodeSigningConfigArn).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^Csc/), 'CodeSigningConfigArn'] });
  });

  test('every cell role carries the permissions boundary', () => {
    const roles = Object.values(template.findResources('AWS::IAM::Role'));
    expect(roles.length).toBeGreaterThanOrEqual(3);
    for (const r of roles) expect(r.Properties.PermissionsBoundary).toEqual({ Ref: expect.stringMatching(/^Boundary/) });
  });

  test('without the props, neither is set', () => {
    const plain = Template.fromStack(synth.stacks[0]);
    for (const f of Object.values(plain.findResources('AWS::Lambda::Function'))) expect(f.Properties.CodeSigningConfigArn).toBeUndefined();
    for (const r of Object.values(plain.findResources('AWS::IAM::Role'))) expect(r.Properties.PermissionsBoundary).toBeUndefined();
  });
});

test('keys, functions and roles added to the cell later are watched too (e.g. an audit key added by another construct)', () => {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, 'Later', { env: { region: 'us-east-1', account: TEST_ACCOUNT } });
  const cell = new RegionalRouter(stack, 'Cell', { providers: { openai: { kind: 'openai', baseUrl: 'https://api.openai.com' } } });
  const auditKey = new kms.Key(cell, 'AuditMacKey', { keySpec: kms.KeySpec.HMAC_256, keyUsage: kms.KeyUsage.GENERATE_VERIFY_MAC });
  const extraRole = new iam.Role(cell, 'ExtraRole', { assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com') });
  const extraFn = new lambda.Function(cell, 'ExtraFn', { runtime: lambda.Runtime.NODEJS_22_X, handler: 'index.handler', code: lambda.Code.fromInline('exports.handler=()=>{}'), role: extraRole });
  const template = Template.fromStack(stack);
  const rules = Object.entries(template.findResources('AWS::Events::Rule'));
  const pattern = (part: string) => JSON.stringify(rules.find(([id]) => id.includes(part))![1].Properties.EventPattern);
  const ref = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);
  expect(pattern('SecretKeyGrants')).toContain(ref(auditKey));
  expect(pattern('KeyChanges')).toContain(ref(auditKey));
  expect(pattern('StorageKeyGrants')).not.toContain(ref(auditKey));
  expect(pattern('SecretKeyGrants')).not.toContain(ref(cell.storageKey));
  expect(pattern('FunctionChanges')).toContain(ref(extraFn));
  expect(pattern('RoleChanges')).toContain(ref(extraRole));
  // Each resource is listed once.
  expect(pattern('SecretKeyGrants').split(`"Ref":"${ref(cell.rootKey)}"`).length - 1).toBe(1);
});
