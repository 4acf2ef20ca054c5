import type { SealedSecret } from '../envelope';
import type { TenantRecord, TokenRecord } from '../tenant-model';
import type { CounterItems, CounterKey } from './governance';
import type { UsageRecord } from './usage-record';

/** Everything one request needs, read in one round trip. */
export interface RequestContextRead {
  readonly token?: TokenRecord;
  readonly tenant?: TenantRecord;
  /** Sealed secrets found, keyed `<provider>#<name>`. */
  readonly secrets: ReadonlyMap<string, SealedSecret>;
  /** Usage-table counter items governance asked for (missing items are absent). */
  readonly counters: CounterItems;
}

export const secretKeyOf = (provider: string, name: string) => `${provider}#${name}`;

/** The router's read path and its usage record. It has no write access to tenants or tokens. */
export interface RouterStore {
  /**
   * One BatchGetItem: the token by verifier, the tenant's META and the `default` secret of every
   * provider the cell allows (a handful of small items), so routing needs no second read.
   */
  loadRequestContext(
    verifier: string,
    tenantId: string,
    providers: readonly string[],
    counterKeys?: readonly CounterKey[],
  ): Promise<RequestContextRead>;
  /** A second read, only for route targets that name a non-default secret. */
  getSecret(tenantId: string, provider: string, name: string): Promise<SealedSecret | undefined>;
  putUsage(record: UsageRecord): Promise<void>;
}
