import { createHmac } from 'node:crypto';
import { formatStoredPepper, parseStoredPepper, PepperFormatError, pepperVersionOf, ringOf, tokenVerifiers, upgradeTarget } from '../../../lambda/core/pepper-ring';
import { generateToken } from '../../../lambda/core/token';

const P1 = 'a'.repeat(64);
const P2 = 'b'.repeat(64);
const P3 = 'c'.repeat(64);
const hmac = (p: string, t: string) => createHmac('sha256', Buffer.from(p, 'utf8')).update(t, 'utf8').digest('hex');

describe('stored pepper values', () => {
  it('a bare string is version 1 (the pepper a cell was created with); the envelope round-trips', () => {
    expect(parseStoredPepper(P1)).toEqual({ version: 1, pepper: P1 });
    const v = { version: 7, pepper: P2, createdAt: '2026-12-01T10:00:00.000Z' };
    expect(parseStoredPepper(formatStoredPepper(v))).toEqual(v);
  });

  it('refuses short, malformed or wrongly versioned values, naming the field and never the value', () => {
    const secret = 'short-secret-value';
    for (const text of [
      secret,
      formatStoredPepper({ version: 2, pepper: secret }),
      formatStoredPepper({ version: 0, pepper: P2 }),
      formatStoredPepper({ version: 1.5, pepper: P2 }),
      JSON.stringify({ format: 'sovereign-router/pepper/v1', version: 2, pepper: P2, createdAt: 'yesterday' }),
    ]) {
      const err = (() => {
        try {
          parseStoredPepper(text);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(err).toBeInstanceOf(PepperFormatError);
      expect((err as Error).message).not.toContain(secret);
    }
  });
});

describe('the ring and the verifiers of a token', () => {
  const token = generateToken('euc1', 'acme');

  it('before any rotation: one verifier, issued under version 1', () => {
    const v = tokenVerifiers(ringOf({ version: 1, pepper: P1 }, undefined, true), token);
    expect(v).toEqual({ current: { version: 1, verifier: hmac(P1, token) }, issuing: { version: 1, verifier: hmac(P1, token) } });
  });

  it('during an overlap: current and previous; issuing is previous until settled, then current', () => {
    const cur = { version: 3, pepper: P3, createdAt: '2026-12-01T10:00:00.000Z' };
    const prev = { version: 2, pepper: P2 };
    const early = tokenVerifiers(ringOf(cur, prev, false), token);
    expect(early.current).toEqual({ version: 3, verifier: hmac(P3, token) });
    expect(early.previous).toEqual({ version: 2, verifier: hmac(P2, token) });
    expect(early.issuing).toEqual(early.previous);
    expect(upgradeTarget(early.previous!, early)).toBeUndefined(); // nothing moves before it settled
    const late = tokenVerifiers(ringOf(cur, prev, true), token);
    expect(late.issuing).toEqual(late.current);
    expect(upgradeTarget(late.previous!, late)).toEqual(late.current);
    expect(upgradeTarget(late.current, late)).toBeUndefined();
  });

  it('a stored previous that is not exactly current - 1 is not accepted (one overlap only)', () => {
    const ring = ringOf({ version: 3, pepper: P3 }, { version: 1, pepper: P1 }, true);
    expect(ring.previous).toBeUndefined();
    expect(tokenVerifiers(ring, token).previous).toBeUndefined();
  });

  it('wipes the ring it was given (its pepper copies)', () => {
    const ring = ringOf({ version: 2, pepper: P2 }, { version: 1, pepper: P1 }, true);
    tokenVerifiers(ring, token);
    expect(ring.current.pepper.every((b) => b === 0)).toBe(true);
    expect(ring.previous!.pepper.every((b) => b === 0)).toBe(true);
  });

  it('a record without pepperVersion is on version 1; nonsense versions count as 1', () => {
    expect(pepperVersionOf({})).toBe(1);
    expect(pepperVersionOf({ pepperVersion: 4 })).toBe(4);
    expect(pepperVersionOf({ pepperVersion: '4' })).toBe(1);
    expect(pepperVersionOf({ pepperVersion: 0 })).toBe(1);
  });
});
