/**
 * The construct's grants, its API resource policy and the declared second decryptor, proven with
 * the IAM policy simulator over the synthesized template (same approach as iam-simulation.test.ts).
 */
import { App, Stack } from 'aws-cdk-lib';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { RegionalRouter } from '../../lib';
import { Decision, decide } from './support/iam-simulator';
import { logicalIdOf } from './support/synth';
import { CfnTemplate, TemplateResolver, TEST_ACCOUNT } from './support/template-resolver';

const REGION = 'eu-central-1';
const OTHER_ACCOUNT = '999988887777';

const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
const stack = new Stack(app, 'Grants', { env: { region: REGION, account: TEST_ACCOUNT } });
const role = (id: string) => new iam.Role(stack, id, { assumedBy: new iam.AccountRootPrincipal() });
const operator = role('Operator');
const bystander = role('Bystander');
const auditor = role('Auditor');
const keyAdmin = role('KeyAdmin');
const breakGlass = role('BreakGlass');
const cell = new RegionalRouter(stack, 'Cell', {
  providers: { openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' } },
  adminPrincipals: [new iam.ArnPrincipal(`arn:aws:iam::${TEST_ACCOUNT}:role/platform-admin`)],
  additionalDecryptors: [{ principal: breakGlass, reason: 'Break-glass recovery of tenant secrets under dual control' }],
});
cell.grantInvokeAdminApi(operator);
cell.grantReadAuditTrail(auditor);
cell.grantKeyAdministration(keyAdmin);
// A same-account role whose own IAM policy allows every API call, but which is not on the admin list.
bystander.addToPolicy(new iam.PolicyStatement({ actions: ['execute-api:Invoke'], resources: ['*'] }));

const template = Template.fromStack(stack).toJSON() as CfnTemplate;
const resolver = new TemplateResolver(template, REGION, stack.stackName, TEST_ACCOUNT);
const apiId = logicalIdOf(cell.api);
const rootKey = logicalIdOf(cell.rootKey);
const storageKey = logicalIdOf(cell.storageKey);
const id = (r: iam.Role) => logicalIdOf(r);

/** API Gateway expands `execute-api:/…` in a resource policy to the API's own ARN. */
function apiPolicy(): unknown {
  const policy = resolver.resolve(template.Resources[apiId].Properties!.Policy);
  return JSON.parse(JSON.stringify(policy).replace(/"execute-api:\//g, `"arn:aws:execute-api:${REGION}:${TEST_ACCOUNT}:${apiId}/`));
}

function invoke(principal: string, identityPolicies: { name: string; policy: unknown }[], pathAndMethod: string): Promise<Decision> {
  const account = principal.split(':')[4];
  return decide({
    principal,
    identityPolicies,
    action: 'execute-api:Invoke',
    resourceArn: `arn:aws:execute-api:${REGION}:${TEST_ACCOUNT}:${apiId}/prod/${pathAndMethod}`,
    accountId: TEST_ACCOUNT,
    resourcePolicy: apiPolicy(),
    context: { 'aws:PrincipalArn': principal, 'aws:PrincipalAccount': account },
  });
}

function kms(r: iam.Role, action: string, key: string, context: Record<string, string | string[]> = {}): Promise<Decision> {
  return decide({
    principal: resolver.arnOf(id(r)),
    identityPolicies: resolver.identityPolicies(id(r)),
    action,
    resourceArn: resolver.arnOf(key),
    accountId: TEST_ACCOUNT,
    resourcePolicy: resolver.keyPolicy(key),
    context,
  });
}

const CELL_CONTEXT = {
  'kms:EncryptionContext:app': 'sovereign-router',
  'kms:EncryptionContext:region': REGION,
  'kms:EncryptionContext:tenant': 'acme',
  'kms:EncryptionContext:provider': 'openai',
  'kms:EncryptionContext:secret': 'default',
  'kms:EncryptionContext:version': '1',
  'kms:EncryptionContextKeys': ['app', 'region', 'tenant', 'provider', 'secret', 'version'],
};

test('the template synthesizes without key-separation errors (the declared decryptor is a warning)', () => {
  expect(Annotations.fromStack(stack).findError('*', Match.anyValue())).toEqual([]);
  expect(Annotations.fromStack(stack).findWarning('*', Match.stringLikeRegexp('Key separation weakened on purpose')).length).toBe(1);
});

describe('/admin resource policy', () => {
  test('a granted operator may call /admin', async () => {
    expect(await invoke(resolver.arnOf(id(operator)), resolver.identityPolicies(id(operator)), 'GET/admin/tenants/acme/usage')).toBe('Allowed');
  });

  test('a same-account role allowed by its own IAM policy but not on the admin list is denied by the resource policy', async () => {
    expect(await invoke(resolver.arnOf(id(bystander)), resolver.identityPolicies(id(bystander)), 'DELETE/admin/tenants/acme')).toBe('ExplicitlyDenied');
  });

  test('the listed principal still needs IAM permission: the resource policy allows nothing on /admin by itself', async () => {
    expect(await invoke(`arn:aws:iam::${TEST_ACCOUNT}:role/platform-admin`, [], 'GET/admin/tenants')).toBe('ImplicitlyDenied');
  });

  test('a principal of another account is denied /admin even with IAM permission', async () => {
    const allowAll = [{ name: 'all', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'execute-api:Invoke', Resource: '*' }] } }];
    expect(await invoke(`arn:aws:iam::${OTHER_ACCOUNT}:role/platform-admin`, allowAll, 'GET/admin/tenants')).toBe('ExplicitlyDenied');
  });

  test('tenant routes stay reachable (tokens are checked in the function)', async () => {
    const allowAll = [{ name: 'all', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: 'execute-api:Invoke', Resource: '*' }] } }];
    expect(await invoke(`arn:aws:iam::${OTHER_ACCOUNT}:role/app`, allowAll, 'POST/v1/chat/completions')).toBe('Allowed');
    expect(await invoke(resolver.arnOf(id(bystander)), [], 'GET/console')).toBe('Allowed');
  });
});

describe('key grants', () => {
  test('grantKeyAdministration: may rewrite the policy and schedule deletion of both keys, never use them', async () => {
    for (const key of [rootKey, storageKey]) {
      expect(await kms(keyAdmin, 'kms:PutKeyPolicy', key)).toBe('Allowed');
      expect(await kms(keyAdmin, 'kms:ScheduleKeyDeletion', key)).toBe('Allowed');
      for (const action of ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:CreateGrant', 'kms:ReEncryptFrom']) {
        expect([key, action, await kms(keyAdmin, action, key, CELL_CONTEXT)]).not.toEqual([key, action, 'Allowed']);
      }
    }
  });

  test('grantReadAuditTrail: storage key through DynamoDB only, nothing on the root key', async () => {
    expect(await kms(auditor, 'kms:Decrypt', storageKey, { 'kms:ViaService': `dynamodb.${REGION}.amazonaws.com`, 'kms:CallerAccount': TEST_ACCOUNT })).toBe('Allowed');
    expect(await kms(auditor, 'kms:Decrypt', storageKey, { 'kms:ViaService': `secretsmanager.${REGION}.amazonaws.com`, 'kms:CallerAccount': TEST_ACCOUNT })).not.toBe('Allowed');
    expect(await kms(auditor, 'kms:Decrypt', storageKey, { 'kms:CallerAccount': TEST_ACCOUNT })).not.toBe('Allowed');
    expect(await kms(auditor, 'kms:Decrypt', rootKey, CELL_CONTEXT)).not.toBe('Allowed');
  });

  test('the declared break-glass decryptor may Decrypt with the cell context only, and nothing else', async () => {
    expect(await kms(breakGlass, 'kms:Decrypt', rootKey, CELL_CONTEXT)).toBe('Allowed');
    expect(await kms(breakGlass, 'kms:Decrypt', rootKey, { ...CELL_CONTEXT, 'kms:EncryptionContext:region': 'us-east-1' })).not.toBe('Allowed');
    expect(await kms(breakGlass, 'kms:GenerateDataKey', rootKey, CELL_CONTEXT)).not.toBe('Allowed');
    expect(await kms(breakGlass, 'kms:PutKeyPolicy', rootKey)).not.toBe('Allowed');
  });

  test('roles with no grant (the operator) cannot touch either key', async () => {
    expect(await kms(operator, 'kms:Decrypt', rootKey, CELL_CONTEXT)).not.toBe('Allowed');
    expect(await kms(operator, 'kms:PutKeyPolicy', rootKey)).not.toBe('Allowed');
  });
});
