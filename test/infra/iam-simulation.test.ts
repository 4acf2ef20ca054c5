/**
 * Separation of duties, proven with an IAM policy simulator over the synthesized key policies
 * and role policies (KMS semantics: identity policies count only where the key policy trusts
 * the account).
 */
import { CfnElement, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { IConstruct } from 'constructs';
import { RegionalRouterStack } from '../../lib';
import { ENCRYPTION_CONTEXT_KEYS } from '../../lambda/core/canonical';
import { Decision, decide, validatedDecision } from './support/iam-simulator';
import { SynthesizedApp, synthApp } from './support/synth';
import { CfnTemplate, TemplateResolver, TEST_ACCOUNT } from './support/template-resolver';


interface Cell {
  region: string;
  resolver: TemplateResolver;
  rootKey: string;
  storageKey: string;
  roles: { router: string; vault: string; admin: string };
  allRoles: string[];
}

function logicalId(stack: Stack, construct: IConstruct): string {
  return stack.getLogicalId(construct.node.defaultChild as CfnElement);
}

function cellOf(stack: RegionalRouterStack): Cell {
  const template = Template.fromStack(stack).toJSON() as CfnTemplate;
  const resolver = new TemplateResolver(template, stack.region, stack.stackName, TEST_ACCOUNT);
  const r = stack.router;
  return {
    region: stack.region,
    resolver,
    rootKey: logicalId(stack, r.rootKey),
    storageKey: logicalId(stack, r.storageKey),
    roles: { router: logicalId(stack, r.routerRole), vault: logicalId(stack, r.vaultRole), admin: logicalId(stack, r.adminRole) },
    allRoles: resolver.logicalIdsOfType('AWS::IAM::Role'),
  };
}

function contextFor(region: string, overrides: Record<string, string | undefined> = {}): Record<string, string | string[]> {
  const pairs: Record<string, string | undefined> = {
    app: 'sovereign-router',
    region,
    tenant: 'acme',
    provider: 'openai',
    secret: 'default',
    version: '1',
    ...overrides,
  };
  const vars: Record<string, string | string[]> = {};
  const keys: string[] = [];
  for (const [k, v] of Object.entries(pairs)) {
    if (v === undefined) continue;
    vars[`kms:EncryptionContext:${k}`] = v;
    keys.push(k);
  }
  vars['kms:EncryptionContextKeys'] = keys;
  return vars;
}

function simulate(opts: {
  principal: string;
  identityPolicies: { name: string; policy: unknown }[];
  action: string;
  keyArn: string;
  keyPolicy: unknown;
  context?: Record<string, string | string[]>;
}): Promise<Decision> {
  return decide({ ...opts, resourceArn: opts.keyArn, accountId: TEST_ACCOUNT, resourcePolicy: opts.keyPolicy });
}

/** A role of `cell` calling `action` on a key of `keyCell`. */
function asRole(cell: Cell, role: string, action: string, keyCell: Cell, key: 'rootKey' | 'storageKey', context?: Record<string, string | string[]>) {
  return simulate({
    principal: cell.resolver.arnOf(role),
    identityPolicies: cell.resolver.identityPolicies(role),
    action,
    keyArn: keyCell.resolver.arnOf(keyCell[key]),
    keyPolicy: keyCell.resolver.keyPolicy(keyCell[key]),
    context,
  });
}

const CRYPTO_ACTIONS = [
  'kms:Decrypt',
  'kms:Encrypt',
  'kms:GenerateDataKey',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
  'kms:CreateGrant',
];

let eu: Cell;
let us: Cell;

let synthesized: SynthesizedApp;
beforeAll(() => {
  // The same context as `cdk synth` (cdk.json), so the simulated policies are the deployed ones.
  synthesized = synthApp();
  eu = cellOf(synthesized.cells.get('eu-central-1')!.stack);
  us = cellOf(synthesized.cells.get('us-east-1')!.stack);
});
afterAll(() => synthesized?.cleanup());

describe('root key: only the router opens secrets, only in its own region', () => {
  test('the router may Decrypt with its own region in the encryption context', async () => {
    expect(await asRole(eu, eu.roles.router, 'kms:Decrypt', eu, 'rootKey', contextFor('eu-central-1'))).toBe('Allowed');
    expect(await asRole(us, us.roles.router, 'kms:Decrypt', us, 'rootKey', contextFor('us-east-1'))).toBe('Allowed');
  });

  test.each([
    ['another region in the context', { region: 'us-east-1' }],
    ['another app in the context', { app: 'someone-else' }],
    ['no region in the context', { region: undefined }],
    ['an unexpected context key', { purpose: 'export' }],
  ])('the router may not Decrypt with %s', async (_why, overrides) => {
    expect(await asRole(eu, eu.roles.router, 'kms:Decrypt', eu, 'rootKey', contextFor('eu-central-1', overrides))).not.toBe('Allowed');
  });

  test('the router may not Decrypt without any encryption context', async () => {
    expect(await asRole(eu, eu.roles.router, 'kms:Decrypt', eu, 'rootKey', {})).not.toBe('Allowed');
  });

  test('the router has no other cryptographic action on the root key', async () => {
    for (const action of CRYPTO_ACTIONS.filter((a) => a !== 'kms:Decrypt')) {
      expect([action, await asRole(eu, eu.roles.router, action, eu, 'rootKey', contextFor('eu-central-1'))]).not.toEqual([action, 'Allowed']);
    }
  });

  test('the eu-central-1 router cannot use the us-east-1 root key, whatever the context', async () => {
    for (const region of ['eu-central-1', 'us-east-1']) {
      expect(await asRole(eu, eu.roles.router, 'kms:Decrypt', us, 'rootKey', contextFor(region))).not.toBe('Allowed');
    }
    expect(await asRole(us, us.roles.router, 'kms:Decrypt', eu, 'rootKey', contextFor('us-east-1'))).not.toBe('Allowed');
  });

  test('no role in the stack but the router can Decrypt with the root key', async () => {
    const allowed: string[] = [];
    for (const role of eu.allRoles) {
      if ((await asRole(eu, role, 'kms:Decrypt', eu, 'rootKey', contextFor('eu-central-1'))) === 'Allowed') allowed.push(role);
    }
    expect(allowed).toEqual([eu.roles.router]);
  });
});

describe('root key: the vault seals but never opens', () => {
  test('the vault may GenerateDataKey with its region in the context', async () => {
    expect(await asRole(eu, eu.roles.vault, 'kms:GenerateDataKey', eu, 'rootKey', contextFor('eu-central-1'))).toBe('Allowed');
  });

  test('the vault may not GenerateDataKey for another region', async () => {
    expect(await asRole(eu, eu.roles.vault, 'kms:GenerateDataKey', eu, 'rootKey', contextFor('us-east-1'))).not.toBe('Allowed');
  });

  test('the vault may not Decrypt, nor any other cryptographic action', async () => {
    for (const action of CRYPTO_ACTIONS.filter((a) => a !== 'kms:GenerateDataKey')) {
      expect([action, await asRole(eu, eu.roles.vault, action, eu, 'rootKey', contextFor('eu-central-1'))]).not.toEqual([action, 'Allowed']);
    }
  });
});

describe('root key: admin and key administrators have no cryptographic use', () => {
  test('the admin role has no cryptographic action on the root key', async () => {
    for (const action of CRYPTO_ACTIONS) {
      expect([action, await asRole(eu, eu.roles.admin, action, eu, 'rootKey', contextFor('eu-central-1'))]).not.toEqual([action, 'Allowed']);
    }
  });

  // A key administrator: an IAM role of the account with full IAM permissions (AdministratorAccess).
  const adminPrincipal = `arn:aws:iam::${TEST_ACCOUNT}:role/KeyAdministrator`;
  const administratorAccess = [{ name: 'AdministratorAccess', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } }];
  const asKeyAdmin = (action: string, context?: Record<string, string | string[]>) =>
    simulate({
      principal: adminPrincipal,
      identityPolicies: administratorAccess,
      action,
      keyArn: eu.resolver.arnOf(eu.rootKey),
      keyPolicy: eu.resolver.keyPolicy(eu.rootKey),
      context,
    });

  test('a key administrator can manage the key', async () => {
    for (const action of ['kms:DescribeKey', 'kms:ScheduleKeyDeletion', 'kms:DisableKey', 'kms:EnableKeyRotation', 'kms:TagResource']) {
      expect([action, await asKeyAdmin(action)]).toEqual([action, 'Allowed']);
    }
  });

  test('a key administrator cannot Decrypt, encrypt, generate data keys or create grants', async () => {
    for (const action of CRYPTO_ACTIONS) {
      expect([action, await asKeyAdmin(action, contextFor('eu-central-1'))]).not.toEqual([action, 'Allowed']);
    }
  });

  test('the root key policy does not delegate cryptographic actions to the account root', () => {
    const policy = eu.resolver.keyPolicy(eu.rootKey) as { Statement: { Principal?: { AWS?: unknown }; Action: string | string[] }[] };
    const rootArn = `arn:aws:iam::${TEST_ACCOUNT}:root`;
    for (const st of policy.Statement) {
      const principals = [st.Principal?.AWS].flat();
      if (!principals.includes(rootArn)) continue;
      const actions = [st.Action].flat();
      for (const action of actions) {
        expect(action).not.toMatch(/^kms:(\*|Decrypt|Encrypt|GenerateDataKey|ReEncrypt|CreateGrant|Create\*)/);
      }
    }
  });
});

test('limitation of the simulator: its validating entry point ignores kms:EncryptionContext:<key>', async () => {
  // If this starts failing, the simulator fixed it: drop the workaround in support/iam-simulator.ts.
  const role = `arn:aws:iam::${TEST_ACCOUNT}:role/R`;
  const input = {
    principal: role,
    identityPolicies: [],
    action: 'kms:Decrypt',
    resourceArn: `arn:aws:kms:eu-central-1:${TEST_ACCOUNT}:key/K`,
    accountId: TEST_ACCOUNT,
    context: { 'kms:EncryptionContext:region': 'eu-central-1' },
    resourcePolicy: {
      Version: '2012-10-17',
      Statement: [
        {
          Effect: 'Allow',
          Principal: { AWS: role },
          Action: 'kms:Decrypt',
          Resource: '*',
          Condition: { StringEquals: { 'kms:EncryptionContext:region': 'eu-central-1' } },
        },
      ],
    },
  };
  expect(await validatedDecision(input)).toBe('ImplicitlyDenied');
  expect(await decide(input)).toBe('Allowed');
  expect(await decide({ ...input, context: { 'kms:EncryptionContext:region': 'us-east-1' } })).toBe('ImplicitlyDenied');
});

describe('storage key: usable only through DynamoDB and Secrets Manager', () => {
  const via = (service: string, region = 'eu-central-1') => ({ 'kms:ViaService': `${service}.${region}.amazonaws.com`, 'kms:CallerAccount': TEST_ACCOUNT });

  test('functions use the storage key through DynamoDB and Secrets Manager in their region', async () => {
    for (const role of [eu.roles.router, eu.roles.vault, eu.roles.admin]) {
      expect(await asRole(eu, role, 'kms:Decrypt', eu, 'storageKey', via('dynamodb'))).toBe('Allowed');
      expect(await asRole(eu, role, 'kms:Decrypt', eu, 'storageKey', via('secretsmanager'))).toBe('Allowed');
    }
  });

  test('functions cannot use the storage key directly or through another service or region', async () => {
    expect(await asRole(eu, eu.roles.router, 'kms:Decrypt', eu, 'storageKey', { 'kms:CallerAccount': TEST_ACCOUNT })).not.toBe('Allowed');
    expect(await asRole(eu, eu.roles.router, 'kms:Decrypt', eu, 'storageKey', via('s3'))).not.toBe('Allowed');
    expect(await asRole(eu, eu.roles.router, 'kms:Decrypt', eu, 'storageKey', via('dynamodb', 'us-east-1'))).not.toBe('Allowed');
  });

  test('the encryption-context keys granted on the root key are exactly the ones the code binds', () => {
    const policy = JSON.stringify(eu.resolver.keyPolicy(eu.rootKey));
    expect(policy).toContain(JSON.stringify([...ENCRYPTION_CONTEXT_KEYS]));
  });
});
