/**
 * checkov (PyPI, in .venv-checkov) on the synthesized templates: every finding must be explained
 * in the README's "checkov findings, explained" table, and every row there must still be reported
 * (no stale explanations). A negative control proves checkov really evaluates templates.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, makeTempDir, offlineEnv, synthApp } from './support/synth';

const execFileAsync = promisify(execFile);
const CHECKOV = path.join(REPO_ROOT, '.venv-checkov', 'bin', 'checkov');

interface Failed {
  check_id: string;
  check_name: string;
  resource: string;
  file_path: string;
}
interface Report {
  results: { failed_checks: Failed[]; passed_checks: unknown[] };
  summary: { passed: number; failed: number; skipped: number; parsing_errors: number };
}

async function checkov(dir: string): Promise<Report> {
  if (!fs.existsSync(CHECKOV)) throw new Error(`checkov not found at ${CHECKOV}: run bash scripts/setup-checkov.sh`);
  let stdout = '';
  try {
    // Any attempt to reach the network goes to a closed loopback port and fails.
    ({ stdout } = await execFileAsync(CHECKOV, ['-d', dir, '--framework', 'cloudformation', '-o', 'json', '--quiet', '--compact', '--skip-download'], {
      env: offlineEnv({ https_proxy: 'http://127.0.0.1:9', HTTPS_PROXY: 'http://127.0.0.1:9', http_proxy: 'http://127.0.0.1:9', HTTP_PROXY: 'http://127.0.0.1:9' }),
      timeout: 240_000,
      maxBuffer: 64 * 1024 * 1024,
    }));
  } catch (err) {
    // checkov exits 1 when a check fails; its JSON report is still on stdout.
    const e = err as { code?: number; stdout?: string; stderr?: string };
    if (e.code !== 1 || !e.stdout) throw new Error(`checkov did not run: ${String(err)} ${e.stderr ?? ''}`);
    stdout = e.stdout;
  }
  const parsed = JSON.parse(stdout) as Report | Report[];
  const reports = Array.isArray(parsed) ? parsed : [parsed];
  return {
    results: { failed_checks: reports.flatMap((r) => r.results.failed_checks), passed_checks: reports.flatMap((r) => r.results.passed_checks) },
    summary: reports.reduce((a, r) => ({ passed: a.passed + r.summary.passed, failed: a.failed + r.summary.failed, skipped: a.skipped + r.summary.skipped, parsing_errors: a.parsing_errors + r.summary.parsing_errors }), { passed: 0, failed: 0, skipped: 0, parsing_errors: 0 }),
  };
}

/** Rows of the README table: check id -> the row's text. */
function explainedInReadme(): Map<string, string> {
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('### checkov findings, explained');
  if (start < 0) throw new Error('README has no "### checkov findings, explained" section');
  const section = readme.slice(start, readme.indexOf('\n## ', start));
  const rows = new Map<string, string>();
  for (const line of section.split('\n')) {
    const m = /^\| (CKV2?_AWS_\d+)/.exec(line);
    if (m) rows.set(m[1], line);
  }
  return rows;
}

describe('checkov on the synthesized templates', () => {
  let report: Report;
  let control: Report;

  beforeAll(async () => {
    const dir = makeTempDir('checkov');
    const synth = synthApp();
    try {
      for (const stack of synth.stacks) {
        fs.writeFileSync(path.join(dir, `${stack.stackName}.template.json`), JSON.stringify(synth.cells.get(stack.region)!.template.toJSON(), null, 1));
      }
    } finally {
      synth.cleanup();
    }
    const controlDir = makeTempDir('checkov-control');
    fs.writeFileSync(
      path.join(controlDir, 'insecure.template.json'),
      JSON.stringify({ Resources: { Bucket: { Type: 'AWS::S3::Bucket', Properties: {} }, Queue: { Type: 'AWS::SQS::Queue', Properties: {} } } }),
    );
    [report, control] = await Promise.all([checkov(dir), checkov(controlDir)]);
    const summary = [...new Set(report.results.failed_checks.map((f) => `${f.check_id} ${f.resource}`))].sort();
    console.log(`checkov: ${report.summary.passed} passed, ${report.summary.failed} failed (all explained in README):\n  ${summary.join('\n  ')}`);
  }, 300_000);

  test('checkov evaluates templates (control: an unencrypted bucket and queue fail)', () => {
    expect(control.summary.failed).toBeGreaterThan(0);
    expect(control.results.failed_checks.map((f) => f.check_id)).toEqual(expect.arrayContaining(['CKV_AWS_27']));
  });

  test('both templates parsed and were checked', () => {
    expect(report.summary.parsing_errors).toBe(0);
    expect(new Set([...report.results.failed_checks].map((f) => path.basename(f.file_path))).size).toBe(2);
    expect(report.summary.passed).toBeGreaterThan(100);
  });

  test('every finding is explained in the README, for its resource type', () => {
    const rows = explainedInReadme();
    const unexplained = report.results.failed_checks
      .filter((f) => {
        const row = rows.get(f.check_id);
        return !row || !row.includes(f.resource.split('.')[0]);
      })
      .map((f) => `${f.check_id} ${f.check_name} at ${f.resource}`);
    expect([...new Set(unexplained)]).toEqual([]);
  });

  test('every explanation in the README is still needed', () => {
    const reported = new Set(report.results.failed_checks.map((f) => f.check_id));
    expect([...explainedInReadme().keys()].filter((id) => !reported.has(id))).toEqual([]);
  });
});
