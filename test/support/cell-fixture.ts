import { DynamoTenantStore } from '../../lambda/adapters/dynamo-tenant-store';
import { KmsAuditMac } from '../../lambda/adapters/kms-audit-mac';
import { KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
import { S3AuditAnchors } from '../../lambda/adapters/s3-audit-anchors';
import { AuditTrail } from '../../lambda/core/audit-chain';
import { SecretsManagerPepperSource } from '../../lambda/adapters/secrets-manager-pepper';
import { CellConfig, cellConfigFromEnv } from '../../lambda/core/cell-config';
import { provisionCell, ProvisionedCell } from '../../local/provision-cell';
import { awsClients, AwsTestClients } from './aws-clients';
import { DynamoUsageRecords } from '../../lambda/adapters/dynamo-usage-records';

export interface CellFixture {
  readonly cell: ProvisionedCell;
  readonly config: CellConfig;
  readonly clients: AwsTestClients;
  readonly store: DynamoTenantStore;
  readonly pepper: SecretsManagerPepperSource;
  readonly dataKeys: KmsDataKeyService;
  readonly usage: DynamoUsageRecords;
  /** The cell's audit key and anchor bucket (in moto), as the vault and admin functions use them. */
  readonly audit: { readonly mac: KmsAuditMac; readonly anchors: S3AuditAnchors; readonly trail: AuditTrail };
}

/** The AWS audit adapters of a provisioned cell. */
export function cellAuditOf(cell: ProvisionedCell, clients: AwsTestClients): CellFixture['audit'] {
  if (!cell.audit) throw new Error('the cell was provisioned without its audit key and anchor bucket');
  const mac = new KmsAuditMac(clients.kms, cell.audit.keyArn);
  const anchors = new S3AuditAnchors(clients.s3, cell.audit.anchorBucket);
  const trail = new AuditTrail(mac, anchors, (err) => {
    throw new Error(`audit anchor failed in a test cell: ${(err as Error).name}`);
  });
  return { mac, anchors, trail };
}

export const TEST_PROVIDERS = {
  openai: { kind: 'openai', baseUrl: 'http://127.0.0.1:9' },
  anthropic: { kind: 'anthropic', baseUrl: 'http://127.0.0.1:9' },
  mistral: { kind: 'mistral', baseUrl: 'http://127.0.0.1:9' },
} as const;

/** A provisioned cell in a running moto, with the production adapters wired to it. */
export async function cellFixture(
  endpoint: string,
  region: string,
  opts: { prefix?: string; providers?: Record<string, { kind: string; baseUrl: string }>; maxRequestBytes?: number } = {},
): Promise<CellFixture> {
  const clients = awsClients(endpoint, region);
  const cell = await provisionCell(clients, {
    region,
    providers: opts.providers ?? TEST_PROVIDERS,
    prefix: opts.prefix ?? `t${Math.random().toString(36).slice(2, 8)}-${region}`,
    maxRequestBytes: opts.maxRequestBytes,
  });
  const config = cellConfigFromEnv(cell.env);
  // Its own clients, so that tests counting the vault's or the router's KMS calls are not disturbed.
  const audit = cellAuditOf(cell, awsClients(endpoint, region));
  return {
    cell,
    config,
    clients,
    store: new DynamoTenantStore(clients.ddb, config.tables, audit.trail),
    audit,
    pepper: new SecretsManagerPepperSource(clients.secrets, config.pepperSecretId),
    dataKeys: new KmsDataKeyService(clients.kms, config.rootKeyArn),
    usage: new DynamoUsageRecords(clients.ddb, config.tables.usage),
  };
}
