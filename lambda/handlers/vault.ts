import { DynamoUsageRecords } from '../adapters/dynamo-usage-records';
import { DynamoTenantStore } from '../adapters/dynamo-tenant-store';
import { KmsDataKeyService } from '../adapters/kms-data-key-service';
import { SecretsManagerPepperSource } from '../adapters/secrets-manager-pepper';
import { cellConfigFromEnv } from '../core/cell-config';
import { errorFields, jsonLogger } from '../core/logger';
import { createVaultApp } from '../core/vault-app';
import { proxyHandler } from './api-gateway-event';
import { cellClients } from './sdk-clients';
import { cellAudit } from './audit-wiring';

// Composition root of the vault function: built once per execution environment.
const config = cellConfigFromEnv(process.env);
const clients = cellClients(config.region, config.requestDeadlineMs);
const log = jsonLogger('vault');
const audit = cellAudit(config, clients.kms, log);
const app = createVaultApp({
  config,
  store: new DynamoTenantStore(clients.ddb, config.tables, audit.trail),
  pepper: new SecretsManagerPepperSource(clients.secrets, config.pepperSecretId),
  dataKeys: new KmsDataKeyService(clients.kms, config.rootKeyArn, { previousKeyArns: config.previousRootKeyArns }),
  usage: new DynamoUsageRecords(clients.ddb, config.tables.usage),
  audit,
  onError: (err) => log.error('unexpected error', errorFields(err)),
});

export const handler = proxyHandler(app, log);
