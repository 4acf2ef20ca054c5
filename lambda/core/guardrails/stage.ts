import type { ClientRequest } from '../router/client-request';
import type { TenantRecord, TokenRecord } from '../tenant-model';
import type { GuardrailOutcome } from './judge';
import { judgeRequest } from './judge';
import { effectiveGuardrails } from './policy';
import { guardrailRefusal } from './refusal';

/**
 * The router's guardrail stage, after authentication and before any KMS call: the request as it
 * may go on (redacted, or unchanged) and the outcome for the usage record. A refused request
 * throws a 400 (guardrail_refused) after `onOutcome` has been told, so the record carries it.
 */
export function applyGuardrails(
  client: ClientRequest,
  principal: { tenant: TenantRecord; token: TokenRecord },
  onOutcome: (o: GuardrailOutcome) => void,
): ClientRequest {
  if (client.route === 'models') return client;
  const g = effectiveGuardrails(principal.tenant.policy.guardrails, principal.token.limits?.guardrails);
  if (!g) return client;
  const verdict = judgeRequest(client.route, client.body, g);
  onOutcome({ action: verdict.action, rules: verdict.rules });
  if (verdict.action === 'refused') throw guardrailRefusal(verdict, g.maxInputTokens);
  return verdict.body ? { ...client, body: verdict.body } : client;
}
