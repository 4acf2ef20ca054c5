/**
 * Table layouts as plain data. The CDK construct builds the tables from these, and the local
 * gateway and the moto tests create theirs from the same definitions, so all three agree.
 */
export type AttributeKind = 'S' | 'N';

export interface KeyAttribute {
  readonly name: string;
  readonly type: AttributeKind;
}

export interface IndexSchema {
  readonly indexName: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
}

export interface TableSchema {
  /** Construct id of the table and stem of the function environment variable. */
  readonly id: string;
  readonly partitionKey: KeyAttribute;
  readonly sortKey?: KeyAttribute;
  readonly globalSecondaryIndexes?: readonly IndexSchema[];
  readonly timeToLiveAttribute?: string;
  /**
   * Whether any copy of the table may exist (PITR, on-demand and AWS Backup backups, exports).
   * False only for the erasure-key table, whose whole point is that deleting an item destroys
   * it everywhere.
   * @default true
   */
  readonly backups?: boolean;
}

export const TABLE_SCHEMAS = {
  /** Tenant metadata and policy (`sk = META`) and sealed secrets (`sk = SECRET#<provider>#<name>`). */
  tenants: {
    id: 'Tenants',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
  },
  /** Tenant tokens keyed by verifier (HMAC of the token); never the token itself. */
  tokens: {
    id: 'Tokens',
    partitionKey: { name: 'verifier', type: 'S' },
    globalSecondaryIndexes: [
      { indexName: 'byTenant', partitionKey: { name: 'tenantId', type: 'S' }, sortKey: { name: 'tokenId', type: 'S' } },
    ],
  },
  /**
   * Governance: spend counters, rate windows and in-flight reservations. Small and hot, written
   * by transactions; kept apart from the usage log so no transaction's cost grows with history.
   * Rate windows and reservations expire (TTL).
   */
  counters: {
    id: 'Counters',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    timeToLiveAttribute: 'expiresAt',
  },
  /** Per-request usage records (`REQ#<tenant>` / `<at>#<requestId>`): append-only, expire after 400 days. */
  usage: {
    id: 'Usage',
    partitionKey: { name: 'pk', type: 'S' },
    sortKey: { name: 'sk', type: 'S' },
    timeToLiveAttribute: 'expiresAt',
  },
  /**
   * Response cache (opt-in per tenant): `pk` = HMAC of the canonical request under the tenant's
   * lookup key, the answer sealed with AES-256-GCM under the tenant's seal key; TTL on expiresAt.
   */
  cache: {
    id: 'ResponseCache',
    partitionKey: { name: 'pk', type: 'S' },
    timeToLiveAttribute: 'expiresAt',
  },
  /** Append-only, hash-chained control-plane events per tenant. */
  audit: {
    id: 'Audit',
    partitionKey: { name: 'tenantId', type: 'S' },
    sortKey: { name: 'seq', type: 'N' },
  },
  /**
   * Tenant erasure keys (crypto-shredding): one 32-byte key per tenant that every v2 sealed
   * secret needs. No PITR and no backup of any kind, so offboarding's delete is final.
   */
  erasure: {
    id: 'ErasureKeys',
    partitionKey: { name: 'tenantId', type: 'S' },
    backups: false,
  },
} as const satisfies Record<string, TableSchema>;

export type TableName = keyof typeof TABLE_SCHEMAS;

/** Environment variable through which a function learns a table's name. */
export function tableEnvVar(table: TableName): string {
  return `${table.toUpperCase()}_TABLE`;
}
