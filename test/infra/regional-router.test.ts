/**
 * The regional cell as synthesized from the default configuration: one stack per region, and in
 * each the key hierarchy, tables, pepper, functions and API that DESIGN.md section 2 requires.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as kms from 'aws-cdk-lib/aws-kms';
import { RegionalRouter, RegionalRouterProps, RegionalRouterStack } from '../../lib';
import { ERASURE_KEY_DENIED_COPY_ACTIONS } from '../../lib/private/iam-actions';
import { NO_BACKUP_TAG } from '../../lib/router-tables';
import { CellUnderTest, SynthesizedApp, logicalIdOf, newTestApp, synthApp } from './support/synth';

type Json = Record<string, unknown>;
interface CfnResource {
  Type: string;
  Properties?: Json;
  DeletionPolicy?: string;
  UpdateReplacePolicy?: string;
}
interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: unknown;
  Action?: string | string[];
  NotAction?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

const EXPECTED_REGIONS = ['eu-central-1', 'us-east-1'];

/** Every concrete KMS action that uses key material or hands out its use. */
const KMS_CRYPTO_ACTIONS = [
  'kms:Decrypt',
  'kms:Encrypt',
  'kms:GenerateDataKey',
  'kms:GenerateDataKeyWithoutPlaintext',
  'kms:GenerateDataKeyPair',
  'kms:GenerateDataKeyPairWithoutPlaintext',
  'kms:ReEncryptFrom',
  'kms:ReEncryptTo',
  'kms:CreateGrant',
  'kms:GenerateMac',
  'kms:Sign',
];

/** Does an IAM action pattern (with `*` and `?`) cover a concrete action? IAM matching is case-insensitive. */
function actionCovers(pattern: string, action: string): boolean {
  const re = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return re.test(action);
}

function asList<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** True for the account root principal in any of the forms CloudFormation templates use. */
function isAccountRoot(principal: unknown): boolean {
  if (typeof principal === 'string') return principal === '*' || /^\d{12}$/.test(principal) || /:root$/.test(principal);
  const text = JSON.stringify(principal);
  // { "Fn::Join": ["", ["arn:", {"Ref":"AWS::Partition"}, ":iam::", {"Ref":"AWS::AccountId"}, ":root"]] }
  return /":root"\]\]\}$/.test(text) || text === '{"Ref":"AWS::AccountId"}';
}

function awsPrincipals(statement: PolicyStatement): unknown[] {
  const p = statement.Principal;
  if (p === '*') return ['*'];
  if (p && typeof p === 'object' && 'AWS' in p) return asList((p as { AWS: unknown }).AWS);
  return [];
}

/** Statements of a key policy that let the account root (hence IAM) use the key or hand out its use. */
function accountRootCryptoGrants(statements: PolicyStatement[]): string[] {
  const offending: string[] = [];
  for (const statement of statements) {
    if (statement.Effect !== 'Allow') continue;
    if (!awsPrincipals(statement).some(isAccountRoot)) continue;
    if (statement.NotAction !== undefined) offending.push(`${statement.Sid ?? '?'}: Allow with NotAction`);
    for (const action of asList(statement.Action)) {
      const covered = KMS_CRYPTO_ACTIONS.filter((crypto) => actionCovers(action, crypto));
      if (covered.length > 0 || actionCovers(action, 'kms:AnyFutureAction')) {
        offending.push(`${statement.Sid ?? '?'}: ${action} (covers ${covered.join(', ') || 'everything'})`);
      }
    }
  }
  return offending;
}

function resourcesOf(template: Template, type: string): Record<string, CfnResource> {
  return template.findResources(type) as Record<string, CfnResource>;
}

/** Asserts that every resource of `type` matches `props` (findResources + count), naming the misfits. */
function expectEveryResource(template: Template, type: string, props: Json): void {
  const all = Object.keys(template.findResources(type));
  const matching = new Set(Object.keys(template.findResources(type, props)));
  expect(all.length).toBeGreaterThan(0);
  expect({ type, notMatching: all.filter((id) => !matching.has(id)) }).toEqual({ type, notMatching: [] });
}

function getAttArn(logicalId: string) {
  return { 'Fn::GetAtt': [logicalId, 'Arn'] };
}

/** Path of every API Gateway method, e.g. `POST /v1/chat/completions`, from the Resource tree. */
function apiMethods(template: Template): { id: string; path: string; httpMethod: string; props: Json }[] {
  const resources = resourcesOf(template, 'AWS::ApiGateway::Resource');
  const restApis = Object.keys(resourcesOf(template, 'AWS::ApiGateway::RestApi'));
  const pathOf = (ref: unknown): string => {
    // The root resource is { "Fn::GetAtt": [<RestApi>, "RootResourceId"] }.
    const getAtt = (ref as { 'Fn::GetAtt'?: string[] })['Fn::GetAtt'];
    if (getAtt && restApis.includes(getAtt[0]) && getAtt[1] === 'RootResourceId') return '';
    const id = (ref as { Ref?: string }).Ref;
    const resource = id ? resources[id] : undefined;
    if (!resource) throw new Error(`Unresolvable API resource reference ${JSON.stringify(ref)}`);
    return `${pathOf(resource.Properties!.ParentId)}/${resource.Properties!.PathPart as string}`;
  };
  return Object.entries(resourcesOf(template, 'AWS::ApiGateway::Method')).map(([id, method]) => {
    const props = method.Properties!;
    return { id, path: pathOf(props.ResourceId) || '/', httpMethod: props.HttpMethod as string, props };
  });
}

describe('RegionalRouterStack from the default configuration', () => {
  let synth: SynthesizedApp;

  beforeAll(() => {
    synth = synthApp();
  });
  afterAll(() => synth?.cleanup());

  test('one stack per configured region, each pinned to its region', () => {
    expect(synth.stacks.map((s) => s.region).sort()).toEqual(EXPECTED_REGIONS);
    expect(synth.stacks.map((s) => s.stackName).sort()).toEqual(EXPECTED_REGIONS.map((r) => `SovereignRouter-${r}`));
    for (const stack of synth.stacks) {
      expect(stack).toBeInstanceOf(RegionalRouterStack);
      expect(stack.terminationProtection).toBe(true);
      expect(synth.assembly.getStackArtifact(stack.artifactId).environment.region).toBe(stack.region);
    }
  });

  describe.each(EXPECTED_REGIONS)('cell %s', (region) => {
    let cell: CellUnderTest;
    let template: Template;
    let rootKeyId: string;
    let storageKeyId: string;

    beforeAll(() => {
      cell = synth.cells.get(region)!;
      template = cell.template;
      rootKeyId = logicalIdOf(cell.stack.router.rootKey);
      storageKeyId = logicalIdOf(cell.stack.router.storageKey);
    });

    describe('audit key and anchor bucket', () => {
      test('the audit key is a retained single-Region HMAC_256 key whose policy gives the account root no use', () => {
        const id = logicalIdOf(cell.stack.router.auditKey);
        const key = resourcesOf(template, 'AWS::KMS::Key')[id];
        expect(key.Properties).toEqual(expect.objectContaining({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC', MultiRegion: false }));
        expect(key.DeletionPolicy).toBe('Retain');
        const statements = (key.Properties!.KeyPolicy as { Statement: PolicyStatement[] }).Statement;
        expect(statements.filter((s) => awsPrincipals(s).some(isAccountRoot)).flatMap((s) => asList(s.Action)).filter((a) => /Mac|\*/.test(a))).toEqual([]);
        const users = statements.filter((s) => asList(s.Action).some((a) => a === 'kms:GenerateMac' || a === 'kms:VerifyMac'));
        const roles = users.flatMap((s) => awsPrincipals(s)).map((p) => JSON.stringify(p));
        const vault = logicalIdOf(cell.stack.router.vaultRole);
        const admin = logicalIdOf(cell.stack.router.adminRole);
        const migration = logicalIdOf(cell.stack.router.rootKeyMigrationRole);
        expect(roles.every((r) => r.includes(vault) || r.includes(admin) || r.includes(migration))).toBe(true);
        expect(users.every((s) => JSON.stringify(s.Condition) === JSON.stringify({ StringEquals: { 'kms:MacAlgorithm': 'HMAC_SHA_256' } }))).toBe(true);
      });

      test('the anchor bucket is in the cell, retained, locked in compliance mode, TLS-only, and refuses overwrites and deletes', () => {
        const id = logicalIdOf(cell.stack.router.auditAnchorBucket);
        const bucket = resourcesOf(template, 'AWS::S3::Bucket')[id];
        expect(bucket.DeletionPolicy).toBe('Retain');
        expect(bucket.Properties).toEqual(
          expect.objectContaining({
            ObjectLockEnabled: true,
            ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 365 } } },
            VersioningConfiguration: { Status: 'Enabled' },
          }),
        );
        expect(bucket.Properties).not.toHaveProperty('ReplicationConfiguration');
        const policy = Object.values(resourcesOf(template, 'AWS::S3::BucketPolicy')).find((p) => JSON.stringify(p.Properties!.Bucket).includes(id))!;
        const sids = (policy.Properties!.PolicyDocument as { Statement: { Sid?: string; Effect: string }[] }).Statement.filter((s) => s.Effect === 'Deny').map((s) => s.Sid);
        expect(sids).toEqual(expect.arrayContaining(['AnchorsAreWrittenOnlyIfAbsent', 'AnchorsAreNeverDeletedOrUnlocked']));
        expect(JSON.stringify(policy.Properties!.PolicyDocument)).toContain('aws:SecureTransport');
      });

      test('the vault and admin functions learn the audit key and bucket; the router holds no audit permission', () => {
        const fns = resourcesOf(template, 'AWS::Lambda::Function');
        for (const fn of [cell.stack.router.vaultFunction, cell.stack.router.adminFunction]) {
          const vars = (fns[logicalIdOf(fn)].Properties!.Environment as { Variables: Record<string, unknown> }).Variables;
          expect(Object.keys(vars)).toEqual(expect.arrayContaining(['AUDIT_KEY_ARN', 'AUDIT_ANCHOR_BUCKET']));
        }
        const routerRole = logicalIdOf(cell.stack.router.routerRole);
        const routerPolicies = JSON.stringify(
          Object.values(resourcesOf(template, 'AWS::IAM::Policy')).filter((p) => JSON.stringify(p.Properties!.Roles).includes(routerRole)),
        );
        expect(routerPolicies).not.toMatch(/kms:(GenerateMac|VerifyMac)|s3:/);
      });
    });

    describe('root key', () => {
      test('is single-Region, rotated and retained', () => {
        // Root, storage, the audit MAC key, and the alarm topic's own key (no data behind it).
        template.resourceCountIs('AWS::KMS::Key', 4);
        template.hasResource('AWS::KMS::Key', {
          Properties: Match.objectLike({ EnableKeyRotation: true, MultiRegion: false }),
          DeletionPolicy: 'Retain',
          UpdateReplacePolicy: 'Retain',
        });
        const matching = template.findResources('AWS::KMS::Key', {
          Properties: Match.objectLike({ EnableKeyRotation: true, MultiRegion: false, KeySpec: Match.absent() }),
          DeletionPolicy: 'Retain',
        });
        expect(Object.keys(matching)).toContain(rootKeyId);
      });

      test('key policy grants the account root no kms:* and no cryptographic action', () => {
        const key = resourcesOf(template, 'AWS::KMS::Key')[rootKeyId];
        const statements = (key.Properties!.KeyPolicy as { Statement: PolicyStatement[] }).Statement;
        expect(statements.length).toBeGreaterThan(0);
        const offending = accountRootCryptoGrants(statements);
        expect(offending).toEqual([]);
        // The administrators still can manage the key (otherwise it would be unmanageable).
        const adminActions = statements.filter((s) => awsPrincipals(s).some(isAccountRoot)).flatMap((s) => asList(s.Action));
        expect(adminActions).toEqual(expect.arrayContaining(['kms:PutKeyPolicy', 'kms:ScheduleKeyDeletion', 'kms:EnableKeyRotation']));
      });

      test('only the router may Decrypt and only the vault may GenerateDataKey, bound to this region', () => {
        const key = resourcesOf(template, 'AWS::KMS::Key')[rootKeyId];
        const statements = (key.Properties!.KeyPolicy as { Statement: PolicyStatement[] }).Statement;
        const routerRole = logicalIdOf(cell.stack.router.routerRole);
        const vaultRole = logicalIdOf(cell.stack.router.vaultRole);
        const crypto = statements
          .filter((s) => s.Effect === 'Allow' && asList(s.Action).some((a) => KMS_CRYPTO_ACTIONS.some((c) => actionCovers(a, c))))
          .map((s) => ({ principals: awsPrincipals(s), actions: asList(s.Action), region: s.Condition?.StringEquals?.['kms:EncryptionContext:region'] }));
        expect(crypto).toEqual(
          expect.arrayContaining([
            { principals: [getAttArn(routerRole)], actions: ['kms:Decrypt'], region },
            { principals: [getAttArn(vaultRole)], actions: ['kms:GenerateDataKey'], region },
            // Root-key migration: ReEncrypt without Decrypt (test/infra/iam-root-key-migration.test.ts).
            { principals: [getAttArn(logicalIdOf(cell.stack.router.rootKeyMigrationRole))], actions: ['kms:ReEncryptFrom', 'kms:ReEncryptTo'], region },
          ]),
        );
        expect(crypto).toHaveLength(3);
      });
    });

    test('storage key is a separate single-Region, rotated, retained key', () => {
      expect(storageKeyId).not.toEqual(rootKeyId);
      const matching = template.findResources('AWS::KMS::Key', {
        Properties: Match.objectLike({ EnableKeyRotation: true, MultiRegion: false }),
        DeletionPolicy: 'Retain',
      });
      expect(Object.keys(matching).sort()).toEqual([rootKeyId, storageKeyId].sort());
    });

    test('tables: PITR, deletion protection, storage-key SSE, retained, no replicas', () => {
      template.resourceCountIs('AWS::DynamoDB::Table', 7);
      template.resourceCountIs('AWS::DynamoDB::GlobalTable', 0);
      template.resourceCountIs('Custom::DynamoDBReplica', 0);
      const props = {
        DeletionProtectionEnabled: true,
        SSESpecification: { SSEEnabled: true, SSEType: 'KMS', KMSMasterKeyId: getAttArn(storageKeyId) },
        Replicas: Match.absent(),
        KinesisStreamSpecification: Match.absent(),
        StreamSpecification: Match.absent(),
      };
      template.hasResourceProperties('AWS::DynamoDB::Table', props);
      expectEveryResource(template, 'AWS::DynamoDB::Table', {
        Properties: Match.objectLike(props),
        DeletionPolicy: 'Retain',
        UpdateReplacePolicy: 'Retain',
      });
      // PITR on every table but the erasure keys, which no copy of may exist (crypto-shredding).
      const erasureId = logicalIdOf(cell.stack.router.tables.erasure);
      for (const [id, t] of Object.entries(resourcesOf(template, 'AWS::DynamoDB::Table'))) {
        expect([id, t.Properties!.PointInTimeRecoverySpecification]).toEqual([id, { PointInTimeRecoveryEnabled: id !== erasureId }]);
        expect([id, t.Properties!.ResourcePolicy === undefined]).toEqual([id, id !== erasureId]);
      }
      // The erasure-key table: a resource policy refusing every copy to every principal, and the tag
      // an AWS Backup selection excludes.
      const erasure = resourcesOf(template, 'AWS::DynamoDB::Table')[erasureId].Properties!;
      expect(erasure.ResourcePolicy).toEqual({
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Sid: 'NoCopiesOfErasureKeys',
              Effect: 'Deny',
              Principal: { AWS: '*' },
              Action: [...ERASURE_KEY_DENIED_COPY_ACTIONS].sort(),
              Resource: '*',
            },
          ],
        },
      });
      expect(erasure.Tags).toEqual(expect.arrayContaining([{ Key: NO_BACKUP_TAG.key, Value: NO_BACKUP_TAG.value }]));
      // Never the root key: storage access must not imply access to tenant secrets.
      expect(JSON.stringify(resourcesOf(template, 'AWS::DynamoDB::Table'))).not.toContain(rootKeyId);
    });

    test('pepper is generated by Secrets Manager and encrypted with the storage key', () => {
      template.resourceCountIs('AWS::SecretsManager::Secret', 1);
      template.hasResourceProperties('AWS::SecretsManager::Secret', {
        KmsKeyId: getAttArn(storageKeyId),
        GenerateSecretString: Match.objectLike({ PasswordLength: Match.anyValue() }),
        SecretString: Match.absent(),
        ReplicaRegions: Match.absent(),
      });
      expectEveryResource(template, 'AWS::SecretsManager::Secret', { DeletionPolicy: 'Retain' });
    });

    test('table grants are least privilege per role: counters apart from the append-only usage log', () => {
      const r = cell.stack.router;
      const roleIds = { router: logicalIdOf(r.routerRole), vault: logicalIdOf(r.vaultRole), admin: logicalIdOf(r.adminRole) };
      const tableIds = {
        tenants: logicalIdOf(r.tenantsTable),
        tokens: logicalIdOf(r.tokensTable),
        counters: logicalIdOf(r.countersTable),
        usage: logicalIdOf(r.usageTable),
        audit: logicalIdOf(r.auditTable),
        cache: logicalIdOf(r.cacheTable),
        erasure: logicalIdOf(r.tables.erasure),
      };
      const policies = Object.values(resourcesOf(template, 'AWS::IAM::Policy'));
      /** The DynamoDB actions a role holds on a table (any statement naming the table's ARN). */
      const actions = (role: keyof typeof roleIds, table: keyof typeof tableIds): string[] => {
        const out = new Set<string>();
        for (const policy of policies) {
          if (!JSON.stringify(policy.Properties!.Roles).includes(`"${roleIds[role]}"`)) continue;
          for (const st of (policy.Properties!.PolicyDocument as { Statement: PolicyStatement[] & { Resource?: unknown }[] }).Statement) {
            if (JSON.stringify((st as { Resource?: unknown }).Resource).includes(`"${tableIds[table]}"`)) for (const a of asList(st.Action)) out.add(a);
          }
        }
        return [...out].sort();
      };
      const READ = ['dynamodb:BatchGetItem', 'dynamodb:ConditionCheckItem', 'dynamodb:DescribeTable', 'dynamodb:GetItem', 'dynamodb:Query'];
      const WRITE = ['dynamodb:BatchWriteItem', 'dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'];
      expect(actions('router', 'counters')).toEqual([...READ, ...WRITE].sort());
      expect(actions('router', 'usage')).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem']);
      expect(actions('router', 'tenants')).toEqual(READ);
      expect(actions('router', 'audit')).toEqual([]);
      expect(actions('vault', 'counters')).toEqual([]);
      expect(actions('vault', 'usage')).toEqual(['dynamodb:Query']);
      expect(actions('admin', 'counters')).toEqual(READ);
      expect(actions('admin', 'usage')).toEqual(READ);
      // The response cache: entries by key only (no Query/Scan to enumerate), and only the router.
      expect(actions('router', 'cache')).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem']);
      expect(actions('vault', 'cache')).toEqual([]);
      expect(actions('admin', 'cache')).toEqual([]);
      // Erasure keys: the router and the vault read them, the vault creates them, only the admin
      // (offboarding) deletes them and cannot read them; nobody updates, scans or queries them.
      expect(actions('router', 'erasure')).toEqual(['dynamodb:BatchGetItem', 'dynamodb:GetItem']);
      expect(actions('vault', 'erasure')).toEqual(['dynamodb:GetItem', 'dynamodb:PutItem']);
      expect(actions('admin', 'erasure')).toEqual(['dynamodb:DeleteItem']);
      // Counters and usage are two tables, each with the TTL attribute; only counters take transactions.
      const ttl = (id: string) => (resourcesOf(template, 'AWS::DynamoDB::Table')[id].Properties!.TimeToLiveSpecification as Json | undefined);
      expect(ttl(tableIds.counters)).toEqual({ AttributeName: 'expiresAt', Enabled: true });
      expect(ttl(tableIds.usage)).toEqual({ AttributeName: 'expiresAt', Enabled: true });
      expect(ttl(tableIds.cache)).toEqual({ AttributeName: 'expiresAt', Enabled: true });
      const env = (resourcesOf(template, 'AWS::Lambda::Function')[logicalIdOf(r.routerFunction)].Properties!.Environment as { Variables: Json }).Variables;
      expect(env.COUNTERS_TABLE).toEqual({ Ref: tableIds.counters });
      expect(env.USAGE_TABLE).toEqual({ Ref: tableIds.usage });
      expect(env.CACHE_TABLE).toEqual({ Ref: tableIds.cache });
      expect(env.ERASURE_TABLE).toEqual({ Ref: tableIds.erasure });
    });

    test('four Node.js 22 arm64 functions (router, vault, admin, root-key migration) with active tracing', () => {
      template.resourceCountIs('AWS::Lambda::Function', 4);
      const props = { Runtime: 'nodejs22.x', Architectures: ['arm64'], TracingConfig: { Mode: 'Active' } };
      template.hasResourceProperties('AWS::Lambda::Function', props);
      expectEveryResource(template, 'AWS::Lambda::Function', { Properties: Match.objectLike(props) });
      const ids = [cell.stack.router.routerFunction, cell.stack.router.vaultFunction, cell.stack.router.adminFunction, cell.stack.router.rootKeyMigrationFunction].map((f) => logicalIdOf(f));
      expect(Object.keys(resourcesOf(template, 'AWS::Lambda::Function')).sort()).toEqual([...ids].sort());
    });

    test('each function has its own role (no managed policies) and its own encrypted log group with retention', () => {
      const functions = Object.values(resourcesOf(template, 'AWS::Lambda::Function'));
      const roles = resourcesOf(template, 'AWS::IAM::Role');
      const logGroups = resourcesOf(template, 'AWS::Logs::LogGroup');
      const roleIds = functions.map((f) => (f.Properties!.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]);
      const logGroupIds = functions.map((f) => ((f.Properties!.LoggingConfig as Json | undefined)?.LogGroup as { Ref: string } | undefined)?.Ref);
      expect(new Set(roleIds).size).toBe(4);
      expect(new Set(logGroupIds).size).toBe(4);
      for (const roleId of roleIds) {
        expect(roles[roleId]).toBeDefined();
        expect(roles[roleId].Properties!.ManagedPolicyArns).toBeUndefined();
        expect(JSON.stringify(roles[roleId].Properties!.AssumeRolePolicyDocument)).toContain('lambda.amazonaws.com');
      }
      for (const logGroupId of logGroupIds) {
        expect(logGroupId).toBeDefined();
        expect(logGroups[logGroupId!].Properties).toEqual(
          expect.objectContaining({ RetentionInDays: expect.any(Number), KmsKeyId: getAttArn(storageKeyId) }),
        );
      }
      expectEveryResource(template, 'AWS::Logs::LogGroup', {
        Properties: Match.objectLike({ RetentionInDays: Match.anyValue(), KmsKeyId: getAttArn(storageKeyId) }),
      });
    });

    test('REST API is REGIONAL', () => {
      template.resourceCountIs('AWS::ApiGateway::RestApi', 1);
      template.hasResourceProperties('AWS::ApiGateway::RestApi', { EndpointConfiguration: { Types: ['REGIONAL'] } });
    });

    test('router routes integrate with response streaming', () => {
      const routerId = logicalIdOf(cell.stack.router.routerFunction);
      const routerMethods = apiMethods(template).filter((m) => JSON.stringify(m.props.Integration).includes(`"${routerId}"`));
      expect(routerMethods.map((m) => `${m.httpMethod} ${m.path}`).sort()).toEqual(
        expect.arrayContaining(['POST /v1/chat/completions', 'POST /v1/messages', 'POST /v1/responses']),
      );
      for (const method of routerMethods) {
        expect({ method: `${method.httpMethod} ${method.path}`, integration: method.props.Integration }).toEqual({
          method: `${method.httpMethod} ${method.path}`,
          integration: expect.objectContaining({ Type: 'AWS_PROXY', ResponseTransferMode: 'STREAM' }),
        });
        // aws-cdk-lib renders STREAM as the 2021-11-15 response-streaming invocation path.
        const uri = JSON.stringify((method.props.Integration as Json).Uri);
        expect(uri).toContain('/2021-11-15/functions/');
        expect(uri).toContain('/response-streaming-invocations');
      }
      template.hasResourceProperties('AWS::ApiGateway::Method', {
        HttpMethod: 'POST',
        Integration: Match.objectLike({
          ResponseTransferMode: 'STREAM',
          Uri: { 'Fn::Join': ['', Match.arrayWith([getAttArn(routerId), '/response-streaming-invocations'])] },
        }),
      });
    });

    test('every /admin method requires AWS_IAM and none is open', () => {
      const methods = apiMethods(template);
      const admin = methods.filter((m) => m.path === '/admin' || m.path.startsWith('/admin/'));
      expect(admin.length).toBeGreaterThan(0);
      expect(admin.map((m) => ({ route: `${m.httpMethod} ${m.path}`, auth: m.props.AuthorizationType }))).toEqual(
        admin.map((m) => ({ route: `${m.httpMethod} ${m.path}`, auth: 'AWS_IAM' })),
      );
      expect(admin.filter((m) => m.props.AuthorizationType === 'NONE' || m.props.AuthorizationType === undefined)).toEqual([]);
      // Whatever the path, the admin function is reachable only through SigV4.
      const adminFn = logicalIdOf(cell.stack.router.adminFunction);
      const toAdmin = methods.filter((m) => JSON.stringify(m.props.Integration).includes(`"${adminFn}"`));
      expect(toAdmin.length).toBeGreaterThan(0);
      expect(toAdmin.every((m) => m.props.AuthorizationType === 'AWS_IAM')).toBe(true);
      template.hasResourceProperties('AWS::ApiGateway::Method', { AuthorizationType: 'AWS_IAM', HttpMethod: 'ANY' });
    });

    test('the console is GET-only, served by the vault function, and nothing else under /console', () => {
      const methods = apiMethods(template).filter((m) => m.path === '/console' || m.path.startsWith('/console/'));
      expect(methods.map((m) => `${m.httpMethod} ${m.path}`).sort()).toEqual(['GET /console', 'GET /console/{asset}']);
      const vaultFn = logicalIdOf(cell.stack.router.vaultFunction);
      for (const m of methods) {
        expect(m.props.Integration).toEqual(expect.objectContaining({ Type: 'AWS_PROXY' }));
        expect(JSON.stringify((m.props.Integration as Json).Uri)).toContain(`"${vaultFn}"`);
      }
    });

    test('stage throttles and writes access logs to the encrypted access-log group', () => {
      template.resourceCountIs('AWS::ApiGateway::Stage', 1);
      const accessLogsId = logicalIdOf(
        cell.stack.router.node.findChild('Api').node.findChild('AccessLogs'),
      );
      template.hasResourceProperties('AWS::ApiGateway::Stage', {
        MethodSettings: Match.arrayWith([
          Match.objectLike({
            HttpMethod: '*',
            ResourcePath: '/*',
            ThrottlingRateLimit: Match.anyValue(),
            ThrottlingBurstLimit: Match.anyValue(),
            DataTraceEnabled: false,
          }),
        ]),
        AccessLogSetting: { DestinationArn: getAttArn(accessLogsId), Format: Match.anyValue() },
      });
      const stage = Object.values(resourcesOf(template, 'AWS::ApiGateway::Stage'))[0].Properties!;
      const settings = (stage.MethodSettings as Json[]).find((s) => s.ResourcePath === '/*')!;
      expect(settings.ThrottlingRateLimit).toBeGreaterThan(0);
      expect(settings.ThrottlingBurstLimit).toBeGreaterThan(0);
    });

    test('access log format has no body, header or credential fields', () => {
      const stage = Object.values(resourcesOf(template, 'AWS::ApiGateway::Stage'))[0].Properties!;
      const format = (stage.AccessLogSetting as { Format: string }).Format;
      expect(typeof format).toBe('string');
      const fields = JSON.parse(format) as Record<string, string>;
      expect(Object.values(fields)).toEqual(expect.arrayContaining(['$context.requestId', '$context.status']));
      const forbidden = [/body/i, /header/i, /\$input\b/, /\$method\.request/, /requestOverride/, /responseOverride/, /authorization/i, /apiKey/i, /token/i, /\$context\.authorizer/];
      const leaks = Object.entries(fields).filter(([name, value]) => forbidden.some((re) => re.test(name) || re.test(value)));
      expect(leaks).toEqual([]);
    });
  });
});

describe('key-policy checker (control)', () => {
  test('flags the default CDK key policy (kms:* for the account root) and explicit crypto grants', () => {
    const { app } = newTestApp();
    const stack = new Stack(app, 'Control', { env: { region: 'eu-central-1' } });
    const key = new kms.Key(stack, 'Default');
    const statements = (Template.fromStack(stack).toJSON().Resources[logicalIdOf(key)].Properties.KeyPolicy as { Statement: PolicyStatement[] }).Statement;
    expect(accountRootCryptoGrants(statements)).toEqual([expect.stringContaining('kms:* (covers kms:Decrypt')]);
    const root = { AWS: 'arn:aws:iam::111122223333:root' };
    expect(accountRootCryptoGrants([{ Effect: 'Allow', Principal: root, Action: ['kms:Describe*', 'kms:ReEncrypt*'] }])).toHaveLength(1);
    expect(accountRootCryptoGrants([{ Effect: 'Allow', Principal: { AWS: '111122223333' }, Action: 'kms:createGrant' }])).toHaveLength(1);
    expect(accountRootCryptoGrants([{ Effect: 'Allow', Principal: '*', Action: 'kms:GenerateDataKey*' }])).toHaveLength(1);
    expect(accountRootCryptoGrants([{ Effect: 'Allow', Principal: root, NotAction: 'kms:Sign' }])).toHaveLength(1);
    expect(accountRootCryptoGrants([{ Effect: 'Allow', Principal: root, Action: ['kms:Describe*', 'kms:PutKeyPolicy'] }])).toEqual([]);
    expect(accountRootCryptoGrants([{ Effect: 'Deny', Principal: root, Action: 'kms:*' }])).toEqual([]);
  });
});

describe('RegionalRouter prop validation', () => {
  const providers: RegionalRouterProps['providers'] = { openai: { kind: 'openai', baseUrl: 'https://api.openai.com' } };
  const make = (region: string | undefined, props: Partial<RegionalRouterProps> = {}) => {
    const { app } = newTestApp();
    const stack = new Stack(app, 'Validation', region ? { env: { region } } : {});
    return new RegionalRouter(stack, 'Cell', { providers, ...props });
  };

  test('a valid cell builds (control for the cases below)', () => {
    expect(() => make('eu-central-1')).not.toThrow();
    expect(() => make('eu-central-1', { providers: { local: { kind: 'openai-compatible', baseUrl: 'http://127.0.0.1:8080' } } })).not.toThrow();
  });

  test('RegionalRouter with an audit anchor retention that is not whole days', () => {
    expect(() => make('eu-central-1', { auditAnchorRetention: Duration.hours(36) })).toThrow(/anchorRetention must be a whole number of days between 1 and 36500, got 1\.5/);
    expect(() => make('eu-central-1', { auditAnchorRetention: Duration.days(0) })).toThrow(/anchorRetention must be a whole number of days/);
  });

  test('RegionalRouter in a stack without env.region', () => {
    expect(() => make(undefined)).toThrow(/RegionalRouter 'Validation\/Cell' needs a stack with a concrete, supported region \(env\.region\); got '\$\{Token\[AWS\.Region/);
  });

  test('RegionalRouter in an unsupported region names the supported ones', () => {
    expect(() => make('me-south-1')).toThrow(/got 'me-south-1'\. Supported: .*eu-central-1/);
  });

  test('RegionalRouterStack without env.region', () => {
    const { app } = newTestApp();
    expect(() => new RegionalRouterStack(app, 'NoRegion', { providers })).toThrow(
      "RegionalRouterStack 'NoRegion' needs env.region: a cell belongs to exactly one region.",
    );
  });

  test('empty providers', () => {
    expect(() => make('eu-central-1', { providers: {} })).toThrow(
      "RegionalRouter eu-central-1: no allowed provider endpoint; list at least one under 'providers'",
    );
  });

  test('plain http to a non-loopback host', () => {
    expect(() => make('eu-central-1', { providers: { openai: { kind: 'openai', baseUrl: 'http://api.openai.com' } } })).toThrow(
      "RegionalRouter eu-central-1: provider 'openai' baseUrl must use https (http only for loopback), got 'http://api.openai.com'",
    );
  });

  test.each([100, 1023, 1536.5, 6 * 1024 * 1024 + 1, Number.NaN])('maxRequestBytes %p', (maxRequestBytes) => {
    expect(() => make('eu-central-1', { maxRequestBytes })).toThrow(
      `RegionalRouterProps.maxRequestBytes must be an integer between 1024 and 6291456, got ${maxRequestBytes}`,
    );
  });

  test('requestDeadline out of range', () => {
    expect(() => make('eu-central-1', { requestDeadline: Duration.minutes(15) })).toThrow(
      'RegionalRouterProps.requestDeadline must be between 5 seconds and 14 minutes',
    );
  });
});
