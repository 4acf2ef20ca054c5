/**
 * The IAM condition context of a KMS call with the cell's encryption context: one
 * `kms:EncryptionContext:<key>` per pair and `kms:EncryptionContextKeys`. Defaults to a secret of
 * tenant acme; an override of `undefined` leaves that pair out.
 */
export function kmsContextVars(region: string, overrides: Record<string, string | undefined> = {}): Record<string, string | string[]> {
  const pairs: Record<string, string | undefined> = { app: 'sovereign-router', region, tenant: 'acme', provider: 'openai', secret: 'default', version: '1', ...overrides };
  const vars: Record<string, string | string[]> = {};
  const keys: string[] = [];
  for (const [k, v] of Object.entries(pairs)) {
    if (v === undefined) continue;
    vars[`kms:EncryptionContext:${k}`] = v;
    keys.push(k);
  }
  vars['kms:EncryptionContextKeys'] = keys;
  return vars;
}
