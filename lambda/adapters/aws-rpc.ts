/**
 * The seam between the router's AWS adapters and AWS: one call per operation, in the wire form of
 * the AWS JSON protocols (DynamoDB AttributeValues, binary and KMS blobs as base64). Two
 * implementations: the lean client of the deployed router (aws-json-client.ts), and the SDK's
 * clients for the vault, admin, the local moto backend and tests (aws-sdk-rpc.ts), which keep
 * constructing adapters with SDK clients. One contract suite runs both against moto
 * (test/contract/aws-rpc.contract.test.ts), so they cannot drift.
 */
import type { AwsJsonService } from './aws-json-client';

export interface AwsRpc {
  /** One operation: `input` and the answer in wire JSON; a failure throws an Error named by its service code. */
  send<T = Record<string, unknown>>(operation: string, input: object): Promise<T>;
}

/** An AWS SDK v3 client (DynamoDBClient, KMSClient, SecretsManagerClient), seen only as a type here. */
export interface SdkClientLike {
  readonly middlewareStack: unknown;
  readonly config: unknown;
  send(command: never): Promise<unknown>;
}

export const isSdkClient = (c: unknown): c is SdkClientLike =>
  typeof c === 'object' && c !== null && 'middlewareStack' in c && typeof (c as { send?: unknown }).send === 'function';

/**
 * The seam over what an adapter was given. An SDK client's commands are loaded on its first call
 * (a dynamic import), so the router, which is given lean clients, never loads them at init.
 */
export function rpcOf(client: AwsRpc | SdkClientLike, service: AwsJsonService): AwsRpc {
  if (!isSdkClient(client)) return client;
  let rpc: Promise<AwsRpc> | undefined;
  return {
    async send<T>(operation: string, input: object): Promise<T> {
      rpc ??= import('./aws-sdk-rpc').then((m) => m.sdkRpc(client, service));
      return (await rpc).send<T>(operation, input);
    },
  };
}
