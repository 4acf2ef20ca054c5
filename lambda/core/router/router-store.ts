import type { TokenVerifierMover } from '../authenticate';
import { secretSlotOf } from '../tenant-model';
import type { CounterItems, CounterKey } from './governance';
import type { UsageRecord } from './usage-record';

/** A stored item as read, table keys stripped and NOT validated: the router parses it only after authentication. */
export type RawItem = Readonly<Record<string, unknown>>;

/** Everything one request needs, read in one round trip, unparsed. */
export interface RequestContextRead {
  readonly token?: RawItem;
  /** The item under the previous pepper's verifier, when one was asked for and exists. */
  readonly previousToken?: RawItem;
  readonly tenant?: RawItem;
  /**
   * Sealed-secret items found, keyed `<provider>#<name>` of the key they were read under (never
   * of what the item claims to be).
   */
  readonly secrets: ReadonlyMap<string, RawItem>;
  /** Counter items governance asked for (missing items are absent). */
  readonly counters: CounterItems;
  /** The tenant's erasure-key item, from its own table in the same read; absent once offboarded. */
  readonly erasureKey?: RawItem;
}

/** @deprecated use secretSlotOf from tenant-model. */
export const secretKeyOf = secretSlotOf;

/**
 * The router's read path and its usage record. Its only write to tokens is the on-use pepper
 * upgrade (moveTokenVerifier: the same record under its new verifier); it cannot write tenants.
 */
export interface RouterStore extends TokenVerifierMover {
  /**
   * One BatchGetItem: the token by verifier, the tenant's META (which records every secret's
   * current version), the tenant's erasure key (another table, same call) and the `default`
   * secret of every provider the cell allows (a handful of
   * small items), so routing needs no second read. Items come back raw: a malformed one must not
   * fail the read, because the caller has not authenticated yet.
   */
  loadRequestContext(
    verifier: string,
    tenantId: string,
    providers: readonly string[],
    counterKeys?: readonly CounterKey[],
    /** During a pepper overlap: the token's verifier under the previous pepper, read in the same call. */
    previousVerifier?: string,
  ): Promise<RequestContextRead>;
  /**
   * loadRequestContext without a promise, offered only by a store that reads in this process (the
   * embedded store): the same read, its errors thrown instead of rejected. Absent on DynamoDB,
   * where the router awaits loadRequestContext.
   */
  loadRequestContextNow?(
    verifier: string,
    tenantId: string,
    providers: readonly string[],
    counterKeys?: readonly CounterKey[],
    previousVerifier?: string,
  ): RequestContextRead;
  /** A second read, only for route targets that name a non-default secret. Raw, like the above. */
  getSecret(tenantId: string, provider: string, name: string): Promise<RawItem | undefined>;
  putUsage(record: UsageRecord): Promise<void>;
}
