/**
 * The seam between the router's AWS adapters and AWS: one call per operation, in the wire form of
 * the AWS JSON protocols (DynamoDB AttributeValues, binary and KMS blobs as base64). Two
 * implementations: the lean client of the deployed router (aws-json-client.ts), and the SDK's
 * clients for the vault, admin, the local moto backend and tests (aws-sdk-rpc.ts), which keep
 * constructing adapters with SDK clients. One contract suite runs both against moto
 * (test/contract/aws-rpc.contract.test.ts), so they cannot drift.
 */

/** An AWS JSON-protocol service, as the seam and the lean client address it. */
export interface AwsJsonService {
  /** Endpoint prefix and SigV4 service name. */
  readonly endpointPrefix: string;
  /** X-Amz-Target prefix. */
  readonly targetPrefix: string;
  readonly jsonVersion: '1.0' | '1.1';
  /** The SDK's service id in environment variables: AWS_ENDPOINT_URL_<envId>. */
  readonly envId: string;
  /** Short name used in error messages. */
  readonly name: string;
}

export const DYNAMODB: AwsJsonService = { endpointPrefix: 'dynamodb', targetPrefix: 'DynamoDB_20120810', jsonVersion: '1.0', envId: 'DYNAMODB', name: 'DynamoDB' };
export const KMS: AwsJsonService = { endpointPrefix: 'kms', targetPrefix: 'TrentService', jsonVersion: '1.1', envId: 'KMS', name: 'KMS' };
export const SECRETS_MANAGER: AwsJsonService = { endpointPrefix: 'secretsmanager', targetPrefix: 'secretsmanager', jsonVersion: '1.1', envId: 'SECRETS_MANAGER', name: 'SecretsManager' };

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

type SdkRpcFactory = (client: SdkClientLike, service: AwsJsonService) => AwsRpc;
let sdkRpcFactory: SdkRpcFactory | undefined;

/**
 * Called by aws-sdk-rpc.ts when it loads. The SDK path is registered, not imported here, so that
 * the router's bundle, whose adapters are given lean clients, carries no SDK client code: the
 * modules that hand adapters SDK clients load it (lambda/handlers/sdk-clients.ts,
 * dynamo-tenant-store.ts for the vault and the local moto backend, test/support/aws-clients.ts).
 */
export function registerSdkRpc(factory: SdkRpcFactory): void {
  sdkRpcFactory = factory;
}

/** The seam over what an adapter was given: an rpc as it is, an SDK client through its commands. */
export function rpcOf(client: AwsRpc | SdkClientLike, service: AwsJsonService): AwsRpc {
  if (!isSdkClient(client)) return client;
  if (!sdkRpcFactory) throw new Error(`${service.name}: an SDK client was given, but lambda/adapters/aws-sdk-rpc.ts is not loaded; import it, or give the adapter a lean client`);
  return sdkRpcFactory(client, service);
}
