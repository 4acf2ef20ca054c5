/**
 * Tenant-held keys (bring your own key), proven with the IAM policy simulator: the cell's role
 * policies (synthesized with `tenantKeyAccounts`) against the tenant's key policy exactly as the
 * README shows it. Cross-account: both sides must allow.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Annotations, Match, Template } from 'aws-cdk-lib/assertions';
import { RegionalRouterStack } from '../../lib';
import { decide } from './support/iam-simulator';
import { newTestApp, REPO_ROOT } from './support/synth';
import { CfnTemplate, TemplateResolver, TEST_ACCOUNT } from './support/template-resolver';
import { kmsContextVars } from './support/kms-context';

const REGION = 'eu-central-1';
const TENANT_ACCOUNT = '444455556666';
const PROVIDERS = { openai: { kind: 'openai', baseUrl: 'https://api.openai.com/v1' } } as const;
const TENANT_KEY = `arn:aws:kms:${REGION}:${TENANT_ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;

function synth(tenantKeyAccounts?: string[]) {
  const { app } = newTestApp();
  const stack = new RegionalRouterStack(app, 'Cell', { env: { region: REGION, account: TEST_ACCOUNT }, providers: PROVIDERS, ...(tenantKeyAccounts ? { tenantKeyAccounts } : {}) });
  const template = Template.fromStack(stack);
  const resolver = new TemplateResolver(template.toJSON() as CfnTemplate, REGION, stack.stackName, TEST_ACCOUNT);
  const id = (c: { node: { defaultChild?: unknown } }) => stack.getLogicalId(c.node.defaultChild as never);
  return { stack, template, resolver, id };
}

/** The tenant's key policy from the README, with this test's values. */
function readmeKeyPolicy(roles: { router: string; vault: string }, tenantId = 'acme'): unknown {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const block = /<!-- tenant-key-policy -->\s*```json\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error('README: no tenant key policy block after <!-- tenant-key-policy -->');
  const text = block[1]
    .replaceAll('<TENANT_ACCOUNT>', TENANT_ACCOUNT)
    .replaceAll('<ROUTER_ROLE_ARN>', roles.router)
    .replaceAll('<VAULT_ROLE_ARN>', roles.vault)
    .replaceAll('<REGION>', REGION)
    .replaceAll('<TENANT_ID>', tenantId);
  return JSON.parse(text);
}

const context = (overrides: Record<string, string | undefined> = {}) => kmsContextVars(REGION, overrides);

const cell = synth([TENANT_ACCOUNT]);
const r = cell.stack.router;
const roleIds = { router: cell.id(r.routerRole), vault: cell.id(r.vaultRole), admin: cell.id(r.adminRole), migration: cell.id(r.rootKeyMigrationRole) };
const roleArn = (k: keyof typeof roleIds) => cell.resolver.arnOf(roleIds[k]);
const policy = readmeKeyPolicy({ router: roleArn('router'), vault: roleArn('vault') });

function as(role: keyof typeof roleIds, action: string, opts: { ctx?: Record<string, string | string[]>; key?: string; keyPolicy?: unknown; of?: typeof cell } = {}) {
  const c = opts.of ?? cell;
  const id = { router: c.id(c.stack.router.routerRole), vault: c.id(c.stack.router.vaultRole), admin: c.id(c.stack.router.adminRole), migration: c.id(c.stack.router.rootKeyMigrationRole) }[role];
  const key = opts.key ?? TENANT_KEY;
  return decide({
    principal: c.resolver.arnOf(id),
    identityPolicies: c.resolver.identityPolicies(id),
    action,
    resourceArn: key,
    accountId: key.split(':')[4],
    resourcePolicy: opts.keyPolicy ?? policy,
    context: opts.ctx ?? context(),
  });
}

describe("tenant-held key: the tenant's key policy (README) and the cell's roles", () => {
  test('the router may Decrypt and the vault GenerateDataKey for the tenant the key policy names', async () => {
    expect(await as('router', 'kms:Decrypt')).toBe('Allowed');
    expect(await as('vault', 'kms:GenerateDataKey')).toBe('Allowed');
  });

  test('not for another tenant, region or app, nor with an extra context key', async () => {
    for (const ctx of [context({ tenant: 'other' }), context({ region: 'us-east-1' }), context({ app: 'x' }), context({ purpose: 'export' }), context({ tenant: undefined })]) {
      expect(await as('router', 'kms:Decrypt', { ctx })).not.toBe('Allowed');
      expect(await as('vault', 'kms:GenerateDataKey', { ctx })).not.toBe('Allowed');
    }
  });

  test('each role only its one action; the admin and migration roles nothing', async () => {
    for (const action of ['kms:GenerateDataKey', 'kms:ReEncryptFrom', 'kms:Encrypt', 'kms:CreateGrant']) expect([action, await as('router', action)]).toEqual([action, 'ImplicitlyDenied']);
    for (const action of ['kms:Decrypt', 'kms:ReEncryptFrom', 'kms:Encrypt', 'kms:CreateGrant']) expect([action, await as('vault', action)]).toEqual([action, 'ImplicitlyDenied']);
    for (const role of ['admin', 'migration'] as const) {
      for (const action of ['kms:Decrypt', 'kms:GenerateDataKey', 'kms:ReEncryptFrom', 'kms:ReEncryptTo']) expect([role, action, await as(role, action)]).toEqual([role, action, 'ImplicitlyDenied']);
    }
  });

  test('revoked: once the tenant removes the cell statements, the router and vault are denied', async () => {
    const revoked = { ...(policy as { Statement: { Sid: string }[] }), Statement: (policy as { Statement: { Sid: string }[] }).Statement.filter((s) => s.Sid === 'TenantAdministersItsKey') };
    expect(await as('router', 'kms:Decrypt', { keyPolicy: revoked })).not.toBe('Allowed');
    expect(await as('vault', 'kms:GenerateDataKey', { keyPolicy: revoked })).not.toBe('Allowed');
  });

  test('a key of the allowed account in another region is unusable, whatever its policy says', async () => {
    const open = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' }] };
    const elsewhere = TENANT_KEY.replace(`:${REGION}:`, ':us-east-1:');
    expect(await as('router', 'kms:Decrypt', { key: elsewhere, keyPolicy: open, ctx: context({ region: 'us-east-1' }) })).not.toBe('Allowed');
    expect(await as('router', 'kms:Decrypt', { key: elsewhere, keyPolicy: open })).not.toBe('Allowed');
  });

  test('a key of an account the cell does not allow is unusable, and without the prop no tenant key is', async () => {
    const open = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: '*' }, Action: 'kms:*', Resource: '*' }] };
    expect(await as('router', 'kms:Decrypt', { key: TENANT_KEY.replace(TENANT_ACCOUNT, '999988887777'), keyPolicy: open })).not.toBe('Allowed');
    const without = synth();
    expect(await as('router', 'kms:Decrypt', { of: without })).not.toBe('Allowed');
    expect(await as('vault', 'kms:GenerateDataKey', { of: without })).not.toBe('Allowed');
  });
});

describe('tenant-held key: synth-time guards', () => {
  test('the residency and key-separation guards accept the tenant-key grants', () => {
    expect(Annotations.fromStack(cell.stack).findError('*', Match.stringLikeRegexp('Residency|Key separation'))).toEqual([]);
  });

  test('the residency guard rejects a grant on a tenant key of another region', () => {
    const { app } = newTestApp();
    const stack = new RegionalRouterStack(app, 'Cell', { env: { region: REGION, account: TEST_ACCOUNT }, providers: PROVIDERS, tenantKeyAccounts: [TENANT_ACCOUNT] });
    iam.Grant.addToPrincipal({ grantee: stack.router.routerRole, actions: ['kms:Decrypt'], resourceArns: [TENANT_KEY.replace(`:${REGION}:`, ':us-east-1:')] });
    expect(Annotations.fromStack(stack).findError('*', Match.stringLikeRegexp('Residency violation.*us-east-1'))).not.toEqual([]);
  });

  test('tenantKeyAccounts must be account ids', () => {
    expect(() => synth(['not-an-account'])).toThrow(/12-digit AWS account id/);
  });
});
