/** The router's per-request generation check is exactly openableGenerations(tenant).has(generation). */
import fc from 'fast-check';
import { openableGenerations } from '../../../lambda/core/factor-generations';
import { openable } from '../../../lambda/core/router/router-app';

test('openable(tenant, g) === openableGenerations(tenant).has(g), for any mode, generation and factor change', () => {
  const gen = fc.integer({ min: 0, max: 4 });
  fc.assert(
    fc.property(
      fc.constantFrom('managed' as const, 'sovereign' as const),
      fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined }),
      fc.option(fc.record({ kind: fc.constantFrom('rotate' as const, 'to-sovereign' as const, 'to-managed' as const), fromGeneration: gen, toGeneration: gen, startedAt: fc.constant('2026-12-01T00:00:00.000Z') }), { nil: undefined }),
      gen,
      (mode, factorGeneration, factorChange, g) => {
        const t = { mode, factorGeneration, factorChange };
        expect(openable(t, g)).toBe(openableGenerations(t).has(g));
      },
    ),
    { numRuns: 2000 },
  );
});
