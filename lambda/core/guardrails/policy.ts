/**
 * Guardrail settings, in a tenant's policy and (to narrow further) in a token's limits, and the
 * effective set for one request: the stricter of each (refuse beats redact, blocked terms are
 * the union, the smaller input cap wins). A token can add guardrails but never lift the tenant's.
 */
import { z } from 'zod';
import { PII_KINDS, type PiiKind } from './detectors';
import { foldTerm } from './normalize';

export type PiiAction = 'redact' | 'refuse';
const ACTION = z.enum(['redact', 'refuse']);

/**
 * An Amazon Bedrock guardrail in the cell's region, by its bare id (an ARN would name a region
 * and account; the router only calls its own region) and a version: 'DRAFT' or a number.
 */
export const bedrockGuardrailSchema = z
  .object({
    guardrailId: z.string().regex(/^[a-z0-9]{1,64}$/, 'guardrailId must be a Bedrock guardrail id (lower-case letters and digits, no ARN)'),
    guardrailVersion: z.string().regex(/^(DRAFT|[1-9][0-9]{0,7})$/, "guardrailVersion must be 'DRAFT' or a version number"),
  })
  .strict();
export type BedrockGuardrailRef = z.infer<typeof bedrockGuardrailSchema>;

export const guardrailsSchema = z
  .object({
    /** What to do with personal data found in the request's messages, per kind. */
    personalData: z.object({ email: ACTION.optional(), phone: ACTION.optional(), card: ACTION.optional(), iban: ACTION.optional() }).strict().optional(),
    /** Terms whose presence refuses the request (matched after NFKC, case folding and zero-width removal). */
    blockedTerms: z
      .array(
        z
          .string()
          .min(1)
          .max(128)
          .refine((t) => foldTerm(t).length > 0, 'a blocked term must keep at least one visible character after normalization'),
      )
      .max(500)
      .optional(),
    /** Largest input, in estimated tokens (lambda/core/guardrails/token-estimate.ts). */
    maxInputTokens: z.number().int().min(1).max(10_000_000).optional(),
    /** An Amazon Bedrock guardrail (ApplyGuardrail, the cell's region) judged after the rules above. */
    bedrock: bedrockGuardrailSchema.optional(),
  })
  .strict();
export type GuardrailsConfig = z.infer<typeof guardrailsSchema>;

export interface EffectiveGuardrails {
  readonly personalData: ReadonlyMap<PiiKind, PiiAction>;
  /** Folded terms (foldTerm), deduplicated. */
  readonly blockedTerms: readonly string[];
  readonly maxInputTokens?: number;
  /** Bedrock guardrails to apply (the tenant's and the token's; both must pass), deduplicated. */
  readonly bedrock: readonly BedrockGuardrailRef[];
}

/** The request's guardrails, or undefined when neither tenant nor token sets any (no work at all). */
export function effectiveGuardrails(tenant?: GuardrailsConfig, token?: GuardrailsConfig): EffectiveGuardrails | undefined {
  if (!tenant && !token) return undefined;
  const personalData = new Map<PiiKind, PiiAction>();
  for (const kind of PII_KINDS) {
    const a = tenant?.personalData?.[kind];
    const b = token?.personalData?.[kind];
    const action = a === 'refuse' || b === 'refuse' ? 'refuse' : a ?? b;
    if (action) personalData.set(kind, action);
  }
  const blockedTerms = [...new Set([...(tenant?.blockedTerms ?? []), ...(token?.blockedTerms ?? [])].map(foldTerm))];
  const caps = [tenant?.maxInputTokens, token?.maxInputTokens].filter((n): n is number => n !== undefined);
  const maxInputTokens = caps.length > 0 ? Math.min(...caps) : undefined;
  const bedrock = [tenant?.bedrock, token?.bedrock].filter((b): b is BedrockGuardrailRef => b !== undefined);
  if (bedrock.length === 2 && bedrock[0].guardrailId === bedrock[1].guardrailId && bedrock[0].guardrailVersion === bedrock[1].guardrailVersion) bedrock.pop();
  if (personalData.size === 0 && blockedTerms.length === 0 && maxInputTokens === undefined && bedrock.length === 0) return undefined;
  return { personalData, blockedTerms, ...(maxInputTokens !== undefined ? { maxInputTokens } : {}), bedrock };
}
