import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { parseSealedSecret, SealedSecret } from '../core/envelope';

/** Keys of the tenants table: tenant META and sealed secrets share the tenant's partition. */
export const tenantKey = (tenantId: string) => ({ pk: `TENANT#${tenantId}`, sk: 'META' });
export const secretKey = (tenantId: string, provider: string, name: string) => ({
  pk: `TENANT#${tenantId}`,
  sk: `SECRET#${provider}#${name}`,
});

/** An item without its table keys. */
export function stripKeys<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, ...rest } = item;
  return rest as T;
}

/** One sealed secret by tenant, provider and name (strongly consistent). */
export async function getSealedSecret(
  doc: DynamoDBDocumentClient,
  table: string,
  tenantId: string,
  provider: string,
  name: string,
): Promise<SealedSecret | undefined> {
  const out = await doc.send(new GetCommand({ TableName: table, Key: secretKey(tenantId, provider, name), ConsistentRead: true }));
  return out.Item ? parseSealedSecret(stripKeys(out.Item)) : undefined;
}
