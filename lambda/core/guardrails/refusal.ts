import { ApiError } from '../http';
import type { GuardrailOutcome } from './judge';

const DESCRIPTIONS: Record<string, string> = {
  'personal_data:email': 'an e-mail address',
  'personal_data:phone': 'a phone number',
  'personal_data:card': 'a payment card number',
  'personal_data:iban': 'an IBAN',
  blocked_term: 'a blocked term',
  max_input_tokens: 'more input than allowed',
  bedrock_guardrail: "content the tenant's Amazon Bedrock guardrail blocks",
};

/**
 * The 400 for a refused request: it names the rules and what kind of content they found, never
 * the content (the caller sent it; logs and errors must not carry it on).
 */
export function guardrailRefusal(outcome: GuardrailOutcome, limit?: number): ApiError {
  const what = outcome.rules.map((r) => DESCRIPTIONS[r] ?? r).join(', ');
  const sizeNote = outcome.rules.includes('max_input_tokens') && limit !== undefined ? ` The limit is ${limit} estimated input tokens.` : '';
  return new ApiError(400, 'guardrail_refused', `The request was refused by the tenant's guardrails: it contains ${what}.${sizeNote} Remove it and retry.`, {
    rules: outcome.rules.join(','),
  });
}
