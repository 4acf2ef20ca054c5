import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { base62EncodeBigInt, crc32 } from '../../../lambda/core/crypto-util';
import { REGION_CODES } from '../../../lambda/core/regions';
import {
  computeVerifier,
  constantTimeEqual,
  generateToken,
  isValidTenantId,
  parseToken,
  TENANT_ID_PATTERN,
  TOKEN_SCAN_PATTERN,
  TokenError,
} from '../../../lambda/core/token';

const regions = Object.entries(REGION_CODES) as Array<[string, string]>;
const regionArb = fc.constantFrom(...regions);
const tenantArb = fc.stringMatching(TENANT_ID_PATTERN);
const BASE62 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

function expectTokenError(fn: () => unknown): TokenError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TokenError);
    return err as TokenError;
  }
  throw new Error('expected a TokenError');
}

/** Every 6-char window of the secret body: none may appear in an error. */
function bodyWindows(token: string): string[] {
  const body = token.slice(-49);
  const out: string[] = [];
  for (let i = 0; i + 6 <= body.length; i++) out.push(body.slice(i, i + 6));
  return out;
}

function expectNoLeak(err: Error, token: string): void {
  const text = `${err.message}\n${err.stack ?? ''}\n${JSON.stringify(err)}`;
  expect(text).not.toContain(token);
  for (const w of bodyWindows(token)) expect(text).not.toContain(w);
}

describe('generateToken / parseToken', () => {
  it('round-trips for every region and arbitrary valid tenants', () => {
    fc.assert(
      fc.property(regionArb, tenantArb, ([region, code], tenant) => {
        const token = generateToken(code, tenant);
        expect(token.startsWith(`sr_${code}_${tenant}_`)).toBe(true);
        expect(token.length).toBe(3 + code.length + 1 + tenant.length + 1 + 49);
        expect(parseToken(token, region)).toEqual({ token, regionCode: code, region, tenantId: tenant });
      }),
    );
  });

  it('is matched by the secret-scanning pattern, also inside surrounding text', () => {
    const token = generateToken('euc1', 'acme-corp');
    const anchored = new RegExp(`^(?:${TOKEN_SCAN_PATTERN.source})$`);
    expect(anchored.test(token)).toBe(true);
    expect(`export OPENAI_API_KEY="${token}" # prod`.match(TOKEN_SCAN_PATTERN)?.[0]).toBe(token);
  });

  it('uses 32 bytes of randomness', () => {
    const seen: number[] = [];
    generateToken('euc1', 'acme', (n) => {
      seen.push(n);
      return Buffer.alloc(n, 1);
    });
    expect(seen).toEqual([32]);
    expect(generateToken('euc1', 'acme')).not.toBe(generateToken('euc1', 'acme'));
  });

  it('validates its inputs', () => {
    expect(() => generateToken('xx9', 'acme')).toThrow(/region code/);
    expect(() => generateToken('euc1', 'Acme')).toThrow(/tenant id/);
    expect(() => generateToken('euc1', 'acme', () => Buffer.alloc(31))).toThrow(/32 bytes/);
  });
});

describe('parseToken rejections', () => {
  const token = generateToken('euc1', 'acme-corp');

  it('rejects non-strings, over-long and misshapen input as malformed', () => {
    for (const raw of [undefined, null, 42, {}, [token], Buffer.from(token), '', 'sr_', token + 'x', token.slice(1), 'x'.repeat(129), token + ' '.repeat(100)]) {
      expect(expectTokenError(() => parseToken(raw, 'eu-central-1')).code).toBe('malformed');
    }
  });

  it('names the home region for a token presented to another region', () => {
    const err = expectTokenError(() => parseToken(token, 'us-east-1'));
    expect(err.code).toBe('wrong_region');
    expect(err.homeRegion).toBe('eu-central-1');
    expect(err.message).toBe("This token belongs to region eu-central-1; call that region's endpoint.");
    expectNoLeak(err, token);
  });

  it('treats an unknown region code as malformed even with a valid checksum', () => {
    const head = generateToken('euc1', 'acme').slice(0, -6).replace('sr_euc1_', 'sr_zz99_');
    const unknown = head + base62EncodeBigInt(BigInt(crc32(Buffer.from(head))), 6);
    const err = expectTokenError(() => parseToken(unknown, 'eu-central-1'));
    expect(err.code).toBe('malformed');
  });

  it('rejects a random body above 2^256 as malformed', () => {
    expect(expectTokenError(() => parseToken(`sr_euc1_acme_${'z'.repeat(43)}000000`, 'eu-central-1')).code).toBe('malformed');
  });

  /** A token with this random part and a correct checksum. */
  const withBody = (body: string) => {
    const head = `sr_euc1_acme_${body}`;
    return head + base62EncodeBigInt(BigInt(crc32(Buffer.from(head))), 6);
  };

  it('accepts a random part of exactly 2^256 - 1 and refuses 2^256 (both with a correct checksum)', () => {
    expect(parseToken(withBody(base62EncodeBigInt((1n << 256n) - 1n, 43)), 'eu-central-1').tenantId).toBe('acme');
    expect(expectTokenError(() => parseToken(withBody(base62EncodeBigInt(1n << 256n, 43)), 'eu-central-1')).code).toBe('malformed');
  });

  it('property: a random part parses exactly when its value is below 2^256', () => {
    const value = (body: string) => [...body].reduce((v, ch) => v * 62n + BigInt(BASE62.indexOf(ch)), 0n);
    const digits = fc.array(fc.constantFrom(...BASE62.split('')), { minLength: 43, maxLength: 43 }).map((a) => a.join(''));
    // Most random 43-digit strings lie above 2^256; half the runs start from a value below it.
    const below = fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }).map((v) => base62EncodeBigInt(v, 43));
    fc.assert(
      fc.property(fc.oneof(digits, below), (body) => {
        const ok = value(body) < 1n << 256n;
        if (ok) expect(parseToken(withBody(body), 'eu-central-1').token).toBe(withBody(body));
        else expect(expectTokenError(() => parseToken(withBody(body), 'eu-central-1')).code).toBe('malformed');
      }),
      { numRuns: 2000 },
    );
  });

  it('reports a checksum failure without echoing the token', () => {
    const last = token[token.length - 1];
    const bad = token.slice(0, -1) + (last === 'a' ? 'b' : 'a');
    const err = expectTokenError(() => parseToken(bad, 'eu-central-1'));
    expect(err.code).toBe('checksum');
    expectNoLeak(err, bad);
  });

  it('checks the checksum before the region', () => {
    const bad = token.slice(0, 20) + (token[20] === 'a' ? 'b' : 'a') + token.slice(21);
    expect(expectTokenError(() => parseToken(bad, 'us-east-1')).code).toBe('checksum');
  });

  it('rejects every single-character substitution of a valid token (exhaustive)', () => {
    const alphabet = BASE62 + '_-. é';
    const windows = bodyWindows(token);
    const failures: string[] = [];
    let tried = 0;
    for (let i = 0; i < token.length; i++) {
      for (const ch of alphabet) {
        if (ch === token[i]) continue;
        const mutated = token.slice(0, i) + ch + token.slice(i + 1);
        tried++;
        try {
          parseToken(mutated, 'eu-central-1');
          failures.push(`accepted mutation at ${i}`);
        } catch (err) {
          // Plain checks in the hot loop; jest matchers and stack capture are slow here.
          if (!(err instanceof TokenError)) failures.push(`non-TokenError at ${i}`);
          else if (windows.some((w) => err.message.includes(w))) failures.push(`leak at ${i}`);
        }
      }
    }
    expect(failures).toEqual([]);
    expect(tried).toBeGreaterThan(4000);
  });

  it('property: single-character substitutions of random tokens are rejected', () => {
    fc.assert(
      fc.property(regionArb, tenantArb, fc.nat(), fc.constantFrom(...BASE62), ([region, code], tenant, pos, ch) => {
        const t = generateToken(code, tenant);
        const i = pos % t.length;
        fc.pre(t[i] !== ch);
        const mutated = t.slice(0, i) + ch + t.slice(i + 1);
        expect(() => parseToken(mutated, region)).toThrow(TokenError);
      }),
      { numRuns: 2000 },
    );
  });

  it('property: never throws anything but TokenError for arbitrary input', () => {
    const check = (raw: unknown, region: string): void => {
      try {
        parseToken(raw, region);
      } catch (err) {
        if (!(err instanceof TokenError)) throw err;
      }
    };
    fc.assert(fc.property(fc.anything(), fc.string(), (raw, region) => check(raw, region)), { numRuns: 2000 });
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (raw) => check(raw, 'eu-central-1')), { numRuns: 2000 });
    fc.assert(
      fc.property(fc.stringMatching(/^sr_[a-z0-9]{1,9}_[a-z0-9-]{1,34}_[0-9A-Za-z]{40,55}$/), (raw) => check(raw, 'eu-central-1')),
      { numRuns: 2000 },
    );
  });

  it('property: random edits (insert, delete, replace, truncate) of tokens only ever raise TokenError', () => {
    const edit = fc.oneof(
      fc.record({ kind: fc.constant('insert' as const), pos: fc.nat(), text: fc.string({ unit: 'binary', minLength: 1, maxLength: 4 }) }),
      fc.record({ kind: fc.constant('delete' as const), pos: fc.nat(), len: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ kind: fc.constant('truncate' as const), pos: fc.nat() }),
    );
    fc.assert(
      fc.property(regionArb, tenantArb, edit, ([region, code], tenant, e) => {
        const t = generateToken(code, tenant);
        const i = e.pos % (t.length + 1);
        const mutated =
          e.kind === 'insert' ? t.slice(0, i) + e.text + t.slice(i) : e.kind === 'delete' ? t.slice(0, i) + t.slice(i + e.len) : t.slice(0, i);
        fc.pre(mutated !== t);
        try {
          parseToken(mutated, region);
        } catch (err) {
          expect(err).toBeInstanceOf(TokenError);
          return;
        }
        throw new Error('mutated token was accepted');
      }),
      { numRuns: 2000 },
    );
  });
});

describe('isValidTenantId', () => {
  it('accepts 3-32 lowercase chars starting with a letter and not ending in a hyphen', () => {
    for (const ok of ['abc', 'acme-corp', 'a1b', 'a' + 'b'.repeat(31)]) expect(isValidTenantId(ok)).toBe(true);
    for (const bad of ['ab', 'a' + 'b'.repeat(32), '1abc', 'abc-', 'Acme', 'ac_me', 'ac me', '']) expect(isValidTenantId(bad)).toBe(false);
  });
});

describe('computeVerifier / constantTimeEqual', () => {
  const pepper = Buffer.alloc(32, 9);

  it('is HMAC-SHA256(pepper, token)', () => {
    const token = generateToken('euc1', 'acme');
    expect(computeVerifier(pepper, token)).toEqual(createHmac('sha256', pepper).update(token).digest());
    expect(computeVerifier(Buffer.alloc(32, 8), token)).not.toEqual(computeVerifier(pepper, token));
  });

  it('refuses a short or empty pepper', () => {
    expect(() => computeVerifier(Buffer.alloc(0), 'x')).toThrow(/pepper/);
    expect(() => computeVerifier(Buffer.alloc(15), 'x')).toThrow(/pepper/);
  });

  it('compares safely, including different lengths', () => {
    const a = Buffer.from('0123456789abcdef');
    expect(constantTimeEqual(a, Buffer.from(a))).toBe(true);
    expect(constantTimeEqual(a, Buffer.from('0123456789abcdeF'))).toBe(false);
    expect(constantTimeEqual(a, a.subarray(1))).toBe(false);
    expect(constantTimeEqual(Buffer.alloc(0), Buffer.alloc(0))).toBe(true);
  });
});
