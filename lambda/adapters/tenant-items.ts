/** Table keys shared by the tenant store and the router's store; no AWS client here (the router's bundle imports it). */

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
