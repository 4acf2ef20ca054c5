import { fromEnv } from '@aws-sdk/credential-provider-env';
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { BedrockGuardrailClient } from '../adapters/bedrock-guardrail';
import { ProviderHttpClient } from '../adapters/provider-http';
import { cellConfigFromEnv } from '../core/cell-config';
import { jsonLogger } from '../core/logger';
import type { ResponseSink } from '../core/router/response-sink';
import { toHttpRequest } from './api-gateway-event';
import { leanClients } from './aws-clients';
import { productionRouter } from './router-wiring';

/** The Lambda response-streaming runtime API (a global of the Node.js runtime): a Writable. */
interface ResponseStream {
  write(chunk: string): void;
  end(): void;
  on?(event: 'close' | 'error', listener: (...args: unknown[]) => void): unknown;
  readonly destroyed?: boolean;
  readonly writableFinished?: boolean;
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
  // DynamoDB, KMS and Secrets Manager through the lean JSON-protocol client, not the SDK's
  // clients (aws-clients.ts): the SDK's middleware was two thirds of the router's CPU per request.
  clients: leanClients(config.region, config.requestDeadlineMs),
  // Amazon Bedrock: only this region's endpoint; `auth: 'iam'` targets sign with the function's
  // role (the credentials Lambda puts in the environment).
  providers: new ProviderHttpClient({ bedrock: { region: config.region, credentials: fromEnv() } }),
  // Amazon Bedrock Guardrails (policies naming one): this region's endpoint, the same role.
  guardrailService: new BedrockGuardrailClient({ region: config.region, credentials: fromEnv() }),
  log,
  emitMetric: (line) => process.stdout.write(`${line}\n`),
});

/**
 * Fires when the response stream closes or fails before the router ended it: the client (or
 * API Gateway on its behalf) went away, so the router cuts the upstream call.
 */
export function closedStreamSignal(responseStream: ResponseStream): AbortController {
  const gone = new AbortController();
  const closed = () => {
    if (!responseStream.writableFinished) gone.abort(new Error('response stream closed'));
  };
  responseStream.on?.('close', closed);
  responseStream.on?.('error', closed);
  return gone;
}

/** Backs the router's sink with the Lambda response stream (API Gateway STREAM mode). */
export function lambdaSink(responseStream: ResponseStream, gone?: AbortController): ResponseSink {
  let out: ResponseStream | undefined;
  return {
    start(status, headers) {
      if (out) throw new Error('response already started');
      out = awslambda.HttpResponseStream.from(responseStream, { statusCode: status, headers });
    },
    write(chunk) {
      if (!out) return;
      // A destroyed stream (or a write that throws) means the client is gone.
      if (out.destroyed) {
        gone?.abort(new Error('response stream closed'));
        return;
      }
      try {
        out.write(chunk);
      } catch {
        gone?.abort(new Error('response stream closed'));
      }
    },
    end() {
      (out ?? responseStream).end();
    },
  };
}

export const handler = awslambda.streamifyResponse(async (event, responseStream) => {
  const gone = closedStreamSignal(responseStream);
  await app({ ...toHttpRequest(event), signal: gone.signal }, lambdaSink(responseStream, gone));
});
