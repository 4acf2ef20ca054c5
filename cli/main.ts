/**
 * sovereign-router CLI: tenants, provider secrets, tokens, usage and audit, against the local
 * gateway or a deployed cell. Provider keys are read from stdin or an environment variable, never
 * from the command line (shell history, process lists).
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { writeFileSync } from 'node:fs';
import { ApiClient, CliError } from './api-client';
import { COMMAND_HELP } from './command-help';
import { fetchAllUsage, toCsv } from './usage-export';
import { PEPPER_HELP, pepperCommand } from './pepper-command';
import { ROOT_KEY_HELP, rootKeyCommand } from './root-key-command';

export const HELP = `Usage: sovereign-router <command> [options]

Tenants (operator; SigV4 on a deployed cell, open on the local gateway):
  tenants create <tenant-id> [--sovereign] [--policy-file FILE]   prints the first tenant-admin token
  tenants show <tenant-id>
  tenants policy <tenant-id> [--set-file FILE]                    read, or replace, the tenant policy
  tenants usage <tenant-id>                                       spend, reservations and rate windows
  tenants token-limits <tenant-id> <token-id> [--set-file FILE]   read, or set, one token's limits
  tenants audit <tenant-id>                                       events and chain verification

Audit (operator):
  audit verify --cell                   the same for the cell's own trail (pepper rotations)
  audit verify --tenant <tenant-id>     checks the tenant's audit trail (MACs under the audit key,
                                        chain, anchors, current secret rows); exits 1 and names
                                        the first bad event if anything was tampered with
  tenants offboard <tenant-id> --yes    crypto-shreds the tenant (erasure key first), then deletes
                                        its secrets and tokens; resumable (see: tenants offboard --help)

Pepper (operator; sovereign-router pepper --help):
  pepper status                          tokens per pepper version, whether a rotation may start
  pepper rotate [--expect-version N] [--force]   rotates the verifier pepper, keeping tokens alive

Key lifecycle (operator, with the tenant's tenant-admin token from --token or SR_TOKEN; each
step is recorded in the tenant's audit trail; safe to run again after any failure: it resumes):
  tenants rotate-factor --tenant <tenant-id>
        sovereign tenants: new tenant factor, every secret resealed under it, every live token
        given the new factor (tokens stay the same); a token revoked before no longer opens anything
  tenants convert --tenant <tenant-id> --to sovereign|managed
        reseals every secret with (sovereign) or without (managed) a tenant factor; tokens stay
  Runs on the local gateway, and on a deployed cell while it is deployed with keyLifecycle: true
  (otherwise 501). Requests keep being served throughout.

Root key (operator; sovereign-router root-key --help):
  root-key status                        rows per root key; whether a migration is complete
  root-key migrate [--cursor C] [--page-size N]   rewraps rows to the current root key (kms:ReEncrypt)

Provider secrets (tenant-admin token):
  secrets put <provider> [--name NAME] (--api-key-stdin | --api-key-env VAR)
  secrets rotate <provider> [--name NAME] (--api-key-stdin | --api-key-env VAR)
  secrets list
  secrets delete <provider> [--name NAME]

Tokens (tenant-admin token):
  tokens create [--role invoke|tenant-admin] [--label TEXT] [--limits-file FILE]   prints the token
  tokens list
  tokens rotate <token-id>                                        prints the new token
  tokens revoke <token-id>

Usage records (tenant-admin token):
  usage export [--from DATE] [--to DATE] [--token-id ID] [--model M] [--outcome ok|denied|error]
               [--format json|csv] [--out FILE]                   every request of the period, all pages

Options:
  --endpoint URL   gateway URL (env SR_ENDPOINT; default http://127.0.0.1:8787)
  --token TOKEN    tenant-admin token for secrets/tokens (env SR_TOKEN)
  --region REGION  region for SigV4 (default: from the execute-api host name)
  --json           print whole JSON responses
  -h, --help
`;

interface AuditVerificationView {
  ok: boolean;
  tenantId: string;
  events: number;
  lastSeq: number;
  anchoredThrough: number;
  firstBad?: { seq?: number; type?: string; code: string; message: string };
  findings: { seq?: number; code: string; message: string }[];
  unanchored: number[];
}

/** One line for a verified trail; the first bad event first, then every finding, for a broken one. */
function describeVerification(v: AuditVerificationView): string {
  const unanchored = v.unanchored.length > 0 ? `\nwarning: event(s) ${v.unanchored.map((s) => `#${s}`).join(', ')} have no anchor; their deletion could not be detected\n` : '';
  if (v.ok) return `audit trail of ${v.tenantId}: ok, ${v.events} events, anchored through #${v.anchoredThrough}\n${unanchored}`;
  const first = v.firstBad!;
  const lines = [`audit trail of ${v.tenantId}: FAILED${first.seq !== undefined ? ` at event #${first.seq}` : ''}: ${first.message}`];
  for (const f of v.findings.slice(1)) lines.push(`  also: ${f.message} [${f.code}]`);
  return `${lines.join('\n')}\n${unanchored}`;
}

type Out = { stdout: (s: string) => void; stderr: (s: string) => void };

function readJsonFile(path: string | undefined, flag: string): unknown {
  if (!path) throw new CliError(`${flag} FILE is required`, 2);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    throw new CliError(`cannot read ${path}`, 2);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new CliError(`${path} is not valid JSON`, 2);
  }
}

async function readApiKey(values: { 'api-key-stdin'?: boolean; 'api-key-env'?: string }, stdin: () => Promise<string>): Promise<string> {
  if (values['api-key-stdin'] && values['api-key-env']) throw new CliError('use either --api-key-stdin or --api-key-env', 2);
  let key: string | undefined;
  if (values['api-key-stdin']) key = (await stdin()).trim();
  else if (values['api-key-env']) {
    key = process.env[values['api-key-env']];
    if (!key) throw new CliError(`environment variable ${values['api-key-env']} is empty or not set`, 2);
  } else throw new CliError('pass the provider key with --api-key-stdin or --api-key-env VAR (never on the command line)', 2);
  if (!key) throw new CliError('the provider key is empty', 2);
  return key;
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin as AsyncIterable<Buffer>) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

export async function run(argv: string[], out: Out, stdin: () => Promise<string> = readStdin): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        endpoint: { type: 'string' },
        token: { type: 'string' },
        region: { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        sovereign: { type: 'boolean' },
        'policy-file': { type: 'string' },
        'set-file': { type: 'string' },
        'limits-file': { type: 'string' },
        name: { type: 'string' },
        tenant: { type: 'string' },
        role: { type: 'string' },
        label: { type: 'string' },
        yes: { type: 'boolean' },
        'api-key-stdin': { type: 'boolean' },
        'api-key-env': { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        'token-id': { type: 'string' },
        model: { type: 'string' },
        outcome: { type: 'string' },
        format: { type: 'string' },
        out: { type: 'string' },
        cell: { type: 'boolean' },
        force: { type: 'boolean' },
        'expect-version': { type: 'string' },
        cursor: { type: 'string' },
        'page-size': { type: 'string' },
      },
    });
  } catch (err) {
    out.stderr(`sovereign-router: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help && positionals[0] === 'pepper') {
    out.stdout(PEPPER_HELP);
    return 0;
  }
  if (values.help && positionals[0] === 'root-key') {
    out.stdout(ROOT_KEY_HELP);
    return 0;
  }
  if (values.help || positionals.length === 0) {
    out.stdout(COMMAND_HELP[positionals.slice(0, 2).join(' ')] ?? HELP);
    return values.help ? 0 : 2;
  }
  const [group, action, ...args] = positionals;
  const client = () =>
    new ApiClient({
      endpoint: values.endpoint ?? process.env.SR_ENDPOINT ?? 'http://127.0.0.1:8787',
      token: values.token ?? process.env.SR_TOKEN,
      region: values.region,
    });
  const print = (data: unknown) => out.stdout(`${JSON.stringify(data, null, 2)}\n`);
  const need = (n: number, what: string) => {
    if (args.length < n) throw new CliError(`missing ${what}. See --help.`, 2);
  };
  const enc = encodeURIComponent;
  /** A token goes alone to stdout (for `$(...)`); what it is goes to stderr. */
  const printToken = (res: { token: string; tokenId: string; role?: string }, what: string) => {
    if (values.json) return print(res);
    out.stderr(`${what} ${res.tokenId}${res.role ? ` (${res.role})` : ''}. It is shown only once: store it now.\n`);
    out.stdout(`${res.token}\n`);
  };

  try {
    switch (`${group} ${action ?? ''}`.trim()) {
      case 'tenants create': {
        need(1, '<tenant-id>');
        const policy = values['policy-file'] ? readJsonFile(values['policy-file'], '--policy-file') : undefined;
        const res = (await client().call('POST', '/admin/tenants', { tenantId: args[0], mode: values.sovereign ? 'sovereign' : 'managed', ...(policy ? { policy } : {}) })) as {
          token: string;
          tokenId: string;
        };
        printToken({ ...res, role: 'tenant-admin' }, `Created tenant ${args[0]}${values.sovereign ? ' (sovereign)' : ''} and its first token`);
        return 0;
      }
      case 'tenants show':
        need(1, '<tenant-id>');
        print(await client().call('GET', `/admin/tenants/${enc(args[0])}`));
        return 0;
      case 'tenants policy':
        need(1, '<tenant-id>');
        if (values['set-file']) print(await client().call('PUT', `/admin/tenants/${enc(args[0])}/policy`, { policy: readJsonFile(values['set-file'], '--set-file') }));
        else print(await client().call('GET', `/admin/tenants/${enc(args[0])}/policy`));
        return 0;
      case 'tenants usage':
        need(1, '<tenant-id>');
        print(await client().call('GET', `/admin/tenants/${enc(args[0])}/usage`));
        return 0;
      case 'tenants token-limits': {
        need(2, '<tenant-id> <token-id>');
        const path = `/admin/tenants/${enc(args[0])}/tokens/${enc(args[1])}/limits`;
        if (values['set-file']) print(await client().call('PUT', path, { limits: readJsonFile(values['set-file'], '--set-file') }));
        else print(await client().call('GET', path));
        return 0;
      }
      case 'tenants audit':
        need(1, '<tenant-id>');
        print(await client().call('GET', `/admin/tenants/${enc(args[0])}/audit`));
        return 0;
      case 'root-key status':
      case 'root-key migrate':
      case 'root-key':
        return await rootKeyCommand(action, { client, json: values.json, cursor: values.cursor, pageSize: values['page-size'] }, out);
      case 'pepper status':
      case 'pepper rotate':
      case 'pepper':
        return await pepperCommand(action, { client, json: values.json, force: values.force, expectVersion: values['expect-version'] }, out);
      case 'audit verify': {
        if (values.cell) {
          const v = ((await client().call('GET', '/admin/cell/audit')) as { verification: AuditVerificationView }).verification;
          if (values.json) print(v);
          else out[v.ok ? 'stdout' : 'stderr'](describeVerification(v));
          return v.ok ? 0 : 1;
        }
        const tenant = values.tenant ?? args[0];
        if (!tenant) throw new CliError('missing --tenant <tenant-id>. See --help.', 2);
        const v = (await client().call('GET', `/admin/tenants/${enc(tenant)}/audit/verify`)) as AuditVerificationView;
        if (values.json) print(v);
        else out[v.ok ? 'stdout' : 'stderr'](describeVerification(v));
        return v.ok ? 0 : 1;
      }
      case 'tenants rotate-factor':
      case 'tenants convert': {
        const tenant = values.tenant ?? args[0];
        if (!tenant) throw new CliError('missing --tenant <tenant-id>. See --help.', 2);
        const token = values.token ?? process.env.SR_TOKEN;
        if (!token) throw new CliError("this command needs the tenant's tenant-admin token: pass --token or set SR_TOKEN", 2);
        let path = `/admin/tenants/${enc(tenant)}/factor/rotate`;
        let body: Record<string, string> = { token };
        if (action === 'convert') {
          if (values.to !== 'sovereign' && values.to !== 'managed') throw new CliError('--to must be sovereign or managed. See --help.', 2);
          path = `/admin/tenants/${enc(tenant)}/convert`;
          body = { to: values.to, token };
        }
        const r = (await client().call('POST', path, body)) as {
          tenantId: string;
          mode: string;
          fromGeneration: number;
          toGeneration: number;
          resumed: boolean;
          secretsResealed: number;
          tokensRewrapped: number;
        };
        if (values.json) print(r);
        else {
          out.stdout(
            `${r.tenantId}: ${action === 'convert' ? `now ${r.mode}` : `tenant factor rotated`} (factor generation ${r.fromGeneration} -> ${r.toGeneration}${r.resumed ? ', resumed' : ''}); ` +
              `${r.secretsResealed} secret(s) resealed, ${r.tokensRewrapped} token(s) given the new factor\n`,
          );
        }
        return 0;
      }
      case 'tenants offboard': {
        need(1, '<tenant-id>');
        if (!values.yes) throw new CliError(`offboarding destroys every secret and token of ${args[0]}; repeat with --yes`, 2);
        let res: { secretsDestroyed?: number; tokensRevoked?: number; legacySecretsNotShredded?: number };
        try {
          res = (await client().call('DELETE', `/admin/tenants/${enc(args[0])}`)) as typeof res;
        } catch (err) {
          // Anything short of a clean refusal may have stopped between steps: say how to finish.
          if (err instanceof CliError && !/HTTP 4\d\d/.test(err.message)) {
            throw new CliError(`${err.message}\nThe tenant may be frozen half-way; run the same command again to finish the offboarding.`, err.exitCode);
          }
          throw err;
        }
        print(res);
        out.stderr(
          `offboarded ${args[0]}: erasure key destroyed, ${res.secretsDestroyed ?? 0} secret(s) and ${res.tokensRevoked ?? 0} token(s) deleted; ` +
            `no backup or PITR copy of the tables can open its secrets any more.\n`,
        );
        if (res.legacySecretsNotShredded) {
          out.stderr(`warning: ${res.legacySecretsNotShredded} secret(s) were sealed before erasure keys (format v1): deleted, but backups taken before now still hold them until they expire.\n`);
        }
        return 0;
      }
      case 'secrets put':
      case 'secrets rotate': {
        need(1, '<provider>');
        const apiKey = await readApiKey(values, stdin);
        const name = values.name ?? 'default';
        const res =
          action === 'put'
            ? await client().call('POST', '/vault/secrets', { provider: args[0], name, apiKey })
            : await client().call('PUT', `/vault/secrets/${enc(args[0])}/${enc(name)}`, { apiKey });
        print(res);
        return 0;
      }
      case 'secrets list':
        print(await client().call('GET', '/vault/secrets'));
        return 0;
      case 'secrets delete':
        need(1, '<provider>');
        print(await client().call('DELETE', `/vault/secrets/${enc(args[0])}/${enc(values.name ?? 'default')}`));
        return 0;
      case 'tokens create': {
        const limits = values['limits-file'] ? readJsonFile(values['limits-file'], '--limits-file') : undefined;
        const res = (await client().call('POST', '/vault/tokens', {
          role: values.role ?? 'invoke',
          ...(values.label ? { label: values.label } : {}),
          ...(limits ? { limits } : {}),
        })) as { token: string; tokenId: string; role: string };
        printToken(res, 'Created token');
        return 0;
      }
      case 'tokens list':
        print(await client().call('GET', '/vault/tokens'));
        return 0;
      case 'tokens rotate': {
        need(1, '<token-id>');
        const res = (await client().call('POST', `/vault/tokens/${enc(args[0])}/rotate`)) as { token: string; tokenId: string; role: string };
        printToken(res, `Rotated ${args[0]} into`);
        return 0;
      }
      case 'tokens revoke':
        need(1, '<token-id>');
        print(await client().call('DELETE', `/vault/tokens/${enc(args[0])}`));
        return 0;
      case 'usage export': {
        const format = values.format ?? 'json';
        if (format !== 'json' && format !== 'csv') throw new CliError('--format must be json or csv', 2);
        const rows = await fetchAllUsage(client(), { from: values.from, to: values.to, tokenId: values['token-id'], model: values.model, outcome: values.outcome });
        const text = format === 'csv' ? toCsv(rows) : `${JSON.stringify(rows, null, 2)}\n`;
        if (values.out) {
          writeFileSync(values.out, text, { mode: 0o600 });
          out.stderr(`Wrote ${rows.length} usage records to ${values.out} (${format}).\n`);
        } else out.stdout(text);
        return 0;
      }
      default:
        throw new CliError(`unknown command '${positionals.join(' ')}'. See --help.`, 2);
    }
  } catch (err) {
    if (err instanceof CliError) {
      out.stderr(`sovereign-router: ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

/** Process entry: called by cli/sovereign-router.cjs. */
export function main(): void {
  run(process.argv.slice(2), { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s) }).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`sovereign-router: unexpected error: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
