import { DynamoTenantStore } from '../../lambda/adapters/dynamo-tenant-store';
import { KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
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
  return {
    cell,
    config,
    clients,
    store: new DynamoTenantStore(clients.ddb, config.tables),
    pepper: new SecretsManagerPepperSource(clients.secrets, config.pepperSecretId),
    dataKeys: new KmsDataKeyService(clients.kms, config.rootKeyArn),
    usage: new DynamoUsageRecords(clients.ddb, config.tables.usage),
  };
}
