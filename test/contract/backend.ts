import type { ResponseCacheStore } from '../../lambda/core/cache/port';
import type { AuditAnchors, AuditMac } from '../../lambda/core/ports';
/**
 * What a contract suite gets: one implementation of every port, plus test-only raw access to its
 * storage (to plant malformed rows and read what was stored). One runner builds it for the AWS
 * adapters on moto, another for the embedded adapters; the suites cannot tell them apart.
 */
import type { GovernanceLedger } from '../../lambda/core/governance/ledger';
import type { DataKeyService, PepperSource } from '../../lambda/core/ports';
import type { RouterStore } from '../../lambda/core/router/router-store';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import type { TenantStore } from '../../lambda/core/store';

export interface ContractBackend {
  readonly name: string;
  readonly region: string;
  readonly store: TenantStore;
  readonly routerStore: RouterStore;
  readonly ledger: GovernanceLedger;
  readonly dataKeys: DataKeyService;
  /** The key ARN sealed records of this backend name. */
  readonly keyArn: string;
  readonly pepper: PepperSource;
  readonly responseCache: ResponseCacheStore;
  /** The audit key and anchors the store seals and anchors its events with. */
  readonly audit: { readonly mac: AuditMac; readonly anchors: AuditAnchors };
  readonly raw: {
    /** Stores an arbitrary (possibly malformed) sealed-secret row. */
    putSecretRow(tenantId: string, provider: string, name: string, fields: Record<string, unknown>): Promise<void>;
    /** Removes a sealed-secret row behind the store's back (META keeps its entry). */
    deleteSecretRow(tenantId: string, provider: string, name: string): Promise<void>;
    /** Stores an arbitrary counter row (fields may be of the wrong type). */
    putCounterRow(pk: string, sk: string, fields: Record<string, unknown>): Promise<void>;
    /** Stores an arbitrary reservation row. */
    putReservationRow(pk: string, sk: string, fields: Record<string, unknown>): Promise<void>;
    usageRecords(tenantId: string): Promise<UsageRecord[]>;
    /** Stores an arbitrary (possibly misfiled or malformed) erasure-key item under a tenant's key. */
    putErasureKeyItem(tenantId: string, fields: Record<string, unknown>): Promise<void>;
    /** Request ids of the tenant's stored reservations. */
    reservations(tenantId: string): Promise<string[]>;
  };
}

export type BackendFactory = () => ContractBackend;

let n = 0;
/** A tenant id no other test of the run uses. */
export const freshTenantId = (prefix = 'ct') => `${prefix}${process.pid.toString(36)}${(++n).toString(36)}`.slice(0, 32);
