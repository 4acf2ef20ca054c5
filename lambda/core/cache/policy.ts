/**
 * The response cache is opt-in per tenant (policy `cache`) and per route: `routes` names the
 * model names or route-table aliases whose answers may be cached (absent: every model), `apis`
 * the client APIs (absent: all of chat, messages and embeddings).
 */
import { z } from 'zod';
import type { ApiRoute } from '../router/client-request';

export const CACHE_APIS = ['chat', 'messages', 'embeddings'] as const;
export const MAX_CACHE_TTL_SECONDS = 7 * 24 * 3600;

export const cachePolicySchema = z
  .object({
    /** How long an answer is replayed, in seconds. */
    ttlSeconds: z.number().int().min(1).max(MAX_CACHE_TTL_SECONDS),
    /** Model names or route aliases to cache; absent: all. */
    routes: z
      .array(z.string().min(1).max(128).regex(/^[A-Za-z0-9._:/@-]+$/, 'model names hold letters, digits and . _ : / @ -'))
      .max(256)
      .optional(),
    /** Client APIs to cache; absent: all. */
    apis: z.array(z.enum(CACHE_APIS)).max(3).optional(),
  })
  .strict();
export type CachePolicy = z.infer<typeof cachePolicySchema>;

const isCacheApi = (route: ApiRoute): route is (typeof CACHE_APIS)[number] => (CACHE_APIS as readonly string[]).includes(route);

/** The TTL for this request, or undefined when the tenant has not opted this route in. */
export function cacheTtlFor(policy: CachePolicy | undefined, route: ApiRoute, model: string): number | undefined {
  // Only the stateless APIs: a Responses answer is tied to state at the provider (response ids,
  // previous_response_id), which a replay would not create.
  if (!policy || !isCacheApi(route)) return undefined;
  if (policy.apis && !policy.apis.includes(route)) return undefined;
  if (policy.routes && !policy.routes.includes(model)) return undefined;
  return policy.ttlSeconds;
}
