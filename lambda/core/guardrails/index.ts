export { guardrailsSchema, effectiveGuardrails } from './policy';
export type { GuardrailsConfig, EffectiveGuardrails, PiiAction } from './policy';
export { judgeRequest, redactionMarker } from './judge';
export type { GuardrailOutcome, GuardrailVerdict, GuardrailAction } from './judge';
export { guardrailRefusal } from './refusal';
export { applyGuardrails } from './stage';
