/**
 * The real CLI (aws-cdk 2.1148.1, pinned with aws-cdk-lib 2.276) synthesizes the app from
 * cdk.json offline, with no AWS credentials and nothing that could reach the network.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT, ValidationReport, localBin, makeTempDir, offlineEnv, removeDir } from './support/synth';

const execFileAsync = promisify(execFile);
const STACKS = ['SovereignRouter-eu-central-1', 'SovereignRouter-us-east-1'];

interface Manifest {
  artifacts: Record<string, { type: string; environment?: string; properties?: { templateFile?: string; terminationProtection?: boolean } }>;
}

describe('npx cdk synth (CLI, offline, no credentials)', () => {
  let outdir: string;
  let result: { code: number; stdout: string; stderr: string };

  beforeAll(async () => {
    outdir = makeTempDir('cli-synth');
    const args = ['synth', '--quiet', '--no-notices', '--no-version-reporting', '-o', outdir];
    try {
      const { stdout, stderr } = await execFileAsync(localBin('cdk'), args, {
        cwd: REPO_ROOT,
        env: offlineEnv(),
        timeout: 110_000,
        maxBuffer: 64 * 1024 * 1024,
      });
      result = { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string; killed?: boolean; signal?: string };
      if (e.killed) throw new Error(`cdk synth timed out or was killed (${e.signal})`);
      result = { code: typeof e.code === 'number' ? e.code : -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  }, 120_000);

  afterAll(() => removeDir(outdir));

  test('exits 0 without errors', () => {
    // On failure, show what the CLI said.
    expect({ code: result.code, errors: result.stderr.split('\n').filter((l) => /error/i.test(l)).slice(0, 20) }).toEqual({ code: 0, errors: [] });
    expect(result.stderr).not.toContain('Synthesis finished with errors');
  });

  test('writes one template per regional stack', () => {
    for (const stack of STACKS) {
      const file = path.join(outdir, `${stack}.template.json`);
      expect(fs.existsSync(file)).toBe(true);
      const template = JSON.parse(fs.readFileSync(file, 'utf8')) as { Resources: Record<string, { Type: string }> };
      const types = Object.values(template.Resources).map((r) => r.Type);
      expect(types.filter((t) => t === 'AWS::Lambda::Function')).toHaveLength(4) // router, vault, admin, root-key migration;
      expect(types).toContain('AWS::KMS::Key');
      expect(types).toContain('AWS::ApiGateway::RestApi');
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(outdir, 'manifest.json'), 'utf8')) as Manifest;
    const stacks = Object.entries(manifest.artifacts).filter(([, a]) => a.type === 'aws:cloudformation:stack');
    expect(stacks.map(([id, a]) => [id, a.environment, a.properties?.terminationProtection]).sort()).toEqual([
      ['SovereignRouter-eu-central-1', 'aws://unknown-account/eu-central-1', true],
      ['SovereignRouter-us-east-1', 'aws://unknown-account/us-east-1', true],
    ]);
  });

  test('bundled the three functions of each stack with esbuild', () => {
    const assetDirs = fs.readdirSync(outdir).filter((name) => name.startsWith('asset.'));
    // Same code in both regions: identical bundles share an asset directory.
    expect(assetDirs.length).toBeGreaterThanOrEqual(3);
    for (const dir of assetDirs) expect(fs.existsSync(path.join(outdir, dir, 'index.js'))).toBe(true);
  });

  test('cdk-nag ran in the CLI synth and left no unacknowledged violation', () => {
    const report = JSON.parse(fs.readFileSync(path.join(outdir, 'validation-report.json'), 'utf8')) as ValidationReport;
    const nag = report.pluginReports.find((r) => r.pluginName === 'AwsSolutions');
    expect(nag).toBeDefined();
    expect(nag!.violations.map((v) => `${v.ruleName} ${v.violatingConstructs?.map((c) => c.constructPath).join(', ')}`)).toEqual([]);
    expect(nag!.conclusion).toBe('success');
  });
});
