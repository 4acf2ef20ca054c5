/**
 * RegionalRouterProps.keyLifecycle, proven with the IAM policy simulator over the synthesized
 * template: with it, the admin role may Decrypt and GenerateDataKey on the root key with the
 * cell's encryption context only (no other region, no other key action); without it, it may not.
 */
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { RegionalRouter } from '../../lib';
import { decide } from './support/iam-simulator';
import { logicalIdOf } from './support/synth';
import { CfnTemplate, TemplateResolver, TEST_ACCOUNT } from './support/template-resolver';

const REGION = 'eu-central-1';

function cell(keyLifecycle: boolean) {
  const app = new App({ context: { 'aws:cdk:bundling-stacks': [] } });
  const stack = new Stack(app, `KeyLifecycle${keyLifecycle ? 'On' : 'Off'}`, { env: { region: REGION, account: TEST_ACCOUNT } });
  const c = new RegionalRouter(stack, 'Cell', { providers: { openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' } }, keyLifecycle });
  const template = Template.fromStack(stack).toJSON() as CfnTemplate;
  const resolver = new TemplateResolver(template, REGION, stack.stackName, TEST_ACCOUNT);
  const rootKey = logicalIdOf(c.rootKey);
  return (role: 'admin' | 'vault' | 'router', action: string, region = REGION) => {
    const r = logicalIdOf(role === 'admin' ? c.adminRole : role === 'vault' ? c.vaultRole : c.routerRole);
    return decide({
      principal: resolver.arnOf(r),
      identityPolicies: resolver.identityPolicies(r),
      action,
      resourceArn: resolver.arnOf(rootKey),
      accountId: TEST_ACCOUNT,
      resourcePolicy: resolver.keyPolicy(rootKey),
      context: {
        'kms:EncryptionContext:app': 'sovereign-router',
        'kms:EncryptionContext:region': region,
        'kms:EncryptionContext:tenant': 'acme',
        'kms:EncryptionContext:provider': 'openai',
        'kms:EncryptionContext:secret': 'default',
        'kms:EncryptionContext:version': '2',
        'kms:EncryptionContextKeys': ['app', 'region', 'tenant', 'provider', 'secret', 'version'],
      },
    });
  };
}

const on = cell(true);
const off = cell(false);

test('keyLifecycle on: the admin role may Decrypt and GenerateDataKey with the cell context, nothing else, nowhere else', async () => {
  expect(await on('admin', 'kms:Decrypt')).toBe('Allowed');
  expect(await on('admin', 'kms:GenerateDataKey')).toBe('Allowed');
  expect(await on('admin', 'kms:Decrypt', 'us-east-1')).not.toBe('Allowed');
  expect(await on('admin', 'kms:GenerateDataKey', 'us-east-1')).not.toBe('Allowed');
  for (const action of ['kms:Encrypt', 'kms:ReEncryptFrom', 'kms:CreateGrant', 'kms:GenerateDataKeyWithoutPlaintext']) expect(await on('admin', action)).not.toBe('Allowed');
  // The other roles keep their single action.
  expect(await on('vault', 'kms:Decrypt')).not.toBe('Allowed');
  expect(await on('router', 'kms:GenerateDataKey')).not.toBe('Allowed');
});

test('keyLifecycle off (the default): the admin role has no root-key action', async () => {
  expect(await off('admin', 'kms:Decrypt')).not.toBe('Allowed');
  expect(await off('admin', 'kms:GenerateDataKey')).not.toBe('Allowed');
  expect(await off('router', 'kms:Decrypt')).toBe('Allowed');
  expect(await off('vault', 'kms:GenerateDataKey')).toBe('Allowed');
});
