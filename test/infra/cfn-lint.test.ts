/**
 * cfn-lint (PyPI, in the project's .venv) on the synthesized templates. Errors fail the test;
 * warnings and informational findings are printed. The venv is a prerequisite: never skipped.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, makeTempDir, offlineEnv, removeDir, synthApp } from './support/synth';

const execFileAsync = promisify(execFile);
const CFN_LINT = path.join(REPO_ROOT, '.venv', 'bin', 'cfn-lint');

/** cfn-lint exit status is a bit mask: 2 errors, 4 warnings, 8 informational; 1 means it failed to run. */
const EXIT_ERROR = 2;
const EXIT_WARNING = 4;
const EXIT_INFO = 8;

interface Finding {
  Rule: { Id: string; Description: string };
  Level: 'Error' | 'Warning' | 'Informational';
  Message: string;
  Filename: string;
  Location: { Start: { LineNumber: number } };
}

interface LintRun {
  file: string;
  code: number;
  findings: Finding[];
  stderr: string;
}

function requireCfnLint(): void {
  if (!fs.existsSync(CFN_LINT)) {
    throw new Error(
      `cfn-lint not found at ${CFN_LINT}. Create the project venv: ` +
        `python3 -m venv .venv && .venv/bin/pip install cfn-lint 'moto[server]'`,
    );
  }
}

async function lint(file: string, region: string): Promise<LintRun> {
  let code = 0;
  let stdout = '';
  let stderr = '';
  try {
    ({ stdout, stderr } = await execFileAsync(CFN_LINT, ['--format', 'json', '--regions', region, '--', file], {
      env: offlineEnv(),
      timeout: 110_000,
      maxBuffer: 64 * 1024 * 1024,
    }));
  } catch (err) {
    const e = err as { code?: number | string; stdout?: string; stderr?: string; killed?: boolean };
    if (e.killed || typeof e.code !== 'number') throw new Error(`cfn-lint did not run on ${file}: ${String(err)}`);
    ({ code, stdout = '', stderr = '' } = e as { code: number; stdout?: string; stderr?: string });
  }
  if (code & 1) throw new Error(`cfn-lint failed to run on ${file} (exit ${code}): ${stderr || stdout}`);
  let findings: Finding[];
  try {
    findings = stdout.trim() === '' ? [] : (JSON.parse(stdout) as Finding[]);
  } catch {
    throw new Error(`cfn-lint output on ${file} is not JSON (exit ${code}): ${stdout.slice(0, 2000)} ${stderr}`);
  }
  return { file, code, findings, stderr };
}

function describeFinding(f: Finding): string {
  return `${f.Level} ${f.Rule.Id} ${path.basename(f.Filename)}:${f.Location.Start.LineNumber} ${f.Message}`;
}

describe('cfn-lint on the synthesized templates', () => {
  let dir: string;
  let runs: LintRun[];
  let control: LintRun;

  beforeAll(async () => {
    requireCfnLint();
    dir = makeTempDir('cfn-lint');
    const synth = synthApp();
    const jobs: Promise<LintRun>[] = [];
    try {
      for (const stack of synth.stacks) {
        const file = path.join(dir, `${stack.stackName}.template.json`);
        fs.writeFileSync(file, JSON.stringify(synth.cells.get(stack.region)!.template.toJSON(), null, 1));
        jobs.push(lint(file, stack.region));
      }
    } finally {
      synth.cleanup();
    }
    // Negative control: a template with a definite error, linted the same way.
    const broken = path.join(dir, 'broken.template.json');
    fs.writeFileSync(
      broken,
      JSON.stringify({
        Resources: {
          Fn: { Type: 'AWS::Lambda::Function', Properties: { Runtime: 'nodejs99.x', Handler: 'index.handler', Code: { ZipFile: 'x' } } },
        },
      }),
    );
    [control, ...runs] = await Promise.all([lint(broken, 'eu-central-1'), ...jobs]);
  }, 120_000);

  afterAll(() => removeDir(dir));

  test('the linter reports errors on a broken template (control)', () => {
    expect(control.code & EXIT_ERROR).toBe(EXIT_ERROR);
    expect(control.findings.filter((f) => f.Level === 'Error').length).toBeGreaterThan(0);
  });

  test('linted both regional templates', () => {
    expect(runs.map((r) => path.basename(r.file)).sort()).toEqual([
      'SovereignRouter-eu-central-1.template.json',
      'SovereignRouter-us-east-1.template.json',
    ]);
  });

  test('no errors (warnings and informational findings are allowed and printed)', () => {
    const notices = runs.flatMap((r) => r.findings.filter((f) => f.Level !== 'Error'));
    if (notices.length > 0) {
      console.log(`cfn-lint warnings/informational (${notices.length}):\n  ${notices.map(describeFinding).join('\n  ')}`);
    }
    for (const run of runs) {
      const errors = run.findings.filter((f) => f.Level === 'Error').map(describeFinding);
      expect({ file: path.basename(run.file), errors, errorBit: run.code & EXIT_ERROR }).toEqual({
        file: path.basename(run.file),
        errors: [],
        errorBit: 0,
      });
      // Every bit set is accounted for by the findings that were printed.
      expect(run.code & ~(EXIT_WARNING | EXIT_INFO)).toBe(0);
    }
  });
});
