import type { GuardrailOutcome } from '../guardrails/judge';
import type { ChainStep } from '../routing/types';
import type { KeyUse } from './key-use';

/**
 * One record per request. Never prompts, completions, tokens or secrets: ids, counts, timings.
 */
export interface UsageRecord {
  readonly requestId: string;
  readonly tenantId: string;
  readonly tokenId: string;
  readonly route: string;
  readonly model: string;
  readonly provider?: string;
  /** Name of the tenant's sealed secret the answering attempt used (the console's "last used"). */
  readonly secret?: string;
  readonly upstreamModel?: string;
  readonly stream: boolean;
  readonly status: number;
  /** 'ok', 'denied:<reason>', 'client_error', 'upstream_error', 'upstream_stream_broken', 'client_aborted'. */
  readonly decision: string;
  readonly inputTokens?: number;
  readonly outputTokens?: number;
  readonly costUsd?: number;
  readonly latencyMs: number;
  readonly timeToFirstTokenMs?: number;
  readonly fallbackChain: readonly ChainStep[];
  /** The client went away before its answer was complete; the upstream call was cut (decision `client_aborted`). */
  readonly aborted?: boolean;
  /** Some of the settled token counts are estimates (see lambda/core/router/client-abort.ts), not the provider's. */
  readonly usageEstimated?: boolean;
  /**
   * Each KMS Decrypt the request made (one per attempt that opened a secret), with the encryption
   * context KMS received: the join key to CloudTrail's Decrypt events. Absent when none was made.
   */
  readonly keyUses?: readonly KeyUse[];
  /** The guardrail verdict and the names of the rules that matched (never the matched text); absent without guardrails. */
  readonly guardrails?: GuardrailOutcome;
  /**
   * The response cache, when the tenant opted this route in: `hit` (replayed: no provider call,
   * no KMS call, cost 0), `miss` (answered by the provider, then stored) or `bypass` (asked by the client).
   */
  readonly cache?: 'hit' | 'miss' | 'bypass';
  readonly at: string;
}

/** Where a request's usage record is stored: by tenant, in time order. */
export function usageRecordKey(r: Pick<UsageRecord, 'tenantId' | 'at' | 'requestId'>): { pk: string; sk: string } {
  return { pk: `REQ#${r.tenantId}`, sk: `${r.at}#${r.requestId}` };
}
