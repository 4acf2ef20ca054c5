import fc from 'fast-check';
import { greaterThanRegex } from '../../../lib/private/greater-than-regex';

// The WAF size rule compares Content-Length by its digits: the regex must match exactly the numbers above the limit.
describe('greaterThanRegex', () => {
  test('matches x exactly when x > limit (property, leading zeros included)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 10_000_000 }), fc.integer({ min: 0, max: 100_000_000 }), fc.nat({ max: 3 }), (limit, x, zeros) => {
        const re = new RegExp(greaterThanRegex(limit));
        expect(re.test('0'.repeat(zeros) + String(x))).toBe(x > limit);
      }),
      { numRuns: 3000 },
    );
  });

  test('boundaries around 1 MiB, and non-numbers never match', () => {
    const re = new RegExp(greaterThanRegex(1048576));
    expect(['1048576', '1048575', '0', '999999', '', 'abc', '1048577x', '-2000000'].map((v) => re.test(v))).toEqual([false, false, false, false, false, false, false, false]);
    expect(['1048577', '1048580', '1049000', '2000000', '10000000', '99999999999'].every((v) => re.test(v))).toBe(true);
  });

  test('short enough for a WAF regex (200 characters) for every allowed limit', () => {
    for (const limit of [1024, 1048576, 6291456, 999999, 6000000]) expect(greaterThanRegex(limit).length).toBeLessThanOrEqual(200);
  });
});
