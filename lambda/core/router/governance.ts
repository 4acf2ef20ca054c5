import type { TokenUsage } from '../translate/usage';
import type { TenantRecord, TokenRecord } from '../tenant-model';
import type { Target } from '../routing/types';

/** A counters-table item key (spend, rate window) that governance wants read with the request. */
export interface CounterKey {
  readonly pk: string;
  readonly sk: string;
}

/** Counter items read in the request's one BatchGet, keyed by `counterId(key)`. */
export type CounterItems = ReadonlyMap<string, Readonly<Record<string, unknown>>>;
export const counterId = (k: CounterKey) => `${k.pk}|${k.sk}`;

/** What governance sees of a request before any provider is called. */
export interface AdmissionRequest {
  readonly requestId: string;
  /** Epoch ms when the request started, on the router's clock. */
  readonly startedAt: number;
  /** Epoch ms after which the request is over, whatever happens. */
  readonly deadlineAt: number;
  readonly tenant: TenantRecord;
  readonly token: TokenRecord;
  readonly model: string;
  readonly sourceIp?: string;
  /** Requested output cap (max_tokens / max_completion_tokens), if any. */
  readonly maxTokens?: number;
  /** Rough size of the prompt in tokens, for worst-case reservations. */
  readonly promptTokenEstimate: number;
  readonly targets: readonly Target[];
}

/** A granted admission: settle with the real usage, or release if nothing was consumed. */
export interface Admission {
  settle(usage: TokenUsage | undefined, target: Target | undefined): Promise<{ costUsd?: number }>;
  release(): Promise<void>;
}

/**
 * Budgets, rate limits and allowlists.
 * - `counterKeys`: counter items to read in the request's single BatchGet (by tenant id and
 *   verifier, both known before the read).
 * - `check`: pure, after that read and before KMS or any provider: allowlists, caps, and limits
 *   judged on the counters read. Throws an ApiError naming the reason and the limit.
 * - `reserve`: the conditional writes that make limits exact under concurrency; runs in
 *   parallel with the KMS call and completes before the provider is called.
 */
export interface Governance {
  counterKeys(ctx: { readonly tenantId: string; readonly verifier: string; readonly now: number }): readonly CounterKey[];
  check(req: AdmissionRequest, counters: CounterItems): void;
  reserve(req: AdmissionRequest): Promise<Admission>;
}

/** No limits at all. */
export const openGovernance: Governance = {
  counterKeys: () => [],
  check: () => undefined,
  reserve: async () => ({ settle: async () => ({}), release: async () => undefined }),
};
