/**
 * Creates a cell's AWS resources in an emulator (moto) from the same definitions the CDK stack
 * uses: the table schemas, a single-Region symmetric root key and a generated pepper. Used by the
 * local gateway and the end-to-end tests; never pointed at a real AWS endpoint.
 */
import { randomBytes } from 'node:crypto';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  ResourceInUseException,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { CreateBucketCommand, PutObjectLockConfigurationCommand, type S3Client } from '@aws-sdk/client-s3';
import { CreateSecretCommand, GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { TABLE_SCHEMAS, TableName, tableEnvVar } from '../lib/table-schemas';

export interface ProvisionClients {
  readonly ddb: DynamoDBClient;
  readonly kms: KMSClient;
  readonly secrets: SecretsManagerClient;
  /** With S3, the cell also gets its audit key and anchor bucket (AUDIT_KEY_ARN, AUDIT_ANCHOR_BUCKET). */
  readonly s3?: S3Client;
}

export interface ProvisionedCell {
  readonly region: string;
  readonly rootKeyArn: string;
  readonly pepperSecretArn: string;
  readonly pepper: string;
  readonly tables: Record<TableName, string>;
  /** The audit key and anchor bucket, when provisioned. */
  readonly audit?: { readonly keyArn: string; readonly anchorBucket: string };
  /** The environment the construct gives the functions, for this emulated cell. */
  readonly env: Record<string, string>;
}

export async function createTables(ddb: DynamoDBClient, prefix: string): Promise<Record<TableName, string>> {
  const names = {} as Record<TableName, string>;
  for (const [key, schema] of Object.entries(TABLE_SCHEMAS) as [TableName, (typeof TABLE_SCHEMAS)[TableName]][]) {
    const TableName = `${prefix}-${schema.id}`;
    names[key] = TableName;
    const attrs = new Map<string, 'S' | 'N'>();
    const keys = [schema.partitionKey, 'sortKey' in schema ? schema.sortKey : undefined];
    const gsis = 'globalSecondaryIndexes' in schema ? schema.globalSecondaryIndexes : [];
    for (const k of keys) if (k) attrs.set(k.name, k.type);
    for (const g of gsis) for (const k of [g.partitionKey, g.sortKey]) if (k) attrs.set(k.name, k.type);
    try {
      await ddb.send(
        new CreateTableCommand({
          TableName,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [...attrs].map(([AttributeName, AttributeType]) => ({ AttributeName, AttributeType })),
          KeySchema: [
            { AttributeName: schema.partitionKey.name, KeyType: 'HASH' },
            ...('sortKey' in schema && schema.sortKey ? [{ AttributeName: schema.sortKey.name, KeyType: 'RANGE' as const }] : []),
          ],
          GlobalSecondaryIndexes: gsis.length
            ? gsis.map((g) => ({
                IndexName: g.indexName,
                KeySchema: [
                  { AttributeName: g.partitionKey.name, KeyType: 'HASH' as const },
                  ...(g.sortKey ? [{ AttributeName: g.sortKey.name, KeyType: 'RANGE' as const }] : []),
                ],
                Projection: { ProjectionType: 'ALL' },
              }))
            : undefined,
        }),
      );
    } catch (err) {
      if (!(err instanceof ResourceInUseException)) throw err;
      continue; // already there (persistent local state)
    }
    await ddb.send(new DescribeTableCommand({ TableName }));
    if ('timeToLiveAttribute' in schema && schema.timeToLiveAttribute) {
      await ddb.send(
        new UpdateTimeToLiveCommand({ TableName, TimeToLiveSpecification: { AttributeName: schema.timeToLiveAttribute, Enabled: true } }),
      );
    }
  }
  return names;
}

export async function provisionCell(
  clients: ProvisionClients,
  opts: {
    region: string;
    providers: Record<string, { kind: string; baseUrl: string }>;
    prefix?: string;
    maxRequestBytes?: number;
    requestDeadlineMs?: number;
    /** Reuse a pepper (local persistence); default a new random one. */
    pepper?: string;
  },
): Promise<ProvisionedCell> {
  const prefix = opts.prefix ?? `sr-${opts.region}`;
  const tables = await createTables(clients.ddb, prefix);
  const key = await clients.kms.send(
    new CreateKeyCommand({ KeySpec: 'SYMMETRIC_DEFAULT', KeyUsage: 'ENCRYPT_DECRYPT', MultiRegion: false, Description: `${prefix} root key` }),
  );
  const rootKeyArn = key.KeyMetadata?.Arn;
  if (!rootKeyArn) throw new Error('the emulator returned no key ARN');
  const secret = await clients.secrets.send(
    new CreateSecretCommand({
      Name: `${prefix}-pepper-${randomBytes(4).toString('hex')}`,
      SecretString: opts.pepper ?? randomBytes(48).toString('base64url'),
    }),
  );
  if (!secret.ARN) throw new Error('the emulator returned no secret ARN');
  const pepper = (await clients.secrets.send(new GetSecretValueCommand({ SecretId: secret.ARN }))).SecretString ?? '';
  const env: Record<string, string> = {
    CELL_REGION: opts.region,
    ROOT_KEY_ARN: rootKeyArn,
    PEPPER_SECRET_ARN: secret.ARN,
    PROVIDER_ENDPOINTS: JSON.stringify(opts.providers),
    MAX_REQUEST_BYTES: String(opts.maxRequestBytes ?? 1024 * 1024),
    REQUEST_DEADLINE_MS: String(opts.requestDeadlineMs ?? 30_000),
  };
  for (const name of Object.keys(tables) as TableName[]) env[tableEnvVar(name)] = tables[name];
  const audit = clients.s3 ? await provisionAudit(clients.kms, clients.s3, prefix, opts.region) : undefined;
  if (audit) Object.assign(env, { AUDIT_KEY_ARN: audit.keyArn, AUDIT_ANCHOR_BUCKET: audit.anchorBucket });
  return { region: opts.region, rootKeyArn, pepperSecretArn: secret.ARN, pepper, tables, env, ...(audit ? { audit } : {}) };
}

/**
 * The audit key (HMAC_256, GENERATE_VERIFY_MAC, single-Region) and the anchor bucket (Object Lock
 * in compliance mode, versioned, default retention), as the construct creates them.
 */
export async function provisionAudit(kms: KMSClient, s3: S3Client, prefix: string, region: string) {
  const key = await kms.send(
    new CreateKeyCommand({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC', MultiRegion: false, Description: `${prefix} audit key` }),
  );
  const keyArn = key.KeyMetadata?.Arn;
  if (!keyArn) throw new Error('the emulator returned no key ARN');
  const anchorBucket = `${prefix}-anchors-${randomBytes(4).toString('hex')}`.toLowerCase().slice(0, 63);
  await s3.send(
    new CreateBucketCommand({
      Bucket: anchorBucket,
      ObjectLockEnabledForBucket: true,
      ...(region === 'us-east-1' ? {} : { CreateBucketConfiguration: { LocationConstraint: region as never } }),
    }),
  );
  await s3.send(
    new PutObjectLockConfigurationCommand({
      Bucket: anchorBucket,
      ObjectLockConfiguration: { ObjectLockEnabled: 'Enabled', Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 1 } } },
    }),
  );
  return { keyArn, anchorBucket };
}
