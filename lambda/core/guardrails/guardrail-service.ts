import type { BedrockGuardrailRef } from './policy';

/**
 * A managed guardrail judged after the built-in rules (Amazon Bedrock ApplyGuardrail in the
 * cell's region; lambda/adapters/bedrock-guardrail.ts). It sees the text the built-in stage let
 * through (already redacted) and answers only whether it intervened: its own output text and
 * assessments never reach the core.
 */
export interface GuardrailService {
  /** `texts`: the content blocks to judge, in reading order. */
  apply(ref: BedrockGuardrailRef, texts: readonly string[], signal?: AbortSignal): Promise<{ readonly intervened: boolean }>;
}

/**
 * Why a guardrail call gave no verdict: `unavailable` (timeout, connection, throttling, 5xx: a
 * retry may pass) or `rejected` (access denied, unknown guardrail, invalid request or answer:
 * configuration to fix). The message names no request text.
 */
export class GuardrailServiceError extends Error {
  override readonly name = 'GuardrailServiceError';
  constructor(
    readonly kind: 'unavailable' | 'rejected',
    message: string,
  ) {
    super(message);
  }
}
