import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import { Construct } from 'constructs';
import { AUDIT_APPEND_ACTIONS, CACHE_ENTRY_ACTIONS, TABLE_READ_ACTIONS, TABLE_SCAN_ACTIONS, TABLE_WRITE_ACTIONS, TOKEN_INVENTORY_ACTIONS, TOKEN_VERIFIER_MOVE_ACTIONS, USAGE_APPEND_ACTIONS, USAGE_QUERY_ACTIONS } from './private/iam-actions';
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

/**
 * The cell's DynamoDB tables: regional only (no replicas), on-demand, PITR, deletion protection,
 * encrypted with the storage key, retained on stack deletion.
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

  constructor(scope: Construct, id: string, props: RouterTablesProps) {
    super(scope, id);
    const make = (schema: TableSchema): dynamodb.Table => {
      const table = new dynamodb.Table(this, schema.id, {
        partitionKey: attr(schema.partitionKey),
        sortKey: schema.sortKey ? attr(schema.sortKey) : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryptionKey: props.encryptionKey,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
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
      return table;
    };
    this.tenants = make(TABLE_SCHEMAS.tenants);
    this.tokens = make(TABLE_SCHEMAS.tokens);
    this.counters = make(TABLE_SCHEMAS.counters);
    this.usage = make(TABLE_SCHEMAS.usage);
    this.audit = make(TABLE_SCHEMAS.audit);
    this.cache = make(TABLE_SCHEMAS.cache);
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

function attr(key: KeyAttribute): dynamodb.Attribute {
  return { name: key.name, type: key.type === 'S' ? dynamodb.AttributeType.STRING : dynamodb.AttributeType.NUMBER };
}
