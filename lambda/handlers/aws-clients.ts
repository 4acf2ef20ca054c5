import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';

/**
 * SDK clients of a function, created once per execution environment. `AWS_ENDPOINT_URL` (the
 * SDK's own setting) points them at the local emulator in the local gateway.
 */
export function cellClients(region: string) {
  const common = { region, maxAttempts: 3 };
  return {
    ddb: new DynamoDBClient(common),
    kms: new KMSClient(common),
    secrets: new SecretsManagerClient(common),
  };
}
