/**
 * The functions' AWS call budget, and the router's AWS clients: the lean JSON-protocol client
 * (lambda/adapters/aws-json-client.ts) for DynamoDB, KMS and Secrets Manager. The vault's, admin's
 * and migration's SDK clients are in sdk-clients.ts; both use the budget below.
 */
import { fromEnv } from '@aws-sdk/credential-provider-env';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';
import { AwsJsonClient, DYNAMODB, KMS, MAX_BACKOFF_MS, SECRETS_MANAGER, type RequestHandlerLike } from '../adapters/aws-json-client';

/** How long one AWS call may take, so that every retry of it fits well inside the request deadline. */
export interface AwsCallBudget {
  readonly maxAttempts: number;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

/** Standard retry mode waits at most this long before one retry (base 100 ms, jittered; the lean client caps it here). */
const MAX_BACKOFF_BEFORE_RETRY_MS = MAX_BACKOFF_MS;

/**
 * DynamoDB and KMS answer in milliseconds; an attempt that has not answered in 2 s is hung and is
 * retried once on a fresh connection. All attempts of one call, with their backoff, take at most
 * a quarter of the request deadline, so a hung dependency fails the request cleanly (503) long
 * before the deadline, with time left for the error response and the end stage.
 */
export function awsCallBudget(requestDeadlineMs: number): AwsCallBudget {
  const maxAttempts = 2;
  const requestTimeoutMs = Math.max(100, Math.min(2_000, Math.floor((requestDeadlineMs / 4 - MAX_BACKOFF_BEFORE_RETRY_MS) / maxAttempts)));
  return { maxAttempts, requestTimeoutMs, connectionTimeoutMs: Math.min(1_000, requestTimeoutMs) };
}

/** Worst case of one call under a budget: every attempt times out, plus the backoff between them. */
export const worstCaseCallMs = (b: AwsCallBudget) => b.maxAttempts * b.requestTimeoutMs + (b.maxAttempts - 1) * MAX_BACKOFF_BEFORE_RETRY_MS;

/** SDK client settings under the budget (sdk-clients.ts, audit-wiring.ts); the lean clients use the same transport settings. */
export function clientConfig(region: string, requestDeadlineMs: number) {
  const b = awsCallBudget(requestDeadlineMs);
  return {
    region,
    maxAttempts: b.maxAttempts,
    // Kept-alive connections: a new TLS connection per call costs more than the call itself.
    requestHandler: {
      connectionTimeout: b.connectionTimeoutMs,
      requestTimeout: b.requestTimeoutMs,
      // Without this, smithy only logs a warning when an attempt exceeds its timeout and keeps waiting.
      throwOnRequestTimeout: true,
      // The request timeout stops at the response headers; this bounds a body that stalls after them.
      socketTimeout: b.requestTimeoutMs,
      httpsAgent: { keepAlive: true, maxSockets: 50 },
      httpAgent: { keepAlive: true, maxSockets: 50 },
    },
  };
}

/** What the functions tell AWS they are, in place of the SDK's per-call user agent. */
export const USER_AGENT = 'sovereign-router/0.1 aws-sdk-js/3';

export interface LeanClientOptions {
  /** @default - AWS_ENDPOINT_URL_<SERVICE> / AWS_ENDPOINT_URL, else the regional endpoints */
  readonly endpoint?: string;
  /** @default fromEnv() (Lambda puts the role's credentials in the environment) */
  readonly credentials?: AwsCredentialIdentityProvider | AwsCredentialIdentity;
  /** @default one NodeHttpHandler under the call budget, shared by the three clients */
  readonly requestHandler?: RequestHandlerLike;
}

/**
 * The router's clients, created once per execution environment, each when first asked for: the
 * lean client under the call budget (attempts, timeouts, kept-alive connections), one transport
 * for all three. `AWS_ENDPOINT_URL` points them at the local emulator in tests, as for the SDK.
 */
export function leanClients(region: string, requestDeadlineMs = 300_000, o: LeanClientOptions = {}) {
  const config = clientConfig(region, requestDeadlineMs);
  let handler = o.requestHandler;
  const options = () => ({
    region,
    maxAttempts: config.maxAttempts,
    // A whole attempt, body included, within its share of the budget (a trickling body too).
    attemptTimeoutMs: config.requestHandler.requestTimeout,
    credentials: o.credentials ?? fromEnv(),
    requestHandler: (handler ??= new NodeHttpHandler(config.requestHandler)),
    userAgent: USER_AGENT,
    ...(o.endpoint !== undefined ? { endpoint: o.endpoint } : {}),
  });
  let ddb: AwsJsonClient | undefined;
  let kms: AwsJsonClient | undefined;
  let secrets: AwsJsonClient | undefined;
  return {
    get ddb() {
      return (ddb ??= new AwsJsonClient(DYNAMODB, options()));
    },
    get kms() {
      return (kms ??= new AwsJsonClient(KMS, options()));
    },
    get secrets() {
      return (secrets ??= new AwsJsonClient(SECRETS_MANAGER, options()));
    },
  };
}
