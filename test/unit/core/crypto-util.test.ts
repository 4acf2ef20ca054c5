import fc from 'fast-check';
import {
  base62Decode,
  base62EncodeBigInt,
  base62EncodeBytes,
  crc32,
  decodeBase64Strict,
  isWellFormedUtf16,
  zeroize,
} from '../../../lambda/core/crypto-util';

describe('crc32', () => {
  it('matches the CRC-32/ISO-HDLC check value', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.alloc(0))).toBe(0);
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
