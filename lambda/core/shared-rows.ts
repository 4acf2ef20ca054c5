/**
 * Stored items that a store hands to every request that reads the same unchanged row, as one
 * object: the embedded store's row cache (local/embedded/row-cache.ts) parses a row's text once
 * and gives out that object until the row changes. Such an item is deeply frozen when it is
 * registered here, so nothing can change it afterwards, and what a parser derives from it can be
 * kept by the item's identity (a WeakMap: gone with the item) instead of being derived again, or
 * keyed by its JSON text, on every request.
 *
 * Only rows a store caches anyway go through here (tokens, tenants, sealed secrets, and the
 * erasure-key item, whose text the cache already holds). A parser keeps a checked result only of
 * a non-secret row, never key material (the erasure key is decoded into a fresh buffer on every
 * request and zero-filled after it). Every per-request check still runs (the token verified
 * before any row is parsed or used, the identity, META's version, the mode).
 * Items that were not registered (the DynamoDB adapters' fresh items, any caller's object,
 * frozen or not) are parsed as before.
 */
const SHARED = new WeakSet<object>();

/** Deeply freezes a freshly parsed JSON value and registers it as shared (see above). */
export function shareRow<T extends object>(item: T): Readonly<T> {
  deepFreeze(item);
  SHARED.add(item);
  return item;
}

/** Whether `item` was registered by shareRow: deeply frozen, the same object for the same row. */
export function isSharedRow(item: unknown): item is object {
  return typeof item === 'object' && item !== null && SHARED.has(item);
}

/** Freezes `v` and everything reachable from it (plain data: objects and arrays). */
export function deepFreeze<T>(v: T): T {
  if (v && typeof v === 'object' && !Object.isFrozen(v)) {
    Object.freeze(v);
    for (const x of Object.values(v)) deepFreeze(x);
  }
  return v;
}
