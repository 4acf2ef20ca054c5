import fc from 'fast-check';
import {
  assertSecretIdentity,
  canonicalEncode,
  canonicalIdentity,
  decodeCanonical,
  ENCRYPTION_CONTEXT_KEYS,
  encryptionContextOf,
  SECRET_IDENTITY_DOMAIN,
  type SecretIdentity,
} from '../../../lambda/core/canonical';

const str = fc.string({ unit: 'grapheme', maxLength: 12 });
const fieldsArb = fc.array(fc.tuple(str, str), { maxLength: 6 });
const inputArb = fc.tuple(str, fieldsArb);

const identity: SecretIdentity = {
  app: 'sovereign-router',
  region: 'eu-central-1',
  tenant: 'acme-corp',
  provider: 'openai',
  secret: 'default',
  version: 3,
};

describe('canonicalEncode', () => {
  it('separates the classic concatenation collisions', () => {
    expect(canonicalEncode('d', [['ab', 'c']])).not.toEqual(canonicalEncode('d', [['a', 'bc']]));
    expect(canonicalEncode('d', [['a', 'b'], ['c', 'd']])).not.toEqual(canonicalEncode('d', [['a', 'bc'], ['', 'd']]));
    expect(canonicalEncode('da', [])).not.toEqual(canonicalEncode('d', [['a', '']]));
    expect(canonicalEncode('d', [])).not.toEqual(canonicalEncode('d', [['', '']]));
  });

  it('has the documented layout', () => {
    expect(canonicalEncode('D', [['k', 'vv']]).toString('hex')).toBe('00000001' + '44' + '00000001' + '00000001' + '6b' + '00000002' + '7676');
  });

  it('property: decode(encode(x)) = x', () => {
    fc.assert(
      fc.property(inputArb, ([domain, fields]) => {
        expect(decodeCanonical(canonicalEncode(domain, fields))).toEqual({ domain, fields });
      }),
      { numRuns: 1000 },
    );
  });

  it('property: distinct inputs give distinct encodings', () => {
    fc.assert(
      fc.property(inputArb, inputArb, (a, b) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        expect(canonicalEncode(...a).equals(canonicalEncode(...b))).toBe(false);
      }),
      { numRuns: 1000 },
    );
  });

  it('property: moving the split point between name and value always changes the encoding', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 20 }), fc.nat(), fc.nat(), (s, i0, j0) => {
        const i = i0 % (s.length + 1);
        const j = j0 % (s.length + 1);
        fc.pre(i !== j);
        const a = canonicalEncode('d', [[s.slice(0, i), s.slice(i)]]);
        const b = canonicalEncode('d', [[s.slice(0, j), s.slice(j)]]);
        expect(a.equals(b)).toBe(false);
      }),
    );
  });

  it('rejects lone surrogates, which UTF-8 cannot represent injectively', () => {
    expect(() => canonicalEncode('d', [['k', '\uD800']])).toThrow(/well-formed/);
    expect(() => canonicalEncode('\uDC00', [])).toThrow(/well-formed/);
  });
});

/** Valid encodings with one byte overwritten: mostly near-misses, sometimes still valid. */
const mutatedEncoding = fc
  .tuple(inputArb, fc.nat(), fc.integer({ min: 0, max: 255 }))
  .map(([[d, f], pos, byte]) => {
    const enc = Uint8Array.from(canonicalEncode(d, f));
    enc[pos % enc.length] = byte;
    return enc;
  });

describe('decodeCanonical', () => {
  it('rejects every truncation and any trailing byte', () => {
    const enc = canonicalEncode('domain', [['a', 'b'], ['name', 'välue']]);
    for (let n = 0; n < enc.length; n++) expect(() => decodeCanonical(enc.subarray(0, n))).toThrow();
    expect(() => decodeCanonical(Buffer.concat([enc, Buffer.from([0])]))).toThrow(/trailing/);
  });

  it('rejects invalid UTF-8 and absurd field counts', () => {
    expect(() => decodeCanonical(Buffer.from('00000001ff00000000', 'hex'))).toThrow(/invalid UTF-8/);
    expect(() => decodeCanonical(Buffer.from('00000000ffffffff', 'hex'))).toThrow(/truncated/);
  });

  it('property: any bytes it accepts are the unique encoding of what it returns', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }), mutatedEncoding), (bytes) => {
        let decoded;
        try {
          decoded = decodeCanonical(Buffer.from(bytes));
        } catch (err) {
          expect(err).toBeInstanceOf(Error);
          expect((err as Error).message).toMatch(/^decodeCanonical: /);
          return;
        }
        expect(canonicalEncode(decoded.domain, decoded.fields).equals(Buffer.from(bytes))).toBe(true);
      }),
      { numRuns: 2000 },
    );
  });
});

describe('secret identity', () => {
  it('encodes the six fields in a fixed order under its own domain', () => {
    const decoded = decodeCanonical(canonicalIdentity(identity));
    expect(decoded.domain).toBe(SECRET_IDENTITY_DOMAIN);
    expect(decoded.fields).toEqual([
      ['app', 'sovereign-router'],
      ['region', 'eu-central-1'],
      ['tenant', 'acme-corp'],
      ['provider', 'openai'],
      ['secret', 'default'],
      ['version', '3'],
    ]);
  });

  it('gives a KMS context with exactly ENCRYPTION_CONTEXT_KEYS, all strings, matching the AAD', () => {
    const ctx = encryptionContextOf(identity);
    expect(Object.keys(ctx).sort()).toEqual([...ENCRYPTION_CONTEXT_KEYS].sort());
    expect(Object.values(ctx).every((v) => typeof v === 'string')).toBe(true);
    expect(ctx.version).toBe('3');
    expect(Object.entries(ctx)).toEqual(decodeCanonical(canonicalIdentity(identity)).fields);
    expect(ENCRYPTION_CONTEXT_KEYS).toEqual(['app', 'region', 'tenant', 'provider', 'secret', 'version']);
  });

  it('property: distinct identities have distinct canonical bytes and contexts', () => {
    const idArb = fc.record({
      app: fc.constant('sovereign-router' as const),
      region: fc.constantFrom('eu-central-1', 'eu-west-1', 'us-east-1'),
      tenant: fc.constantFrom('acme', 'acme-corp', 'globex'),
      provider: fc.constantFrom('openai', 'anthropic', 'mistral'),
      secret: fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,8}$/),
      version: fc.integer({ min: 1, max: 1000 }),
    });
    fc.assert(
      fc.property(idArb, idArb, (a, b) => {
        fc.pre(JSON.stringify(a) !== JSON.stringify(b));
        expect(canonicalIdentity(a).equals(canonicalIdentity(b))).toBe(false);
        expect(encryptionContextOf(a)).not.toEqual(encryptionContextOf(b));
      }),
    );
  });

  it('rejects invalid identities, naming the field', () => {
    const bad: Array<[Partial<Record<keyof SecretIdentity, unknown>>, string]> = [
      [{ app: 'other' }, 'app'],
      [{ region: 'mars-1' }, 'region'],
      [{ tenant: 'A' }, 'tenant'],
      [{ provider: '' }, 'provider'],
      [{ secret: 'a b' }, 'secret'],
      [{ secret: 'x'.repeat(129) }, 'secret'],
      [{ version: 0 }, 'version'],
      [{ version: 1.5 }, 'version'],
      [{ version: '1' }, 'version'],
    ];
    for (const [patch, field] of bad) {
      const id = { ...identity, ...patch } as unknown as SecretIdentity;
      expect(() => assertSecretIdentity(id)).toThrow(`invalid secret identity: ${field}`);
      expect(() => canonicalIdentity(id)).toThrow();
      expect(() => encryptionContextOf(id)).toThrow();
    }
  });
});
