import { DynamoSealedRowScanner } from '../adapters/dynamo-sealed-row-scanner';
import { DynamoTenantStore } from '../adapters/dynamo-tenant-store';
import { KmsDataKeyRewrapper } from '../adapters/kms-data-key-rewrapper';
import { cellConfigFromEnv } from '../core/cell-config';
import { errorFields, jsonLogger } from '../core/logger';
import { createRootKeyMigrationApp } from '../core/root-key-migration-app';
import { proxyHandler } from './api-gateway-event';
import { cellAudit } from './audit-wiring';
import { cellClients } from './sdk-clients';

// Composition root of the root-key migration function. Its only root-key actions are
// kms:ReEncryptFrom (previous keys) and kms:ReEncryptTo (current key): it never sees a data key.
const config = cellConfigFromEnv(process.env);
const clients = cellClients(config.region, config.requestDeadlineMs);
const log = jsonLogger('root-key-migration');
const audit = cellAudit(config, clients.kms, log);
const sourceKeyArns = config.previousRootKeyArns ?? [];
const app = createRootKeyMigrationApp({
  region: config.region,
  rows: new DynamoSealedRowScanner(clients.ddb, config.tables.tenants),
  store: new DynamoTenantStore(clients.ddb, config.tables, audit.trail),
  rewrapper: new KmsDataKeyRewrapper(clients.kms, config.rootKeyArn, sourceKeyArns),
  sourceKeyArns,
  // API Gateway ends an integration after 29 s: answer well before, with a cursor.
  batchBudgetMs: 15_000,
  onError: (err) => log.error('unexpected error', errorFields(err)),
});

export const handler = proxyHandler(app, log, { logCaller: true });
