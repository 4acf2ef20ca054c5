/**
 * The DynamoDB side of an on-use pepper upgrade, shared by the router's and the tenant store:
 * one transaction puts the record under its new verifier (only if that key is free) and deletes
 * it under the old one only if every attribute is still exactly as read. A revocation, a limits
 * change, a rewrapped tenant factor or another request's move in between cancels it: nothing is
 * written and the token stays as it was (a revoked token stays revoked).
 */
import type { VersionedVerifier } from '../core/pepper-ring';
import type { TokenRecord } from '../core/tenant-model';
import type { DocTransactItem } from './dynamo-lean';

/** Every optional attribute of a TokenRecord (lambda/core/tenant-model.ts). */
export const TOKEN_OPTIONAL_ATTRIBUTES = ['pepperVersion', 'label', 'limits', 'wrappedFactor', 'factorKey', 'pendingFactor'] as const;

export async function moveTokenVerifierItem(
  /** One TransactWriteItems in document form: the tenant store's document client, or the router's LeanDynamo. */
  transactWrite: (input: { TransactItems: DocTransactItem[] }) => Promise<unknown>,
  table: string,
  item: Readonly<Record<string, unknown>>,
  to: VersionedVerifier,
): Promise<boolean> {
  const from = item.verifier;
  if (typeof from !== 'string' || from === to.verifier) return false;
  const names: Record<string, string> = { '#verifier': 'verifier' };
  const values: Record<string, unknown> = {};
  const unchanged: string[] = ['attribute_exists(#verifier)'];
  Object.entries(item)
    .filter(([k]) => k !== 'verifier')
    .forEach(([k, v], i) => {
      names[`#a${i}`] = k;
      values[`:v${i}`] = v;
      unchanged.push(`#a${i} = :v${i}`);
    });
  // DynamoDB cannot say "no other attributes", so every optional attribute of a token record that
  // was absent must still be absent: a factor change that sealed `pendingFactor` (or a limits
  // change that added `limits`) in between cancels the move instead of being dropped by it.
  TOKEN_OPTIONAL_ATTRIBUTES.filter((k) => !(k in item)).forEach((k, i) => {
    names[`#n${i}`] = k;
    unchanged.push(`attribute_not_exists(#n${i})`);
  });
  try {
    const input: { TransactItems: DocTransactItem[] } = {
      TransactItems: [
        {
          Put: {
            TableName: table,
            Item: { ...item, verifier: to.verifier, pepperVersion: to.version },
            ConditionExpression: 'attribute_not_exists(verifier)',
          },
        },
        {
          Delete: {
            TableName: table,
            Key: { verifier: from },
            ConditionExpression: unchanged.join(' AND '),
            ExpressionAttributeNames: names,
            ...(Object.keys(values).length > 0 ? { ExpressionAttributeValues: values } : {}),
          },
        },
      ],
    };
    await transactWrite(input);
    return true;
  } catch (err) {
    const name = (err as { name?: string }).name;
    if (name === 'TransactionCanceledException') return false;
    throw err;
  }
}

// Compile-time guard: a new optional TokenRecord attribute must be added to the list above.
type OptionalKeys<T> = { [K in keyof T]-?: object extends Pick<T, K> ? K : never }[keyof T];
type Missing = Exclude<OptionalKeys<TokenRecord>, (typeof TOKEN_OPTIONAL_ATTRIBUTES)[number]>;
const everyOptionalAttributeListed: [Missing] extends [never] ? true : Missing = true;
void everyOptionalAttributeListed;
