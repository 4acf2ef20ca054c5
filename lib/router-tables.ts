import { RemovalPolicy, Tags, Validations } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import {
  AUDIT_APPEND_ACTIONS,
  CACHE_ENTRY_ACTIONS,
  ERASURE_KEY_CREATE_ACTIONS,
  ERASURE_KEY_DENIED_COPY_ACTIONS,
  ERASURE_KEY_DESTROY_ACTIONS,
  ERASURE_KEY_READ_ACTIONS,
  TABLE_READ_ACTIONS,
  TABLE_SCAN_ACTIONS,
  TABLE_WRITE_ACTIONS,
  TOKEN_INVENTORY_ACTIONS,
  TOKEN_VERIFIER_MOVE_ACTIONS,
  USAGE_APPEND_ACTIONS,
  USAGE_QUERY_ACTIONS,
} from './private/iam-actions';
import { KeyAttribute, TABLE_SCHEMAS, TableName, TableSchema } from './table-schemas';

export interface RouterTablesProps {
  /** Customer-managed key that encrypts every table. */
  readonly encryptionKey: kms.IKey;
  /**
   * What happens to the tables when the stack is deleted.
   * @default RemovalPolicy.RETAIN
   */
  readonly removalPolicy?: RemovalPolicy;
  /**
   * Deletion protection on every table.
   * @default true
   */
  readonly deletionProtection?: boolean;
}

/** Tag on the erasure-key table, for AWS Backup selections to exclude it (README: Operations). */
export const NO_BACKUP_TAG = { key: 'sovereign-router:backup', value: 'never' } as const;

/**
 * The cell's DynamoDB tables: regional only (no replicas), on-demand, deletion protection,
 * encrypted with the storage key, retained on stack deletion; PITR on all but the erasure-key
 * table, which no copy of may exist (crypto-shredding): PITR off, and its resource policy refuses
 * every backup, PITR and export action to every principal.
 */
export class RouterTables extends Construct {
  public readonly tenants: dynamodb.ITable;
  public readonly tokens: dynamodb.ITable;
  /** Governance counters and reservations: small, hot, transactional. */
  public readonly counters: dynamodb.ITable;
  /** Per-request usage records: append-only, growing, TTL. */
  public readonly usage: dynamodb.ITable;
  public readonly audit: dynamodb.ITable;
  /** Sealed response-cache entries (opt-in per tenant), TTL on `expiresAt`. */
  public readonly cache: dynamodb.ITable;
  /** Tenant erasure keys: no PITR, no backups, no exports. */
  public readonly erasure: dynamodb.ITable;

  constructor(scope: Construct, id: string, props: RouterTablesProps) {
    super(scope, id);
    const make = (schema: TableSchema): dynamodb.Table => {
      const backups = schema.backups ?? true;
      const table = new dynamodb.Table(this, schema.id, {
        partitionKey: attr(schema.partitionKey),
        sortKey: schema.sortKey ? attr(schema.sortKey) : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryptionKey: props.encryptionKey,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: backups },
        resourcePolicy: backups ? undefined : noCopiesPolicy(),
        deletionProtection: props.deletionProtection ?? true,
        removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
        timeToLiveAttribute: schema.timeToLiveAttribute,
      });
      for (const gsi of schema.globalSecondaryIndexes ?? []) {
        table.addGlobalSecondaryIndex({
          indexName: gsi.indexName,
          partitionKey: attr(gsi.partitionKey),
          sortKey: gsi.sortKey ? attr(gsi.sortKey) : undefined,
          projectionType: dynamodb.ProjectionType.ALL,
        });
      }
      if (!backups) {
        Tags.of(table).add(NO_BACKUP_TAG.key, NO_BACKUP_TAG.value);
        Validations.of(table).acknowledge({
          id: 'AwsSolutions::AwsSolutions-DDB3',
          reason:
            'The erasure-key table must have no point-in-time recovery: offboarding deletes a tenant key here so that no copy of the other (PITR-protected) tables can open its secrets again (crypto-shredding).',
        });
      }
      return table;
    };
    this.tenants = make(TABLE_SCHEMAS.tenants);
    this.tokens = make(TABLE_SCHEMAS.tokens);
    this.counters = make(TABLE_SCHEMAS.counters);
    this.usage = make(TABLE_SCHEMAS.usage);
    this.audit = make(TABLE_SCHEMAS.audit);
    this.cache = make(TABLE_SCHEMAS.cache);
    this.erasure = make(TABLE_SCHEMAS.erasure);
  }

  /** The table for a schema name. */
  public table(name: TableName): dynamodb.ITable {
    return this[name];
  }

  /** Read items and indexes of a table. The storage key is granted separately (KeyHierarchy). */
  public grantRead(name: TableName, grantee: iam.IGrantable): iam.Grant {
    return this.grantOn(name, grantee, TABLE_READ_ACTIONS);
  }

  /** Read and write items of a table. */
  public grantReadWrite(name: TableName, grantee: iam.IGrantable): iam.Grant {
    return this.grantOn(name, grantee, [...TABLE_READ_ACTIONS, ...TABLE_WRITE_ACTIONS]);
  }

  /** Append usage records and get one by key (PutItem, GetItem): no query, update or delete. */
  public grantUsageAppend(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('usage', grantee, USAGE_APPEND_ACTIONS);
  }

  /** Query usage records (the tenant console's timeline and the CLI export): Query only. */
  public grantUsageQuery(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('usage', grantee, USAGE_QUERY_ACTIONS);
  }

  /** The router's on-use pepper upgrade of a token record (PutItem, DeleteItem on tokens only). */
  public grantTokenVerifierMove(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('tokens', grantee, TOKEN_VERIFIER_MOVE_ACTIONS);
  }

  /** Scan the tokens table (the pepper status counts tokens per pepper version). */
  public grantTokenInventory(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('tokens', grantee, TOKEN_INVENTORY_ACTIONS);
  }

  /** Read every sealed row of the tenants table page by page (Scan), for the root-key migration only. */
  public grantSealedRowScan(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('tenants', grantee, TABLE_SCAN_ACTIONS);
  }

  /** Get and put response-cache entries by key (the router): no query, scan, update or delete. */
  public grantCacheReadWrite(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('cache', grantee, CACHE_ENTRY_ACTIONS);
  }

  /** Append to and read the audit table; no update and no delete. */
  public grantAuditAppend(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('audit', grantee, AUDIT_APPEND_ACTIONS);
  }

  /** Read tenant erasure keys (router: in the request's BatchGetItem; vault: before sealing). */
  public grantErasureKeyRead(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('erasure', grantee, ERASURE_KEY_READ_ACTIONS);
  }

  /** Create a tenant's erasure key (vault, on its first seal): PutItem and GetItem; no delete. */
  public grantErasureKeyCreate(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('erasure', grantee, ERASURE_KEY_CREATE_ACTIONS);
  }

  /** Destroy a tenant's erasure key (admin, offboarding): DeleteItem only; it cannot read one. */
  public grantErasureKeyDestroy(grantee: iam.IGrantable): iam.Grant {
    return this.grantOn('erasure', grantee, ERASURE_KEY_DESTROY_ACTIONS);
  }

  private grantOn(name: TableName, grantee: iam.IGrantable, actions: readonly string[]): iam.Grant {
    const table = this.table(name);
    // Name each index: no wildcard in the resource list.
    const indexes = (TABLE_SCHEMAS[name] as TableSchema).globalSecondaryIndexes ?? [];
    return iam.Grant.addToPrincipal({
      grantee,
      actions: [...actions],
      resourceArns: [table.tableArn, ...indexes.map((i) => `${table.tableArn}/index/${i.indexName}`)],
    });
  }
}

/**
 * The erasure-key table's resource policy: no principal may back it up, turn PITR on, restore or
 * export it. An explicit deny in a resource policy binds account administrators too, until one
 * of them replaces the policy (dynamodb:PutResourcePolicy, which CloudTrail records).
 */
function noCopiesPolicy(): iam.PolicyDocument {
  return new iam.PolicyDocument({
    statements: [
      new iam.PolicyStatement({
        sid: 'NoCopiesOfErasureKeys',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: [...ERASURE_KEY_DENIED_COPY_ACTIONS],
        resources: ['*'],
      }),
    ],
  });
}

function attr(key: KeyAttribute): dynamodb.Attribute {
  return { name: key.name, type: key.type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER };
}
