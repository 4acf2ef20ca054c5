import { DynamoTenantStore } from '../adapters/dynamo-tenant-store';
import { KmsDataKeyService } from '../adapters/kms-data-key-service';
import { SecretsManagerPepperSource } from '../adapters/secrets-manager-pepper';
import { createAdminApp } from '../core/admin-app';
import { cellConfigFromEnv } from '../core/cell-config';
import { errorFields, jsonLogger } from '../core/logger';
import { proxyHandler } from './api-gateway-event';
import { cellClients } from './sdk-clients';
import { cellAudit } from './audit-wiring';

// Composition root of the admin function. Its KMS use is the audit key (GenerateMac, VerifyMac), and
// the root key only when the cell opted into the key lifecycle (RegionalRouterProps.keyLifecycle).
const config = cellConfigFromEnv(process.env);
const clients = cellClients(config.region, config.requestDeadlineMs);
const log = jsonLogger('admin');
const audit = cellAudit(config, clients.kms, log);
const pepper = new SecretsManagerPepperSource(clients.secrets, config.pepperSecretId);
const app = createAdminApp({
  config,
  store: new DynamoTenantStore(clients.ddb, config.tables, audit.trail),
  pepper,
  pepperRotator: pepper,
  audit,
  onError: (err) => log.error('unexpected error', errorFields(err)),
  // Only when the cell opted in (RegionalRouterProps.keyLifecycle): the role then holds Decrypt
  // and GenerateDataKey on the root key; otherwise the reseal routes answer 501.
  keyLifecycle: process.env.KEY_LIFECYCLE === 'enabled' ? new KmsDataKeyService(clients.kms, config.rootKeyArn, { previousKeyArns: config.previousRootKeyArns }) : undefined,
});

export const handler = proxyHandler(app, log, { logCaller: true });
