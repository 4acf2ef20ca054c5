import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { DynamoUsageRecords } from '../adapters/dynamo-usage-records';
import { DynamoTenantStore } from '../adapters/dynamo-tenant-store';
import { KmsDataKeyService } from '../adapters/kms-data-key-service';
import { SecretsManagerPepperSource } from '../adapters/secrets-manager-pepper';
import { cellConfigFromEnv } from '../core/cell-config';
import { errorFields, jsonLogger } from '../core/logger';
import { createVaultApp } from '../core/vault-app';
import { toHttpRequest, toProxyResult } from './api-gateway-event';
import { withRequestId } from '../core/http';
import { cellClients } from './aws-clients';
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

export async function handler(event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const started = Date.now();
  const req = toHttpRequest(event);
  const { requestId, res } = withRequestId(req, await app(req));
  log.info('request', { requestId, method: event.httpMethod, resource: event.resource, status: res.status, latencyMs: Date.now() - started });
  return toProxyResult(res);
}
