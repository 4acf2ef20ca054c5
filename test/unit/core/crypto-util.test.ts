import { hkdfSync } from 'node:crypto';
import fc from 'fast-check';
import {
  base62Decode,
  base62EncodeBigInt,
  base62EncodeBytes,
  crc32,
  crc32Ascii,
  decodeBase64Strict,
  hkdfSha256,
  isWellFormedUtf16,
  zeroize,
} from '../../../lambda/core/crypto-util';

describe('crc32', () => {
  it('matches the CRC-32/ISO-HDLC check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
  });

  it('crc32Ascii: the crc32 of the UTF-8 bytes of any ASCII string (what token checksums read)', () => {
    expect(crc32Ascii('123456789')).toBe(0xcbf43926);
    expect(crc32Ascii('')).toBe(0);
    fc.assert(
      fc.property(fc.string({ unit: 'binary-ascii', maxLength: 200 }), (s) => {
        expect(crc32Ascii(s)).toBe(crc32(Buffer.from(s, 'utf8')));
      }),
      { numRuns: 2000 },
    );
  });
});

describe('base62', () => {
  it('round-trips fixed-width byte strings', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
        const text = base62EncodeBytes(bytes, 43);
        expect(text).toMatch(/^[0-9A-Za-z]{43}$/);
        expect(base62Decode(text)).toBe(BigInt('0x' + Buffer.from(bytes).toString('hex')));
      }),
    );
  });

  it('fits 2^256-1 in 43 digits and 2^32-1 in 6', () => {
    expect(base62EncodeBigInt((1n << 256n) - 1n, 43)).toHaveLength(43);
    expect(base62EncodeBigInt(0xffffffffn, 6)).toHaveLength(6);
    expect(() => base62EncodeBigInt(62n ** 6n, 6)).toThrow(RangeError);
  });

  it('rejects characters outside the alphabet', () => {
    expect(base62Decode('ab_c')).toBeUndefined();
  });
});

describe('decodeBase64Strict', () => {
  it('accepts only canonical base64', () => {
    expect(decodeBase64Strict('AAEC')).toEqual(Buffer.from([0, 1, 2]));
    for (const bad of ['AAE', 'AA=C', 'AA EC', 'AAEC\n', 'AAF=', '-_8=', '====']) {
      expect(decodeBase64Strict(bad)).toBeUndefined();
    }
  });

  it('property: the same answer as a canonical-pattern check followed by the round trip', () => {
    // The pattern the function used before it relied on the round trip alone.
    const pattern = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
    const reference = (t: string) => (pattern.test(t) && Buffer.from(t, 'base64').toString('base64') === t ? Buffer.from(t, 'base64') : undefined);
    const chars = fc.constantFrom(...'AQgw+/=-_ \n\r.%A9z'.split(''));
    fc.assert(
      fc.property(fc.oneof(fc.string(), fc.array(chars, { maxLength: 24 }).map((a) => a.join('')), fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64'))), (t) => {
        expect(decodeBase64Strict(t)).toEqual(reference(t));
      }),
      { numRuns: 5000 },
    );
  });
});

describe('zeroize', () => {
  it('zeroes Buffers, typed arrays and ArrayBuffers and skips undefined', () => {
    const b = Buffer.from([1, 2, 3]);
    const ab = new Uint8Array([4, 5]).buffer;
    zeroize(b, undefined, ab);
    expect([...b]).toEqual([0, 0, 0]);
    expect([...new Uint8Array(ab)]).toEqual([0, 0]);
  });
});

describe('isWellFormedUtf16', () => {
  it('flags lone surrogates only', () => {
    expect(isWellFormedUtf16('a🔑b')).toBe(true);
    expect(isWellFormedUtf16('a\uD83Db')).toBe(false);
    expect(isWellFormedUtf16('\uDD11')).toBe(false);
  });
});

describe('hkdfSha256', () => {
  it('RFC 5869 test case 1 (SHA-256, 42 bytes: two blocks) and test case 3 (empty salt and info)', () => {
    const ikm = Buffer.alloc(22, 0x0b);
    // Test case 1's salt is the bytes 0x00..0x0c; the function takes the salt as UTF-8 text, which these are.
    const salt = Buffer.from('000102030405060708090a0b0c', 'hex').toString('utf8');
    const info = Buffer.from('f0f1f2f3f4f5f6f7f8f9', 'hex');
    expect(hkdfSha256(ikm, salt, info, 42).toString('hex')).toBe('3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865');
    expect(hkdfSha256(ikm, '', Buffer.alloc(0), 42).toString('hex')).toBe('8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8');
  });

  it('property: the same bytes as crypto.hkdfSync, for any key material, salt, info and length', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 96 }),
        fc.string({ maxLength: 40 }),
        fc.uint8Array({ maxLength: 1024 }),
        fc.constantFrom(1, 16, 31, 32, 33, 42, 64, 100, 255 * 32),
        (ikm, salt, info, length) => {
          const expected = Buffer.from(hkdfSync('sha256', ikm, Buffer.from(salt, 'utf8'), info, length));
          expect(hkdfSha256(ikm, salt, info, length).equals(expected)).toBe(true);
        },
      ),
      { numRuns: 400 },
    );
  });

  it('a salt seen before (its bytes kept) gives what hkdfSync gives, before and after the bound on kept salts; salts differing in one character differ', () => {
    const ikm = Buffer.alloc(32, 7);
    const info = Buffer.from('info');
    const ref = (salt: string) => Buffer.from(hkdfSync('sha256', ikm, Buffer.from(salt, 'utf8'), info, 32));
    const salts = Array.from({ length: 100 }, (_, i) => `salt/\u00e9/${i}`);
    for (let round = 0; round < 3; round++) for (const salt of salts) expect(hkdfSha256(ikm, salt, info).equals(ref(salt))).toBe(true);
    expect(hkdfSha256(ikm, 'salt/a', info).equals(hkdfSha256(ikm, 'salt/b', info))).toBe(false);
  });

  it('refuses what hkdfSync refuses: info over 1024 bytes, lengths outside 1..255 blocks', () => {
    expect(() => hkdfSha256(Buffer.alloc(32), 's', Buffer.alloc(1025))).toThrow(RangeError);
    expect(() => hkdfSha256(Buffer.alloc(32), 's', Buffer.alloc(1), 0)).toThrow(RangeError);
    expect(() => hkdfSha256(Buffer.alloc(32), 's', Buffer.alloc(1), 255 * 32 + 1)).toThrow(RangeError);
  });
});
