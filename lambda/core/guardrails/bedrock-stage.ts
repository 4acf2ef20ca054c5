import { ApiError } from '../http';
import type { ClientRequest } from '../router/client-request';
import type { TenantRecord, TokenRecord } from '../tenant-model';
import { GuardrailServiceError, type GuardrailService } from './guardrail-service';
import type { GuardrailOutcome } from './judge';
import { effectiveGuardrails } from './policy';
import { guardrailRefusal } from './refusal';
import { requestSegments } from './segments';

export const BEDROCK_GUARDRAIL_RULE = 'bedrock_guardrail';

/**
 * The managed-guardrail stage, after the built-in one and still before any KMS call: the
 * tenant's (and the token's) Amazon Bedrock guardrail judges the text as it would go on (already
 * redacted). An intervention refuses like a built-in rule; no verdict at all (the call failed, or
 * the cell has no guardrail client) refuses too: unchecked text never passes.
 * A conversation is sent as one text block (segments joined, so splitting across messages or
 * parts evades nothing); embedding inputs, separate documents, as one block each.
 */
export async function applyBedrockGuardrails(
  client: ClientRequest,
  principal: { tenant: TenantRecord; token: TokenRecord },
  service: GuardrailService | undefined,
  prior: GuardrailOutcome | undefined,
  onOutcome: (o: GuardrailOutcome) => void,
  signal?: AbortSignal,
): Promise<void> {
  if (client.route === 'models') return;
  const refs = effectiveGuardrails(principal.tenant.policy.guardrails, principal.token.limits?.guardrails)?.bedrock ?? [];
  if (refs.length === 0) return;
  const segments = requestSegments(client.route, client.body).map((s) => s.text);
  const texts = client.route === 'embeddings' ? segments.filter((t) => t.trim() !== '') : [segments.join('\n')].filter((t) => t.trim() !== '');
  if (texts.length === 0) return;
  if (!service) throw new ApiError(503, 'guardrail_unavailable', "The tenant's Amazon Bedrock guardrail cannot be applied: this cell has no guardrail client. The request was not sent.");
  for (const ref of refs) {
    let intervened: boolean;
    try {
      ({ intervened } = await service.apply(ref, texts, signal));
    } catch (err) {
      if (err instanceof GuardrailServiceError && err.kind === 'rejected') {
        throw new ApiError(502, 'guardrail_error', `The tenant's Amazon Bedrock guardrail ${ref.guardrailId} (version ${ref.guardrailVersion}) refused the check (${err.message}); the request was not sent. Check the guardrail and the router's permission to apply it.`);
      }
      throw new ApiError(503, 'guardrail_unavailable', "The tenant's Amazon Bedrock guardrail did not answer; the request was not sent. Retry later.");
    }
    if (intervened) {
      const outcome: GuardrailOutcome = { action: 'refused', rules: [...(prior?.rules ?? []), BEDROCK_GUARDRAIL_RULE] };
      onOutcome(outcome);
      throw guardrailRefusal(outcome);
    }
  }
  // Passed: a tenant with only a Bedrock guardrail still gets its decision on the record.
  if (!prior) onOutcome({ action: 'passed', rules: [] });
}
