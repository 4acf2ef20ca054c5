import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/** How long one AWS call may take, so that every retry of it fits well inside the request deadline. */
export interface AwsCallBudget {
  readonly maxAttempts: number;
  readonly connectionTimeoutMs: number;
  readonly requestTimeoutMs: number;
}

/** Standard retry mode waits at most this long in total before the second attempt (base 100 ms, jittered). */
const MAX_BACKOFF_BEFORE_RETRY_MS = 200;

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
      httpsAgent: { keepAlive: true, maxSockets: 50 },
      httpAgent: { keepAlive: true, maxSockets: 50 },
    },
  };
}

/**
 * SDK clients of a function, created once per execution environment, each only when the function
 * first asks for it (the router never builds an S3 client: see audit-wiring.ts). `AWS_ENDPOINT_URL` (the
 * SDK's own setting) points them at the local emulator in tests.
 */
export function cellClients(region: string, requestDeadlineMs = 300_000, overrides: Record<string, unknown> = {}) {
  const config = { ...clientConfig(region, requestDeadlineMs), ...overrides };
  let ddb: DynamoDBClient | undefined;
  let kms: KMSClient | undefined;
  let secrets: SecretsManagerClient | undefined;
  return {
    get ddb() {
      return (ddb ??= withoutSdkLogging(new DynamoDBClient(config)));
    },
    get kms() {
      return (kms ??= withoutSdkLogging(new KMSClient(config)));
    },
    get secrets() {
      return (secrets ??= withoutSdkLogging(new SecretsManagerClient(config)));
    },
  };
}

/**
 * The SDK's logger middleware renders every call's input and output through its sensitive-data
 * filter even when nothing logs them (about 7 % of the router's CPU per request). The functions
 * log for themselves, so it goes.
 */
function withoutSdkLogging<C extends { middlewareStack: { remove(name: string): boolean } }>(client: C): C {
  client.middlewareStack.remove('loggerMiddleware');
  return client;
}
