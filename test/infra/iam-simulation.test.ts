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
import { kmsContextVars } from './support/kms-context';


interface Cell {
  region: string;
  resolver: TemplateResolver;
  rootKey: string;
  storageKey: string;
  auditKey: string;
  anchorBucket: string;
  roles: { router: string; vault: string; admin: string; migration: string };
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
    auditKey: logicalId(stack, r.auditKey),
    anchorBucket: logicalId(stack, r.auditAnchorBucket),
    roles: { router: logicalId(stack, r.routerRole), vault: logicalId(stack, r.vaultRole), admin: logicalId(stack, r.adminRole), migration: logicalId(stack, r.rootKeyMigrationRole) },
    allRoles: resolver.logicalIdsOfType('AWS::IAM::Role'),
  };
}

const contextFor = kmsContextVars;

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

describe('audit key: the vault and admin functions MAC events, nobody else can', () => {
  const mac = { 'kms:MacAlgorithm': 'HMAC_SHA_256' };
  const asRoleOnAuditKey = (role: string, action: string, context: Record<string, string> = mac) =>
    simulate({
      principal: eu.resolver.arnOf(role),
      identityPolicies: eu.resolver.identityPolicies(role),
      action,
      keyArn: eu.resolver.arnOf(eu.auditKey),
      keyPolicy: eu.resolver.keyPolicy(eu.auditKey),
      context,
    });

  test('exactly the vault and admin roles may GenerateMac and VerifyMac (HMAC_SHA_256); the root-key migration only appends (GenerateMac)', async () => {
    const expected: Record<string, string[]> = {
      'kms:GenerateMac': [eu.roles.admin, eu.roles.vault, eu.roles.migration],
      'kms:VerifyMac': [eu.roles.admin, eu.roles.vault],
    };
    for (const action of ['kms:GenerateMac', 'kms:VerifyMac']) {
      const allowed: string[] = [];
      for (const role of eu.allRoles) if ((await asRoleOnAuditKey(role, action)) === 'Allowed') allowed.push(role);
      expect([action, allowed.sort()]).toEqual([action, expected[action].sort()]);
    }
  });

  test('not with another MAC algorithm, and no other cryptographic action', async () => {
    expect(await asRoleOnAuditKey(eu.roles.vault, 'kms:GenerateMac', { 'kms:MacAlgorithm': 'HMAC_SHA_512' })).not.toBe('Allowed');
    for (const action of [...CRYPTO_ACTIONS, 'kms:Sign', 'kms:Verify']) {
      for (const role of [eu.roles.vault, eu.roles.admin, eu.roles.router]) {
        expect([action, role, await asRoleOnAuditKey(role, action, {})]).not.toEqual([action, role, 'Allowed']);
      }
    }
  });

  test('an account administrator (AdministratorAccess) cannot use the audit key: the key policy delegates no use to IAM', async () => {
    const admin = {
      principal: `arn:aws:iam::${TEST_ACCOUNT}:role/Administrator`,
      identityPolicies: [{ name: 'AdministratorAccess', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } }],
    };
    for (const action of ['kms:GenerateMac', 'kms:VerifyMac']) {
      expect(await simulate({ ...admin, action, keyArn: eu.resolver.arnOf(eu.auditKey), keyPolicy: eu.resolver.keyPolicy(eu.auditKey), context: mac })).not.toBe('Allowed');
    }
  });

  test('the audit key is a single-Region HMAC_256 key for GENERATE_VERIFY_MAC', () => {
    const key = Template.fromStack(synthesized.cells.get('eu-central-1')!.stack).toJSON().Resources[eu.auditKey].Properties;
    expect(key).toEqual(expect.objectContaining({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC', MultiRegion: false }));
  });
});

describe('anchors: no cell role may delete or overwrite an anchor', () => {
  const anchorArn = () => `${eu.resolver.arnOf(eu.anchorBucket)}/audit-anchors/v1/acme/000000000001.json`;
  const onBucket = (principal: string, identityPolicies: { name: string; policy: unknown }[], action: string, resourceArn: string, context: Record<string, string> = {}) =>
    decide({ principal, identityPolicies, action, resourceArn, accountId: TEST_ACCOUNT, resourcePolicy: eu.resolver.bucketPolicy(eu.anchorBucket), context });
  const asRoleOnBucket = (role: string, action: string, resourceArn = anchorArn(), context: Record<string, string> = {}) =>
    onBucket(eu.resolver.arnOf(role), eu.resolver.identityPolicies(role), action, resourceArn, context);
  const administrator = {
    principal: `arn:aws:iam::${TEST_ACCOUNT}:role/Administrator`,
    policies: [{ name: 'AdministratorAccess', policy: { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }] } }],
  };

  test('only the vault, admin and root-key migration roles (the appenders) may create an anchor, and only with If-None-Match: * (create, never replace)', async () => {
    const allowed: string[] = [];
    for (const role of eu.allRoles) {
      if ((await asRoleOnBucket(role, 's3:PutObject', anchorArn(), { 's3:if-none-match': '*' })) === 'Allowed') allowed.push(role);
    }
    expect(allowed.sort()).toEqual([eu.roles.admin, eu.roles.vault, eu.roles.migration].sort());
  });

  test('a PutObject without If-None-Match (an overwrite) is explicitly denied to every role', async () => {
    for (const role of eu.allRoles) {
      expect([role, await asRoleOnBucket(role, 's3:PutObject')]).toEqual([role, role === eu.roles.vault || role === eu.roles.admin || role === eu.roles.migration ? 'ExplicitlyDenied' : expect.stringMatching(/Denied$/)]);
    }
  });

  test('the vault and admin roles (the verifiers) read every version of the anchors; the router reads none', async () => {
    for (const role of [eu.roles.vault, eu.roles.admin]) {
      expect(await asRoleOnBucket(role, 's3:GetObjectVersion')).toBe('Allowed');
      expect(await asRoleOnBucket(role, 's3:ListBucketVersions', eu.resolver.arnOf(eu.anchorBucket), { 's3:prefix': 'audit-anchors/v1/acme/' })).toBe('Allowed');
      expect(await asRoleOnBucket(role, 's3:ListBucketVersions', eu.resolver.arnOf(eu.anchorBucket), { 's3:prefix': 'other/' })).not.toBe('Allowed');
    }
    expect(await asRoleOnBucket(eu.roles.router, 's3:GetObjectVersion')).not.toBe('Allowed');
  });

  test('no role may write outside the anchor prefix', async () => {
    for (const role of eu.allRoles) {
      expect(await asRoleOnBucket(role, 's3:PutObject', `${eu.resolver.arnOf(eu.anchorBucket)}/elsewhere.json`, { 's3:if-none-match': '*' })).not.toBe('Allowed');
    }
  });

  test.each([
    's3:DeleteObject',
    's3:DeleteObjectVersion',
    's3:PutObjectRetention',
    's3:PutObjectLegalHold',
    's3:BypassGovernanceRetention',
  ])('%s on an anchor is denied to every cell role, and explicitly even to an account administrator', async (action) => {
    for (const role of eu.allRoles) expect([role, await asRoleOnBucket(role, action)]).not.toEqual([role, 'Allowed']);
    expect(await onBucket(administrator.principal, administrator.policies, action, anchorArn())).toBe('ExplicitlyDenied');
  });

  test.each([
    's3:PutBucketPolicy',
    's3:DeleteBucketPolicy',
    's3:PutBucketVersioning',
    's3:PutBucketObjectLockConfiguration',
    's3:PutLifecycleConfiguration',
    's3:DeleteBucket',
  ])('%s on the anchor bucket is denied to every cell role', async (action) => {
    for (const role of eu.allRoles) expect([role, await asRoleOnBucket(role, action, eu.resolver.arnOf(eu.anchorBucket))]).not.toEqual([role, 'Allowed']);
  });

  test('out of scope, stated honestly: an account administrator can replace the bucket policy (then an unconditional put adds a version; Object Lock still keeps the first)', async () => {
    expect(await onBucket(administrator.principal, administrator.policies, 's3:PutBucketPolicy', eu.resolver.arnOf(eu.anchorBucket))).toBe('Allowed');
  });

  test('the bucket has Object Lock in compliance mode, versioning and no public access', () => {
    const bucket = Template.fromStack(synthesized.cells.get('eu-central-1')!.stack).toJSON().Resources[eu.anchorBucket].Properties;
    expect(bucket).toEqual(
      expect.objectContaining({
        ObjectLockEnabled: true,
        ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 365 } } },
        VersioningConfiguration: { Status: 'Enabled' },
        PublicAccessBlockConfiguration: { BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true },
      }),
    );
  });
});

describe('pepper rotation: who may write tokens and the pepper', () => {
  const stack = () => synthesized.cells.get('eu-central-1')!.stack;
  const arn = (c: IConstruct) => eu.resolver.arnOf(logicalId(stack(), c));
  const asRoleOn = (role: string, action: string, resourceArn: string) =>
    decide({ principal: eu.resolver.arnOf(role), identityPolicies: eu.resolver.identityPolicies(role), action, resourceArn, accountId: TEST_ACCOUNT });

  test('only the admin role may put a new pepper version; every function reads it', async () => {
    const allowed: string[] = [];
    for (const role of eu.allRoles) if ((await asRoleOn(role, 'secretsmanager:PutSecretValue', arn(stack().router.pepper))) === 'Allowed') allowed.push(role);
    expect(allowed).toEqual([eu.roles.admin]);
    for (const role of [eu.roles.router, eu.roles.vault, eu.roles.admin]) expect(await asRoleOn(role, 'secretsmanager:GetSecretValue', arn(stack().router.pepper))).toBe('Allowed');
    for (const action of ['secretsmanager:UpdateSecretVersionStage', 'secretsmanager:DeleteSecret', 'secretsmanager:PutResourcePolicy']) {
      expect([action, await asRoleOn(eu.roles.admin, action, arn(stack().router.pepper))]).not.toEqual([action, 'Allowed']);
    }
  });

  test('the router moves a token record (PutItem, DeleteItem on tokens) and writes nothing else of tenants or tokens', async () => {
    const tokens = arn(stack().router.tokensTable);
    const tenants = arn(stack().router.tenantsTable);
    expect(await asRoleOn(eu.roles.router, 'dynamodb:PutItem', tokens)).toBe('Allowed');
    expect(await asRoleOn(eu.roles.router, 'dynamodb:DeleteItem', tokens)).toBe('Allowed');
    for (const action of ['dynamodb:UpdateItem', 'dynamodb:BatchWriteItem', 'dynamodb:Scan']) expect([action, await asRoleOn(eu.roles.router, action, tokens)]).not.toEqual([action, 'Allowed']);
    for (const action of ['dynamodb:PutItem', 'dynamodb:UpdateItem', 'dynamodb:DeleteItem', 'dynamodb:BatchWriteItem']) {
      expect([action, await asRoleOn(eu.roles.router, action, tenants)]).not.toEqual([action, 'Allowed']);
    }
  });

  test('only the admin role may scan the tokens table (pepper status), and only that table', async () => {
    const allowed: string[] = [];
    for (const role of eu.allRoles) if ((await asRoleOn(role, 'dynamodb:Scan', arn(stack().router.tokensTable))) === 'Allowed') allowed.push(role);
    expect(allowed).toEqual([eu.roles.admin]);
    expect(await asRoleOn(eu.roles.admin, 'dynamodb:Scan', arn(stack().router.tenantsTable))).not.toBe('Allowed');
  });
});
