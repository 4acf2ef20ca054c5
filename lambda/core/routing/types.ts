/**
 * Contracts of the routing engine: how a model name becomes an ordered list of targets, and
 * how one attempt against a target reports its outcome.
 */
import type { BedrockAuth, ProviderEndpointConfig } from '../cell-config';

export type ProviderKind = ProviderEndpointConfig['kind'];

/** One place a request may be sent: a configured provider endpoint, a model, a secret name. */
export interface Target {
  readonly provider: string;
  readonly kind: ProviderKind;
  readonly baseUrl: string;
  readonly model: string;
  /** Name of the tenant's sealed secret for this provider. */
  readonly secret: string;
  /** `azure-openai`: the api-version of every call (the model is the deployment name). */
  readonly apiVersion?: string;
  /** `bedrock`: SigV4 with the router's role (`iam`, no tenant secret) or the tenant's sealed API key. */
  readonly auth?: BedrockAuth;
}

/** Why an attempt did not produce a usable response. */
/** `cancelled`: the caller went away (client disconnect); never counted against an endpoint or key. */
export type FailureReason = 'status' | 'timeout' | 'connection' | 'breaker_open' | 'key_breaker_open' | 'no_secret' | 'deadline' | 'cancelled';

export type AttemptResult<T> =
  | { readonly ok: true; readonly value: T }
  | {
      readonly ok: false;
      /** 429, 5xx, timeouts and connection errors are retryable; a client's 4xx is not. */
      readonly retryable: boolean;
      readonly reason: FailureReason;
      readonly status?: number;
      /** For a non-retryable failure: what to hand back to the client (e.g. the upstream 400). */
      readonly value?: T;
    };

/** One step of the fallback chain, recorded on the request's usage record. */
export interface ChainStep {
  readonly provider: string;
  readonly model: string;
  readonly outcome: 'ok' | 'client_error' | FailureReason;
  readonly status?: number;
  readonly latencyMs: number;
}

export interface FallbackSuccess<T> {
  readonly value: T;
  readonly target: Target;
  readonly chain: readonly ChainStep[];
}

/** Every target failed (or the deadline passed); carries the chain for the error and the record. */
export class AllTargetsFailedError extends Error {
  override readonly name = 'AllTargetsFailedError';
  constructor(
    readonly chain: readonly ChainStep[],
    /** The HTTP status to give the client: 429 if every failure was a 429, 504 on timeouts/deadline, else 502. */
    readonly status: number,
  ) {
    super(`All ${chain.length} attempt(s) failed: ${chain.map((s) => `${s.provider}/${s.model}=${s.status ?? s.outcome}`).join(', ')}`);
  }
}

/** A request for a model the tenant's route table and the cell cannot serve. */
export class NoRouteError extends Error {
  override readonly name = 'NoRouteError';
}
