/**
 * The AWS SDK v3 clients of the vault, admin and root-key migration functions (the router uses
 * the lean client: aws-clients.ts), under the same call budget.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { clientConfig, USER_AGENT } from './aws-clients';
// Adapters given these clients reach them through the rpc seam's SDK path.
import '../adapters/aws-sdk-rpc';

/**
 * SDK clients of a function, created once per execution environment, each only when the function
 * first asks for it. `AWS_ENDPOINT_URL` (the SDK's own setting) points them at the local emulator
 * in tests.
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

type Stack = {
  remove(name: string): boolean;
  add(mw: (next: (args: { request: unknown }) => Promise<unknown>) => (args: { request: unknown }) => Promise<unknown>, opts: { step: 'build'; name: string; priority: 'low' }): void;
};

/**
 * Two SDK middlewares that cost CPU on every call and do nothing the functions need:
 * - the logger renders every call's input and output through its sensitive-data filter even
 *   when nothing logs them; the functions log for themselves;
 * - the user-agent middleware rebuilds and escapes its header on every call; a constant header
 *   takes its place.
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
