import type { AuditTrail } from '../../lambda/core/audit-chain';
import type { CellConfig, ProviderEndpointConfig } from '../../lambda/core/cell-config';
import type { DataKeyService, PepperRotator, PepperSource } from '../../lambda/core/ports';
import type { ResponseCacheStore } from '../../lambda/core/cache/port';
import type { Governance } from '../../lambda/core/router/governance';
import type { RouterStore } from '../../lambda/core/router/router-store';
import type { TenantStore } from '../../lambda/core/store';
import type { UsageRecordsPort } from '../../lambda/core/usage/usage-query';
import type { Logger } from '../../lambda/core/logger';

export type LocalProvider = ProviderEndpointConfig;

export type BackendKind = 'embedded' | 'moto';

export interface BackendOptions {
  readonly region: string;
  readonly providers: Readonly<Record<string, LocalProvider>>;
  /** Keep state in this directory across restarts; undefined: in memory only. */
  readonly stateDir?: string;
  readonly maxRequestBytes?: number;
  readonly requestDeadlineMs: number;
  readonly log: Logger;
  /**
   * Seals and anchors audit events; the tenant store of either backend uses it.
   * @default the embedded audit key and anchors of `stateDir` (local/local-audit.ts)
   */
  readonly auditTrail?: AuditTrail;
  /** Embedded only: fsync every commit (survives power loss, not only a killed process). @default false */
  readonly syncFull?: boolean;
  /** Embedded only: whether a request is the gateway's only one in flight (its commits need not wait for others'). @default never */
  readonly soleRequest?: () => boolean;
}

/** What the vault, admin and router apps run on: the ports of one cell. */
export interface GatewayBackend {
  readonly kind: BackendKind;
  readonly config: CellConfig;
  readonly store: TenantStore;
  readonly routerStore: RouterStore;
  /** The usage records' read side (the vault's usage query and the console). */
  readonly usageRecords: UsageRecordsPort;
  readonly pepper: PepperSource;
  /** Rotates `pepper` (pepper rotate); absent when this backend cannot keep a rotated pepper. */
  readonly pepperRotator?: PepperRotator;
  readonly dataKeys: DataKeyService;
  readonly governance: Governance;
  /** Response-cache entries (tenants opt in through their policy). */
  readonly responseCache: ResponseCacheStore;
  /** Items found in the state directory at start. */
  readonly restoredItems: number;
  /** The moto endpoint, for the AWS CLI's --endpoint-url (moto backend only). */
  readonly awsEndpoint?: string;
  /**
   * Makes the vault/admin change just answered durable before its response goes out. The embedded
   * store commits every change durably already; moto's tables are dumped to the state directory.
   */
  persist(): Promise<void>;
  stop(): Promise<void>;
}

/** The environment a deployed function would get, for a local cell (validated by cellConfigFromEnv). */
export function localCellEnv(o: {
  region: string;
  rootKeyArn: string;
  pepperSecretArn: string;
  providers: Readonly<Record<string, LocalProvider>>;
  maxRequestBytes?: number;
  requestDeadlineMs: number;
  tables: Record<string, string>;
}): Record<string, string> {
  const env: Record<string, string> = {
    CELL_REGION: o.region,
    ROOT_KEY_ARN: o.rootKeyArn,
    PEPPER_SECRET_ARN: o.pepperSecretArn,
    PROVIDER_ENDPOINTS: JSON.stringify(o.providers),
    MAX_REQUEST_BYTES: String(o.maxRequestBytes ?? 1024 * 1024),
    REQUEST_DEADLINE_MS: String(o.requestDeadlineMs),
  };
  for (const [name, table] of Object.entries(o.tables)) env[`${name.toUpperCase()}_TABLE`] = table;
  return env;
}
