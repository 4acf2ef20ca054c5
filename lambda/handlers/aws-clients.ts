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
 * The router's clients build each command's middleware chain once, not on every send (about a
 * fifth of the SDK's CPU per call). Safe because their stacks change only right after
 * construction (withLeanMiddleware), never per command; the router's DynamoDB adapters marshal
 * with util-dynamodb (dynamo-lean.ts), since lib-dynamodb's document client refuses such clients
 * (the vault's and admin's adapters still use it).
 */
export const ROUTER_CLIENT_OPTIONS = { cacheMiddleware: true } as const;

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
      return (ddb ??= withLeanMiddleware(new DynamoDBClient(config)));
    },
    get kms() {
      return (kms ??= withLeanMiddleware(new KMSClient(config)));
    },
    get secrets() {
      return (secrets ??= withLeanMiddleware(new SecretsManagerClient(config)));
    },
  };
}

/** What the functions tell AWS they are, in place of the SDK's per-call user agent. */
export const USER_AGENT = 'sovereign-router/0.1 aws-sdk-js/3';

type Stack = {
  remove(name: string): boolean;
  add(mw: (next: (args: { request: unknown }) => Promise<unknown>) => (args: { request: unknown }) => Promise<unknown>, opts: { step: 'build'; name: string; priority: 'low' }): void;
};

/**
 * Two SDK middlewares that cost CPU on every call and do nothing the functions need:
 * - the logger renders every call's input and output through its sensitive-data filter even
 *   when nothing logs them (about 7 % of the router's CPU per request); the functions log for
 *   themselves;
 * - the user-agent middleware rebuilds and escapes its header on every call (about a fifth of
 *   the SDK's CPU per call); a constant header takes its place.
 */
export function withLeanMiddleware<C extends { middlewareStack: unknown }>(client: C): C {
  const stack = client.middlewareStack as Stack;
  stack.remove('loggerMiddleware');
  stack.remove('getUserAgentMiddleware');
  stack.add(
    (next) => (args) => {
      const request = args.request as { headers?: Record<string, string> } | undefined;
      if (request?.headers) {
        request.headers['user-agent'] = USER_AGENT;
        request.headers['x-amz-user-agent'] = USER_AGENT;
      }
      return next(args);
    },
    { step: 'build', name: 'constantUserAgent', priority: 'low' },
  );
  return client;
}
