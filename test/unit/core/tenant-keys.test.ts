import { KeyServiceError } from '../../../lambda/adapters/kms-data-key-service';
import { ApiError } from '../../../lambda/core/http';
import type { DataKeyService } from '../../../lambda/core/ports';
import { dataKeysOfTenant, isTenantKeyRefusal, tenantKeyProblem, tenantKeyUnavailable } from '../../../lambda/core/tenant-keys';

const KEY = 'arn:aws:kms:eu-central-1:444455556666:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const plain: DataKeyService = {
  generateDataKey: async () => {
    throw new Error('not called');
  },
  decryptDataKey: async () => {
    throw new Error('not called');
  },
};

describe('tenant-held keys (pure)', () => {
  test.each([
    [KEY, undefined],
    [KEY.replace('eu-central-1', 'us-east-1'), /in us-east-1, but this cell is in eu-central-1/],
    ['arn:aws:kms:eu-central-1:444455556666:alias/mine', /single-Region KMS key/],
    ['arn:aws:kms:eu-central-1:444455556666:key/mrk-0123456789abcdef0123456789abcdef', /single-Region KMS key/],
    ['1234abcd-12ab-34cd-56ef-1234567890ab', /single-Region KMS key/],
    [`${KEY}\n`, /single-Region KMS key/],
  ])('registration of %j', (arn, problem) => {
    const got = tenantKeyProblem(arn, 'eu-central-1');
    if (problem === undefined) expect(got).toBeUndefined();
    else expect(got).toMatch(problem);
  });

  test('a tenant without a key gets the cell service; with one, a service that cannot scope answers 501 (local gateway)', () => {
    expect(dataKeysOfTenant(plain, { tenantId: 'acme', policy: {} })).toBe(plain);
    let err: unknown;
    try {
      dataKeysOfTenant(plain, { tenantId: 'acme', policy: { tenantKeyArn: KEY } });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(501);
    expect((err as ApiError).code).toBe('tenant_key_unsupported');
  });

  test('a scoping service is asked for exactly this tenant and key', () => {
    const calls: string[][] = [];
    const scoping = { ...plain, forTenant: (t: string, k: string) => (calls.push([t, k]), plain) };
    expect(dataKeysOfTenant(scoping, { tenantId: 'acme', policy: { tenantKeyArn: KEY } })).toBe(plain);
    expect(calls).toEqual([['acme', KEY]]);
  });

  test("only the tenant key's own refusals are the tenant's doing; throttling and the cell key stay retryable", () => {
    expect(isTenantKeyRefusal(new KeyServiceError('unavailable', 'Decrypt', 'DisabledException', undefined, true))).toBe(true);
    expect(isTenantKeyRefusal(new KeyServiceError('unavailable', 'Decrypt', 'KMSInvalidStateException', undefined, true))).toBe(true);
    expect(isTenantKeyRefusal(new KeyServiceError('denied', 'Decrypt', 'AccessDeniedException', undefined, true))).toBe(true);
    expect(isTenantKeyRefusal(new KeyServiceError('unavailable', 'Decrypt', 'ThrottlingException', undefined, true))).toBe(false);
    expect(isTenantKeyRefusal(new KeyServiceError('unavailable', 'Decrypt', 'KeyUnavailableException', undefined, true))).toBe(false);
    expect(isTenantKeyRefusal(new KeyServiceError('unavailable', 'Decrypt', 'DisabledException'))).toBe(false);
    expect(isTenantKeyRefusal(new Error('DisabledException'))).toBe(false);
  });

  test('the error is non-retryable and names no key', () => {
    const e = tenantKeyUnavailable('req-1');
    expect(e.status).toBe(403);
    expect(e.headers['x-should-retry']).toBe('false');
    expect(e.message).not.toMatch(/arn:/);
  });
});
