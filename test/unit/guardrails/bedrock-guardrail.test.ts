/**
 * The Bedrock guardrail policy and stage in the pure core, with a recording GuardrailService:
 * tenant and token guardrails combine (both apply), ids are validated, a failure of any kind is
 * never a pass, and a request with no text makes no call.
 */
import { applyBedrockGuardrails, GuardrailServiceError, type GuardrailService } from '../../../lambda/core/guardrails';
import { effectiveGuardrails, guardrailsSchema } from '../../../lambda/core/guardrails/policy';
import { ApiError } from '../../../lambda/core/http';
import { parseClientRequest } from '../../../lambda/core/router/client-request';
import type { TenantRecord, TokenRecord } from '../../../lambda/core/tenant-model';

const A = { guardrailId: 'abc123', guardrailVersion: '2' };
const B = { guardrailId: 'tokenonly', guardrailVersion: 'DRAFT' };

describe('policy', () => {
  test('tenant and token guardrails both apply; the same one once; a Bedrock guardrail alone is a guardrail', () => {
    expect(effectiveGuardrails({ bedrock: A })?.bedrock).toEqual([A]);
    expect(effectiveGuardrails(undefined, { bedrock: B })?.bedrock).toEqual([B]);
    expect(effectiveGuardrails({ bedrock: A }, { bedrock: B })?.bedrock).toEqual([A, B]);
    expect(effectiveGuardrails({ bedrock: A }, { bedrock: { ...A } })?.bedrock).toEqual([A]);
    expect(effectiveGuardrails({ blockedTerms: ['x'] })?.bedrock).toEqual([]);
  });

  test.each([
    [{ guardrailId: 'abc123', guardrailVersion: 'DRAFT' }, true],
    [{ guardrailId: 'abc123', guardrailVersion: '12' }, true],
    [{ guardrailId: 'arn:aws:bedrock:eu-central-1:111122223333:guardrail/abc123', guardrailVersion: '1' }, false],
    [{ guardrailId: 'a'.repeat(65), guardrailVersion: '1' }, false],
    [{ guardrailId: 'abc123', guardrailVersion: 'draft' }, false],
    [{ guardrailId: 'abc123', guardrailVersion: '01' }, false],
    [{ guardrailId: 'abc123' }, false],
  ])('%j valid: %s', (bedrock, ok) => {
    expect(guardrailsSchema.safeParse({ bedrock }).success).toBe(ok);
  });
});

describe('stage', () => {
  const principal = (tenantGuard?: unknown) => ({ tenant: { tenantId: 't', policy: { guardrails: tenantGuard } } as unknown as TenantRecord, token: { tokenId: 'k' } as unknown as TokenRecord });
  const request = (body: unknown) => parseClientRequest('chat', { method: 'POST', path: '/v1/chat/completions', headers: {}, body: JSON.stringify(body) }, 1 << 20);
  const recording = (answer: () => Promise<{ intervened: boolean }>) => {
    const calls: Array<{ id: string; texts: readonly string[] }> = [];
    const service: GuardrailService = { apply: (ref, texts) => (calls.push({ id: ref.guardrailId, texts }), answer()) };
    return { calls, service };
  };
  const statusOf = async (p: Promise<unknown>) => p.then(() => 'passed', (e: unknown) => (e instanceof ApiError ? `${e.status} ${e.code}` : `threw ${String(e)}`));

  test('no Bedrock guardrail: no call, no outcome change', async () => {
    const { calls, service } = recording(async () => ({ intervened: true }));
    const outcomes: unknown[] = [];
    await applyBedrockGuardrails(request({ model: 'm', messages: [{ role: 'user', content: 'x' }] }), principal({ blockedTerms: ['y'] }), service, undefined, (o) => outcomes.push(o));
    expect([calls, outcomes]).toEqual([[], []]);
  });

  test('a request with no text makes no call', async () => {
    const { calls, service } = recording(async () => ({ intervened: true }));
    await applyBedrockGuardrails(request({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }] }] }), principal({ bedrock: A }), service, undefined, () => undefined);
    expect(calls).toEqual([]);
  });

  test.each([
    ['an unexpected error', () => Promise.reject(new Error('boom')), '503 guardrail_unavailable'],
    ['unavailable', () => Promise.reject(new GuardrailServiceError('unavailable', 'HTTP 500')), '503 guardrail_unavailable'],
    ['rejected', () => Promise.reject(new GuardrailServiceError('rejected', 'HTTP 403 AccessDeniedException')), '502 guardrail_error'],
    ['intervened', async () => ({ intervened: true }), '400 guardrail_refused'],
    ['none', async () => ({ intervened: false }), 'passed'],
  ])('%s → %s', async (_what, answer, expected) => {
    const { service } = recording(answer);
    const outcomes: unknown[] = [];
    const got = await statusOf(applyBedrockGuardrails(request({ model: 'm', messages: [{ role: 'user', content: 'hello' }] }), principal({ bedrock: A }), service, { action: 'passed', rules: [] }, (o) => outcomes.push(o)));
    expect(got).toBe(expected);
    expect(outcomes).toEqual(expected.startsWith('400') ? [{ action: 'refused', rules: ['bedrock_guardrail'] }] : []);
  });

  test('no service in the cell: 503, never a pass', async () => {
    expect(await statusOf(applyBedrockGuardrails(request({ model: 'm', messages: [{ role: 'user', content: 'hello' }] }), principal({ bedrock: A }), undefined, undefined, () => undefined))).toBe('503 guardrail_unavailable');
  });
});
