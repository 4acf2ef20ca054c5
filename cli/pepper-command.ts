/**
 * `sovereign-router pepper status|rotate`: the operator's pepper rotation (README: Operations).
 * Talks to the admin API (SigV4 on a deployed cell, open on the local gateway); prints counts and
 * token ids, never a pepper, a verifier or a token.
 */
import { ApiClient, CliError } from './api-client';

export const PEPPER_HELP = `Usage: sovereign-router pepper <status|rotate> [options]

The pepper keys every API-key verifier (HMAC-SHA256(pepper, token)); each token record names the
pepper version its verifier is under. The router and vault accept the current and the previous
version; a token found under the previous one is moved to the current one on its next use.

  pepper status                 current/previous version, tokens per version, the tokens still on
                                the previous version, and whether a rotation may start now
  pepper rotate [--expect-version N] [--force]
                                makes a new version current and the current one previous, and
                                records pepper.rotated in the cell's audit trail. Refused (exit 1)
                                while tokens are still on the previous version (they would stop
                                working) or while the current version is younger than the pepper
                                cache lifetime (15 minutes on a deployed cell). --force retires the
                                tokens left on the previous version; --expect-version refuses if
                                another operator rotated meanwhile. Safe to re-run after a crash:
                                an unrecorded rotation is recorded first.
  audit verify --cell           verifies the cell's own audit trail (pepper rotations)

Options: --endpoint URL, --region REGION, --json (see sovereign-router --help).
`;

interface StatusView {
  current: { version: number; rotatedAt?: string };
  previous?: { version: number };
  issuing: number;
  tokensByVersion: Record<string, number>;
  onPrevious: { tenantId: string; tokenId: string; role: string; label?: string }[];
  unreachable: number;
  canRotate: boolean;
  blockers: string[];
  recordedThrough: number;
}

function describeStatus(s: StatusView): string {
  const lines = [
    `pepper version ${s.current.version} is current${s.current.rotatedAt ? ` (since ${s.current.rotatedAt})` : ''}` +
      (s.previous ? `; version ${s.previous.version} is still accepted` : ''),
    `tokens per version: ${Object.keys(s.tokensByVersion).length === 0 ? 'none' : Object.entries(s.tokensByVersion).sort(([a], [b]) => Number(b) - Number(a)).map(([v, n]) => `v${v}: ${n}`).join(', ')}`,
  ];
  if (s.issuing !== s.current.version) lines.push(`new tokens are still issued under version ${s.issuing} until every process has read version ${s.current.version}`);
  for (const t of s.onPrevious) lines.push(`  on previous: ${t.tenantId} ${t.tokenId} (${t.role}${t.label ? `, ${t.label}` : ''})`);
  if (s.unreachable > 0) lines.push(`${s.unreachable} token record(s) are on a retired version: they no longer work (revoke them)`);
  if (s.recordedThrough < s.current.version) lines.push(`the rotation to version ${s.current.version} is not in the audit trail yet: 'pepper rotate' records it first`);
  lines.push(s.canRotate ? 'a rotation may start now' : `a rotation would be refused: ${s.blockers.join('; ')}`);
  return `${lines.join('\n')}\n`;
}

export async function pepperCommand(
  action: string | undefined,
  opts: { client: () => ApiClient; json?: boolean; force?: boolean; expectVersion?: string },
  out: { stdout: (s: string) => void; stderr: (s: string) => void },
): Promise<number> {
  const print = (data: unknown) => out.stdout(`${JSON.stringify(data, null, 2)}\n`);
  switch (action) {
    case 'status': {
      const s = (await opts.client().call('GET', '/admin/pepper')) as StatusView;
      if (opts.json) print(s);
      else out.stdout(describeStatus(s));
      return 0;
    }
    case 'rotate': {
      let expectedVersion: number | undefined;
      if (opts.expectVersion !== undefined) {
        expectedVersion = Number(opts.expectVersion);
        if (!Number.isSafeInteger(expectedVersion) || expectedVersion < 1) throw new CliError('--expect-version must be a positive integer', 2);
      }
      const res = (await opts.client().call('POST', '/admin/pepper/rotate', {
        ...(expectedVersion !== undefined ? { expectedVersion } : {}),
        ...(opts.force ? { force: true } : {}),
      })) as { fromVersion: number; toVersion: number; rotatedAt: string; retiredTokens: number; recordedLate?: number };
      if (opts.json) print(res);
      else {
        if (res.recordedLate) out.stderr(`The earlier rotation to version ${res.recordedLate} had not been recorded; it is recorded now.\n`);
        out.stdout(
          `Rotated the pepper from version ${res.fromVersion} to ${res.toVersion} at ${res.rotatedAt}; recorded in the cell audit trail.\n` +
            (res.retiredTokens > 0 ? `${res.retiredTokens} token(s) left on version ${res.fromVersion - 1} were retired (--force).\n` : '') +
            `Tokens on version ${res.fromVersion} move to ${res.toVersion} on their next use; 'pepper status' shows how many are left.\n`,
        );
      }
      return 0;
    }
    default:
      throw new CliError(`unknown pepper command '${action ?? ''}'. See sovereign-router pepper --help.`, 2);
  }
}
