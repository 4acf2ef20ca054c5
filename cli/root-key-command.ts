/**
 * `sovereign-router root-key status|migrate`: moves a cell's sealed rows from its previous root
 * key(s) to its current one (README: Operations). Talks to the cell's /admin/root-key routes
 * (SigV4), which run in the root-key migration function: kms:ReEncrypt only, no plaintext.
 * Prints counts, cursors and row identities, never key material.
 */
import type { MigrationProgress } from '../lambda/core/root-key-migration';
import { ApiClient, CliError } from './api-client';

export const ROOT_KEY_HELP = `Usage: sovereign-router root-key <status|migrate> [options]

A cell's root key wraps the data key of every sealed secret. To move a cell to a new root key,
deploy it with rootKeyGeneration raised (a new key) and the old key's ARN in previousRootKeyArns:
from then on the vault seals under the new key and the router opens rows under either. Then:

  root-key status               rows under the current key, under each previous key, under
                                other keys (tenant-held keys), unreadable rows; "complete" when
                                no row is left under a previous key
  root-key migrate [--cursor C] [--page-size N]
                                rewraps every row still under a previous key to the current key
                                with kms:ReEncrypt (the function never sees a data key), one
                                audited change per row, a batch at a time, printing progress.
                                Rows already under the current key are skipped, a row changed
                                meanwhile (rotated, resealed, deleted) is left as it now is, a
                                row that fails to authenticate is reported and left alone.
                                Interrupted (network, crash, KMS throttling): run it again, with
                                --cursor to continue where it stopped or without to rescan; no
                                row is rewrapped twice. Exits 1 if any row failed.

Options: --endpoint URL (the cell's API), --region REGION, --json (see sovereign-router --help).
`;

/** The migrate route's answer: one batch's progress and the key it moves rows to. */
type Progress = MigrationProgress & { targetKeyArn: string };

interface Inventory {
  currentKeyArn: string;
  current: number;
  previous: Record<string, number>;
  other: number;
  unreadable: number;
  complete: boolean;
}

function describeInventory(s: Inventory): string {
  const lines = [`current root key ${s.currentKeyArn}: ${s.current} row(s)`];
  for (const [arn, n] of Object.entries(s.previous)) lines.push(`previous root key ${arn}: ${n} row(s)`);
  if (s.other > 0) lines.push(`other keys (tenant-held): ${s.other} row(s)`);
  if (s.unreadable > 0) lines.push(`unreadable rows: ${s.unreadable} (never migrated; see the migrate report)`);
  lines.push(
    Object.keys(s.previous).length === 0
      ? 'no previous root key is configured'
      : s.complete
        ? 'migration complete: remove previousRootKeyArns, deploy, then disable the previous key(s)'
        : "migration incomplete: run 'sovereign-router root-key migrate'",
  );
  return `${lines.join('\n')}\n`;
}

export async function rootKeyCommand(
  action: string | undefined,
  opts: { client: () => ApiClient; json?: boolean; cursor?: string; pageSize?: string },
  out: { stdout: (s: string) => void; stderr: (s: string) => void },
): Promise<number> {
  switch (action) {
    case 'status': {
      const s = (await opts.client().call('GET', '/admin/root-key/status')) as Inventory;
      if (opts.json) out.stdout(`${JSON.stringify(s, null, 2)}\n`);
      else out.stdout(describeInventory(s));
      return 0;
    }
    case 'migrate':
      return migrate(opts, out);
    default:
      throw new CliError(`unknown root-key command '${action ?? ''}'. See sovereign-router root-key --help.`, 2);
  }
}

async function migrate(
  opts: { client: () => ApiClient; json?: boolean; cursor?: string; pageSize?: string },
  out: { stdout: (s: string) => void; stderr: (s: string) => void },
): Promise<number> {
  let pageSize: number | undefined;
  if (opts.pageSize !== undefined) {
    pageSize = Number(opts.pageSize);
    if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > 500) throw new CliError('--page-size must be an integer from 1 to 500', 2);
  }
  const client = opts.client();
  const total = { batches: 0, scanned: 0, rewrapped: 0, alreadyCurrent: 0, raced: 0, otherKey: 0, failed: 0 };
  const failures: Progress['failures'] = [];
  let cursor = opts.cursor;
  for (;;) {
    let p: Progress;
    try {
      p = (await client.call('POST', '/admin/root-key/migrate', { ...(cursor ? { cursor } : {}), ...(pageSize ? { pageSize } : {}) })) as Progress;
    } catch (err) {
      const resume = cursor ? `sovereign-router root-key migrate --cursor ${cursor}` : 'sovereign-router root-key migrate';
      out.stderr(`Interrupted after ${total.batches} batch(es), ${total.rewrapped} row(s) rewrapped. Nothing is lost; resume with:\n  ${resume}\n`);
      throw err;
    }
    total.batches++;
    for (const k of ['scanned', 'rewrapped', 'alreadyCurrent', 'raced', 'otherKey', 'failed'] as const) total[k] += p[k];
    failures.push(...p.failures);
    out.stderr(
      `batch ${total.batches}: scanned ${total.scanned}, rewrapped ${total.rewrapped}, already current ${total.alreadyCurrent}, ` +
        `changed meanwhile ${total.raced}, other keys ${total.otherKey}, failed ${total.failed}${p.done ? ' (done)' : ''}\n`,
    );
    if (p.done) break;
    cursor = p.cursor;
  }
  if (opts.json) out.stdout(`${JSON.stringify({ ...total, failures }, null, 2)}\n`);
  else {
    out.stdout(`Root-key migration finished: ${total.rewrapped} row(s) rewrapped, ${total.alreadyCurrent} already current, ${total.raced} changed meanwhile, ${total.failed} failed.\n`);
    for (const f of failures) out.stdout(`  failed: ${f.tenant ?? '?'} ${f.provider ?? '?'}/${f.secret ?? '?'}: ${f.code}\n`);
    if (total.raced > 0) out.stdout("Rows changed meanwhile may have been written under a previous key by an old process: run 'root-key status' and migrate again if any remain.\n");
  }
  return total.failed > 0 ? 1 : 0;
}
