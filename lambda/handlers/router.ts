import type { APIGatewayProxyEvent } from 'aws-lambda';
import { DynamoGovernance } from '../adapters/dynamo-governance';
import { DynamoRouterStore } from '../adapters/dynamo-router-store';
import { KmsDataKeyService } from '../adapters/kms-data-key-service';
import { ProviderHttpClient } from '../adapters/provider-http';
import { SecretsManagerPepperSource } from '../adapters/secrets-manager-pepper';
import { cellConfigFromEnv } from '../core/cell-config';
import { jsonLogger } from '../core/logger';
import { CircuitBreaker } from '../core/routing/circuit-breaker';
import { createRouterApp } from '../core/router/router-app';
import type { ResponseSink } from '../core/router/response-sink';
import { toHttpRequest } from './api-gateway-event';
import { cellClients } from './aws-clients';

/** The Lambda response-streaming runtime API (a global of the Node.js runtime). */
interface ResponseStream {
  write(chunk: string): void;
  end(): void;
}
declare const awslambda: {
  streamifyResponse(fn: (event: APIGatewayProxyEvent, stream: ResponseStream) => Promise<void>): unknown;
  HttpResponseStream: { from(stream: ResponseStream, meta: { statusCode: number; headers: Record<string, string> }): ResponseStream };
};

// Composition root of the router: clients, pepper cache and circuit breaker live for the
// execution environment; plaintext keys live for one request only (inside the router app).
const config = cellConfigFromEnv(process.env);
const clients = cellClients(config.region, config.requestDeadlineMs);
const log = jsonLogger('router');
const app = createRouterApp({
  config,
  store: new DynamoRouterStore(clients.ddb, config.tables),
  pepper: new SecretsManagerPepperSource(clients.secrets, config.pepperSecretId),
  dataKeys: new KmsDataKeyService(clients.kms, config.rootKeyArn),
  providers: new ProviderHttpClient(),
  // Budgets, RPM/TPM and allowlists on the usage table, priced with the cell's price table.
  governance: new DynamoGovernance(clients.ddb, { table: config.tables.usage, prices: config.prices, log }),
  breaker: new CircuitBreaker(),
  log,
  emitMetric: (line) => process.stdout.write(`${line}\n`),
});

/** Backs the router's sink with the Lambda response stream (API Gateway STREAM mode). */
export function lambdaSink(responseStream: ResponseStream): ResponseSink {
  let out: ResponseStream | undefined;
  return {
    start(status, headers) {
      if (out) throw new Error('response already started');
      out = awslambda.HttpResponseStream.from(responseStream, { statusCode: status, headers });
    },
    write(chunk) {
      out?.write(chunk);
    },
    end() {
      (out ?? responseStream).end();
    },
  };
}

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  await app(toHttpRequest(event), lambdaSink(responseStream));
});
