import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import type { InitializeMiddleware, MetadataBearer } from '@smithy/types';
// Tests hand the router's adapters SDK clients: the rpc seam's SDK path (lambda/adapters/aws-rpc.ts).
import '../../lambda/adapters/aws-sdk-rpc';

/** Static fake credentials: the SDK never looks for real ones (env, files, IMDS). */
export const testCredentials = { accessKeyId: 'testing', secretAccessKey: 'testing' } as const;

export interface AwsTestClients {
  kms: KMSClient;
  ddb: DynamoDBClient;
  doc: DynamoDBDocumentClient;
  secrets: SecretsManagerClient;
  s3: S3Client;
}

/** Real SDK v3 clients pointed at a loopback endpoint (moto). Refuses any other host. */
export function awsClients(endpoint: string, region: string): AwsTestClients {
  const { hostname } = new URL(endpoint);
  if (hostname !== '127.0.0.1' && hostname !== 'localhost') {
    throw new Error(`awsClients: tests may only talk to loopback, got ${hostname}`);
  }
  const config = {
    endpoint,
    region,
    credentials: testCredentials,
    // Fail fast: a retry loop against a dead local server only hides the real error.
    maxAttempts: 2,
    requestHandler: { connectionTimeout: 2_000, requestTimeout: 15_000 },
  };
  const ddb = new DynamoDBClient(config);
  return {
    kms: new KMSClient(config),
    ddb,
    doc: DynamoDBDocumentClient.from(ddb),
    secrets: new SecretsManagerClient(config),
    // moto serves S3 on the same port: path-style addressing keeps every request on 127.0.0.1.
    s3: new S3Client({ ...config, forcePathStyle: true }),
  };
}

interface HasMiddlewareStack {
  middlewareStack: {
    add(middleware: InitializeMiddleware<object, MetadataBearer>, options: { step: 'initialize'; name: string }): void;
  };
}

let recorders = 0;

/** Records the name of every command the client sends (e.g. 'DecryptCommand'), before any I/O. */
export function recordCommands(client: HasMiddlewareStack): string[] {
  const sent: string[] = [];
  client.middlewareStack.add(
    (next, context) => (args) => {
      sent.push(String(context.commandName));
      return next(args);
    },
    { step: 'initialize', name: `recordCommands${++recorders}` },
  );
  return sent;
}
