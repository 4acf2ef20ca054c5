import type { TokenRecord } from './tenant-model';

/**
 * Waits before each look again at a tenant's token listing (140 ms in all): what a genuinely
 * unknown token id costs, and the time an eventually consistent index gets to catch up.
 */
export const LISTED_TOKEN_RETRY_DELAYS_MS: readonly number[] = [20, 40, 80];

/** A token found by id, with the listing it was found in. */
export interface ListedToken {
  readonly token: TokenRecord;
  readonly tokens: TokenRecord[];
}

/**
 * Finds a token by id in the tenant's listing. A token moving to the current pepper (put new
 * verifier, delete old; on use, see authenticate.ts) can briefly be under neither verifier in an
 * eventually consistent index (DynamoDB's byTenant GSI), so an id not listed is looked for again
 * a few times before it counts as unknown: a revocation must never answer "not found" for a
 * live token.
 */
export async function findListedToken(
  listTokens: (tenantId: string) => Promise<TokenRecord[]>,
  tenantId: string,
  tokenId: string,
  delaysMs: readonly number[] = LISTED_TOKEN_RETRY_DELAYS_MS,
): Promise<ListedToken | undefined> {
  for (let attempt = 0; ; attempt++) {
    const tokens = await listTokens(tenantId);
    const token = tokens.find((t) => t.tokenId === tokenId);
    if (token) return { token, tokens };
    if (attempt >= delaysMs.length) return undefined;
    await new Promise((r) => setTimeout(r, delaysMs[attempt]));
  }
}
