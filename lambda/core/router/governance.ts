import type { TokenUsage } from '../translate/usage';
import type { TenantRecord, TokenRecord } from '../tenant-model';
import type { Target } from '../routing/types';

/** What governance sees of a request before any provider is called. */
export interface AdmissionRequest {
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
 * Budgets, rate limits and allowlists. `check` runs before any I/O of the request's own (no KMS,
 * no provider) and throws an ApiError naming the reason and the limit; `reserve` runs in
 * parallel with the KMS call and must complete before the provider is called.
 */
export interface Governance {
  check(req: AdmissionRequest): void;
  reserve(req: AdmissionRequest): Promise<Admission>;
}

/** No limits at all: the default until a tenant policy sets some. */
export const openGovernance: Governance = {
  check: () => undefined,
  reserve: async () => ({ settle: async () => ({}), release: async () => undefined }),
};
