/**
 * Crypto-shredding permissions, proven with the IAM policy simulator over the synthesized template:
 * who may read, create and destroy tenant erasure keys, and that no principal (an account
 * administrator with dynamodb:* included) may make a copy of the erasure-key table.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import * as iam from 'aws-cdk-lib/aws-iam';
import { RegionalRouter } from '../../lib';
import { ERASURE_KEY_DENIED_COPY_ACTIONS } from '../../lib/private/iam-actions';
import { Decision, decide } from './support/iam-simulator';
import { logicalIdOf } from './support/synth';
import { CfnTemplate, TemplateResolver, TEST_ACCOUNT } from './support/template-resolver';

const REGION = 'eu-central-1';
const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
const stack = new Stack(app, 'Erasure', { env: { region: REGION, account: TEST_ACCOUNT } });
const accountAdmin = new iam.Role(stack, 'AccountAdmin', { assumedBy: new iam.AccountRootPrincipal() });
accountAdmin.addToPolicy(new iam.PolicyStatement({ actions: ['dynamodb:*', 'backup:*'], resources: ['*'] }));
const cell = new RegionalRouter(stack, 'Cell', { providers: { openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' } } });

const template = Template.fromStack(stack).toJSON() as CfnTemplate;
const resolver = new TemplateResolver(template, REGION, stack.stackName, TEST_ACCOUNT);
const erasureTable = logicalIdOf(cell.tables.erasure);
const tenantsTable = logicalIdOf(cell.tables.tenants);
const roles = { router: cell.routerRole, vault: cell.vaultRole, admin: cell.adminRole, migration: cell.rootKeyMigrationRole, accountAdmin } as const;

function onTable(who: keyof typeof roles, action: string, table = erasureTable): Promise<Decision> {
  const roleId = logicalIdOf(roles[who]);
  const policy = template.Resources[table].Properties!.ResourcePolicy as { PolicyDocument?: unknown } | undefined;
  return decide({
    principal: resolver.arnOf(roleId),
    identityPolicies: resolver.identityPolicies(roleId),
    action,
    resourceArn: resolver.arnOf(table),
    accountId: TEST_ACCOUNT,
    resourcePolicy: policy?.PolicyDocument === undefined ? undefined : resolver.resolve(policy.PolicyDocument),
  });
}

const ITEM_ACTIONS = ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:Scan', 'dynamodb:Query'];

describe('erasure-key table: who may do what', () => {
  it.each([
    ['router', ['dynamodb:GetItem', 'dynamodb:BatchGetItem']],
    ['vault', ['dynamodb:GetItem', 'dynamodb:PutItem']],
    ['admin', ['dynamodb:DeleteItem']],
    ['migration', []],
  ] as const)('%s holds exactly %j on it', async (who, allowed) => {
    for (const action of ITEM_ACTIONS) {
      expect([action, await onTable(who, action)]).toEqual([action, (allowed as readonly string[]).includes(action) ? 'Allowed' : 'ImplicitlyDenied']);
    }
  });

  it('no function role, and not even an account administrator with dynamodb:*, may back it up, turn PITR on, export or restore it', async () => {
    for (const who of Object.keys(roles) as (keyof typeof roles)[]) {
      for (const action of ERASURE_KEY_DENIED_COPY_ACTIONS) {
        expect([who, action, await onTable(who, action)]).toEqual([who, action, 'ExplicitlyDenied']);
      }
    }
    // The administrator's reads and writes are not what the policy is about: they stay allowed.
    expect(await onTable('accountAdmin', 'dynamodb:GetItem')).toBe('Allowed');
  });

  it('the control: the backed-up tables can be backed up by the administrator', async () => {
    expect(await onTable('accountAdmin', 'dynamodb:CreateBackup', tenantsTable)).toBe('Allowed');
    expect(await onTable('accountAdmin', 'dynamodb:UpdateContinuousBackups', tenantsTable)).toBe('Allowed');
  });
});

describe('with keyLifecycle on (the admin function reseals for factor changes)', () => {
  const app2 = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack2 = new Stack(app2, 'ErasureLifecycle', { env: { region: REGION, account: TEST_ACCOUNT } });
  const cell2 = new RegionalRouter(stack2, 'Cell', { providers: { openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' } }, keyLifecycle: true });
  const t2 = Template.fromStack(stack2).toJSON() as CfnTemplate;
  const r2 = new TemplateResolver(t2, REGION, stack2.stackName, TEST_ACCOUNT);

  it('the admin role also reads and creates erasure keys (a reseal needs the key), and still cannot copy the table', async () => {
    const roleId = logicalIdOf(cell2.adminRole);
    const table = logicalIdOf(cell2.tables.erasure);
    const policy = t2.Resources[table].Properties!.ResourcePolicy as { PolicyDocument: unknown };
    const decision = (action: string) =>
      decide({
        principal: r2.arnOf(roleId),
        identityPolicies: r2.identityPolicies(roleId),
        action,
        resourceArn: r2.arnOf(table),
        accountId: TEST_ACCOUNT,
        resourcePolicy: r2.resolve(policy.PolicyDocument as never),
      });
    for (const [action, expected] of [
      ['dynamodb:GetItem', 'Allowed'],
      ['dynamodb:PutItem', 'Allowed'],
      ['dynamodb:DeleteItem', 'Allowed'],
      ['dynamodb:UpdateItem', 'ImplicitlyDenied'],
      ['dynamodb:Scan', 'ImplicitlyDenied'],
      ['dynamodb:CreateBackup', 'ExplicitlyDenied'],
    ] as const) {
      expect([action, await decision(action)]).toEqual([action, expected]);
    }
  });
});
