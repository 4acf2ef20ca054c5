/**
 * The policy parse memo (lambda/core/parse-memo.ts): a result is reused only for input of the
 * same plain-JSON text, and is frozen; anything else parses as before.
 */
import { memoizedSafeParse } from '../../../lambda/core/parse-memo';
import { limitsSchema, parseTenantRecord, StoredRecordError, tenantPolicySchema } from '../../../lambda/core/tenant-model';

const tenant = (policy: unknown) => ({
  tenantId: 'acme',
  region: 'eu-central-1',
  mode: 'managed',
  status: 'active',
  auditSeq: 0,
  auditHead: 'x',
  createdAt: '2026-01-01T00:00:00.000Z',
  updatedAt: '2026-01-01T00:00:00.000Z',
  policy,
});

test('an unchanged policy is parsed once: the same frozen result comes back for the same text', () => {
  const spy = jest.spyOn(tenantPolicySchema, 'safeParse');
  const policy = { monthlyBudgetUsd: 12.5, allowedModels: ['gpt-4o-mini'], routes: { fast: [{ provider: 'openai', model: 'gpt-4o-mini' }] } };
  const a = parseTenantRecord(tenant(JSON.parse(JSON.stringify(policy))), 'acme');
  const b = parseTenantRecord(tenant(JSON.parse(JSON.stringify(policy))), 'acme');
  expect(spy).toHaveBeenCalledTimes(1);
  spy.mockRestore();
  expect(b.policy).toBe(a.policy);
  expect(b.policy).toEqual(policy);
  expect(Object.isFrozen(a.policy)).toBe(true);
  expect(Object.isFrozen(a.policy.routes!.fast[0])).toBe(true);
  expect(() => (a.policy.allowedModels as string[]).push('x')).toThrow(TypeError);
  // A changed policy is parsed anew.
  expect(parseTenantRecord(tenant({ ...policy, monthlyBudgetUsd: 13 }), 'acme').policy.monthlyBudgetUsd).toBe(13);
});

test('a malformed policy is refused every time (a failure is not kept), whatever came before', () => {
  const bad = { monthlyBudgetUsd: -1 };
  for (let i = 0; i < 2; i++) expect(() => parseTenantRecord(tenant(bad), 'acme')).toThrow(StoredRecordError);
  // An unknown key is refused by the strict schema, even when its value is undefined (which JSON text drops).
  expect(parseTenantRecord(tenant({ rpm: 5 }), 'acme').policy).toEqual({ rpm: 5 });
  expect(() => parseTenantRecord(tenant({ rpm: 5, bogus: undefined }), 'acme')).toThrow(StoredRecordError);
});

test('input that is not plain JSON bypasses the memo: its text could collide with valid input', () => {
  // A Set of routes writes as {} (valid routes) but is not a record: zod refuses it.
  memoizedSafeParse(tenantPolicySchema, { routes: {} });
  expect(memoizedSafeParse(tenantPolicySchema, { routes: new Set(['a']) }).success).toBe(false);
  memoizedSafeParse(limitsSchema, { allowedModels: ['m'] });
  expect(memoizedSafeParse(limitsSchema, { allowedModels: ['m', undefined] }).success).toBe(false);
  // Non-finite numbers write as null; the schema sees the number itself.
  expect(memoizedSafeParse(limitsSchema, { monthlyBudgetUsd: Infinity }).success).toBe(false);
  expect(memoizedSafeParse(limitsSchema, { monthlyBudgetUsd: NaN }).success).toBe(false);
  // A Date writes as a string (toJSON): it is not a string to the schema.
  expect(memoizedSafeParse(tenantPolicySchema, { tenantKeyArn: new Date(0) }).success).toBe(false);
});

test('token limits are memoized the same way', () => {
  const spy = jest.spyOn(limitsSchema, 'safeParse');
  for (let i = 0; i < 3; i++) expect(memoizedSafeParse(limitsSchema, { rpm: 7, tpm: 70 }).success).toBe(true);
  expect(spy).toHaveBeenCalledTimes(1);
  spy.mockRestore();
});

// Valid policies can be large (routes has no bound on its number of aliases; a DynamoDB item up to
// 400 KB): 1,000 of them kept (text and parsed result) would pin about a gigabyte. The memo is
// bounded in characters of text as well as in entries.
test('the memo holds a bounded number of characters, not only of entries: big valid policies are not all kept', () => {
  const target = { provider: 'openai', model: 'gpt-4o-mini', secret: 'default' };
  const big = (i: number) => ({
    routes: Object.fromEntries(Array.from({ length: 600 }, (_, j) => [`alias-${i}-${j}-${'x'.repeat(80)}`, [target]])),
  });
  const first = memoizedSafeParse(tenantPolicySchema, big(0));
  expect(first.success).toBe(true);
  expect(memoizedSafeParse(tenantPolicySchema, big(0))).toBe(first);
  for (let i = 1; i < 120; i++) memoizedSafeParse(tenantPolicySchema, big(i));
  // 120 policies of about 90 Ki characters each are over the bound: the first one is no longer kept.
  const again = memoizedSafeParse(tenantPolicySchema, big(0));
  expect(again).not.toBe(first);
  expect(again).toEqual(first);
  const small = memoizedSafeParse(limitsSchema, { rpm: 9 });
  expect(memoizedSafeParse(limitsSchema, { rpm: 9 })).toBe(small);
});
