/**
 * The governance ledger port: the counters table seen as what governance needs from it, and no
 * more. Everything that decides (admission, denial reasons, reclaim, settle arithmetic) lives in
 * core (ledger-governance.ts); an adapter only maps these writes onto its store, all or nothing.
 *
 * Items (keys in keys.ts):
 * - spend counters: spentMicros, reservedMicros, committedMicros (= spent + reserved: conditions
 *   in DynamoDB cannot add, so the sum a budget is compared with is kept as its own field);
 * - rate windows: requests, tokens;
 * - reservations: one in-flight request's hold on both spend counters.
 */
import type { CounterKey } from '../router/governance';

export const COUNTER_FIELDS = ['spentMicros', 'reservedMicros', 'committedMicros', 'requests', 'tokens'] as const;
export type CounterField = (typeof COUNTER_FIELDS)[number];

/** Numeric fields of a counter item as read back (absent fields are absent). */
export type CounterValues = Partial<Record<CounterField, number>>;

export interface CounterUpdate {
  readonly key: CounterKey;
  /** Added to each named field; a field that does not exist yet starts at 0. */
  readonly add: Partial<Record<CounterField, number>>;
  /**
   * Conditions, judged on the item before this write: each named field must be absent or at
   * most the given value, or the whole write fails and names this update.
   */
  readonly ceilings?: Partial<Record<CounterField, number>>;
  /** Expiry (epoch seconds) given to the item when this write creates it; an existing one is kept. */
  readonly expiresAt?: number;
  /** A string attribute set on the item (the token id on a token's spend item, for reports). */
  readonly tokenId?: string;
}

/** One in-flight reservation, as stored. */
export interface ReservationRecord {
  readonly key: CounterKey;
  readonly tenantId: string;
  readonly tokenId: string;
  /** Counter id of the token (digest of its verifier). */
  readonly tokenKey: string;
  /** `YYYY-MM` whose spend items hold the amount. */
  readonly period: string;
  readonly window: string;
  readonly amountMicros: number;
  readonly tpmTokens: number;
  readonly model: string;
  readonly createdAt: string;
  /** Epoch seconds after which the reservation may be given back by anyone. */
  readonly reclaimAfter: number;
  /** Epoch seconds: TTL of the stored item, long after reclaimAfter. */
  readonly expiresAt: number;
}

export type ReservationChange =
  /** Create it; fails if one with this key exists. */
  | { readonly put: ReservationRecord }
  /** Delete it; fails if it is not there, or (with `reclaimableAt`) if its reclaimAfter is not below that. */
  | { readonly delete: CounterKey; readonly reclaimableAt?: number };

export interface LedgerWrite {
  readonly reservation?: ReservationChange;
  readonly counters: readonly CounterUpdate[];
  /**
   * Makes a retried write a no-op if the first attempt committed after all (DynamoDB's
   * ClientRequestToken). A store whose failed writes never commit may ignore it.
   */
  readonly idempotencyToken?: string;
}

export type LedgerResult =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** The reservation's own condition failed. */
      readonly reservationFailed: boolean;
      /** Updates (by index in `counters`) whose ceilings failed, with the item as it was when known. */
      readonly failed: readonly { readonly index: number; readonly item?: CounterValues }[];
    };

export interface GovernanceLedger {
  /**
   * Applies the whole write atomically, or nothing. A failed condition is `{ ok: false }`; a store
   * that cannot be reached (or keeps conflicting) throws.
   */
  write(w: LedgerWrite): Promise<LedgerResult>;
  /** Up to `limit` reservations of the tenant whose reclaimAfter is below `nowSec`. */
  expiredReservations(tenantId: string, nowSec: number, limit: number): Promise<ReservationRecord[]>;
  /**
   * The cost (micros) on the usage record of a reservation's request, 0 when there is none: a
   * request that answered but could not settle left its cost there, and reclaim charges it.
   */
  recordedCostMicros(reservation: ReservationRecord): Promise<number>;
}
