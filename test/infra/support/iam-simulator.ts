/**
 * A thin wrapper around @cloud-copilot/iam-simulate (AGPL-3.0: tests only, never lib/ or lambda/).
 *
 * Two workarounds for version 0.1.173, each checked by a test so that a fixed release shows up:
 * - runSimulation validates policies, action and resource, but drops condition keys with a
 *   colon-delimited variable such as `kms:EncryptionContext:region`; the decision therefore comes
 *   from runUnsafeSimulation, which takes the context exactly as given, after validation passed.
 * - runUnsafeSimulation loads the resource policy without metadata and then reads its name; the
 *   loader is wrapped to give unnamed policies a name.
 */
import * as path from 'node:path';
import { runSimulation, runUnsafeSimulation, Simulation } from '@cloud-copilot/iam-simulate';

type LoadPolicy = (policy: unknown, metadata?: { name: string }) => unknown;
// eslint-disable-next-line @typescript-eslint/no-require-imports
const parser = require(path.join(path.dirname(require.resolve('@cloud-copilot/iam-policy')), 'parser.js')) as {
  loadPolicy: LoadPolicy;
};
const originalLoadPolicy = parser.loadPolicy;
parser.loadPolicy = (policy, metadata) => originalLoadPolicy(policy, metadata ?? { name: 'ResourcePolicy' });

export type Decision = 'Allowed' | 'ImplicitlyDenied' | 'ExplicitlyDenied';

export interface SimulationInput {
  readonly principal: string;
  readonly identityPolicies: { name: string; policy: unknown }[];
  readonly action: string;
  readonly resourceArn: string;
  readonly accountId: string;
  readonly resourcePolicy?: unknown;
  readonly context?: Record<string, string | string[]>;
}

function toSimulation(input: SimulationInput): Simulation {
  return {
    request: {
      principal: input.principal,
      action: input.action,
      resource: { resource: input.resourceArn, accountId: input.accountId },
      contextVariables: input.context ?? {},
    },
    identityPolicies: input.identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: input.resourcePolicy,
  };
}

/** The validated simulator's own answer (context keys it does not know are dropped). */
export async function validatedDecision(input: SimulationInput): Promise<Decision> {
  const result = await runSimulation(toSimulation(input), {});
  if (result.resultType === 'error') throw new Error(`simulation error: ${JSON.stringify(result.errors)}`);
  return result.overallResult as Decision;
}

/** Validates the inputs, then decides with the full request context. */
export async function decide(input: SimulationInput): Promise<Decision> {
  await validatedDecision(input);
  return runUnsafeSimulation(toSimulation(input), {}) as Decision;
}
