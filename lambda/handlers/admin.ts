import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import { DynamoTenantStore } from '../adapters/dynamo-tenant-store';
import { SecretsManagerPepperSource } from '../adapters/secrets-manager-pepper';
import { createAdminApp } from '../core/admin-app';
import { cellConfigFromEnv } from '../core/cell-config';
import { errorFields, jsonLogger } from '../core/logger';
import { toHttpRequest, toProxyResult } from './api-gateway-event';
import { withRequestId } from '../core/http';
import { cellClients } from './aws-clients';
import { cellAudit } from './audit-wiring';

// Composition root of the admin function. Its only KMS use is the audit key (GenerateMac, VerifyMac).
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
});

export async function handler(event: APIGatewayProxyEvent): Promise<APIGatewayProxyResult> {
  const started = Date.now();
  const req = toHttpRequest(event);
  const { requestId, res } = withRequestId(req, await app(req));
  log.info('request', { requestId, method: event.httpMethod, resource: event.resource, status: res.status, latencyMs: Date.now() - started, caller: event.requestContext?.identity?.userArn ?? undefined });
  return toProxyResult(res);
}
