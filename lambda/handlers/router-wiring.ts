import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoGovernance } from '../adapters/dynamo-governance';
import { DynamoRouterStore } from '../adapters/dynamo-router-store';
import { KmsDataKeyService } from '../adapters/kms-data-key-service';
import { SecretsManagerPepperSource } from '../adapters/secrets-manager-pepper';
import type { CellConfig } from '../core/cell-config';
import type { Logger } from '../core/logger';
import type { ProviderClient } from '../core/router/provider-port';
import { createRouterApp } from '../core/router/router-app';
import { CircuitBreaker } from '../core/routing/circuit-breaker';

/**
 * The deployed router's adapters over a function's SDK clients: the Lambda handler uses it, and
 * so does the CPU benchmark (with clients answering in-process), so both measure one wiring.
 */
export function productionRouter(o: {
  readonly config: CellConfig;
  readonly clients: { readonly ddb: DynamoDBClient; readonly kms: KMSClient; readonly secrets: SecretsManagerClient };
  readonly providers: ProviderClient;
  readonly log: Logger;
  readonly emitMetric?: (line: string) => void;
}) {
  const { config, clients, log } = o;
  return createRouterApp({
    config,
    store: new DynamoRouterStore(clients.ddb, config.tables),
    pepper: new SecretsManagerPepperSource(clients.secrets, config.pepperSecretId),
    dataKeys: new KmsDataKeyService(clients.kms, config.rootKeyArn),
    providers: o.providers,
    // Budgets, RPM/TPM and allowlists on the counters table, priced with the cell's price table.
    governance: new DynamoGovernance(clients.ddb, { table: config.tables.counters, usageRecordsTable: config.tables.usage, prices: config.prices, log }),
    breaker: new CircuitBreaker(),
    log,
    emitMetric: o.emitMetric,
  });
}
