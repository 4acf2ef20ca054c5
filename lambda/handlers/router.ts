import type { APIGatewayProxyEvent } from 'aws-lambda';
import { ProviderHttpClient } from '../adapters/provider-http';
import { cellConfigFromEnv } from '../core/cell-config';
import { jsonLogger } from '../core/logger';
import type { ResponseSink } from '../core/router/response-sink';
import { toHttpRequest } from './api-gateway-event';
import { cellClients } from './aws-clients';
import { productionRouter } from './router-wiring';

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
const log = jsonLogger('router');
const app = productionRouter({
  config,
  clients: cellClients(config.region, config.requestDeadlineMs),
  providers: new ProviderHttpClient(),
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
