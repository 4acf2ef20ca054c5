/**
 * The published package, as a CDK user gets it: `npm pack` (which builds: tsc + prebuilt Lambda
 * bundles), the tarball installed offline into a fresh CDK app in a temporary folder, and a
 * stack composing the cell synthesized there with no esbuild and no Docker. aws-cdk-lib and
 * constructs (peer dependencies) are linked from the repository's node_modules. The package's one
 * run-time dependency (zod) comes from the npm cache that `npm ci` filled: `npm ci --offline`
 * with a consumer lock file that pins the tarball and zod exactly as the repository's lock does
 * (npm ci caches tarballs, not registry metadata, so a range could not be resolved offline).
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import budgets from './bundle-budgets.json';
import { REPO_ROOT, makeTempDir, offlineEnv } from './support/synth';

const NPM = 'npm';
const ALLOWED = [/^package\.json$/, /^README\.md$/, /^LICENSE$/, /^docs\//, /^cli\/sovereign-router\.cjs$/, /^dist\/(lib|lambda|cli)\/.+\.(js|d\.ts)$/, /^dist\/bundles\/(router|vault|admin|root-key-migration)\/index\.js(\.map)?$/];

interface PackResult {
  filename: string;
  files: { path: string }[];
}

/** package.json and package-lock.json of a consumer app depending on the tarball. */
function writeConsumerManifests(dir: string, tgz: string): void {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as Record<string, Record<string, string>>;
  const repoLock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, Record<string, unknown>> };
  const spec = `file:${tgz}`;
  const integrity = `sha512-${createHash('sha512').update(fs.readFileSync(tgz)).digest('base64')}`;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer-app', version: '1.0.0', dependencies: { 'sovereign-router': spec } },
    'node_modules/sovereign-router': {
      version: '0.1.0',
      resolved: spec,
      integrity,
      license: 'Apache-2.0',
      dependencies: pkg.dependencies,
      peerDependencies: pkg.peerDependencies,
      bin: pkg.bin,
      engines: pkg.engines,
    },
  };
  for (const dep of Object.keys(pkg.dependencies)) {
    const entry = repoLock.packages[`node_modules/${dep}`];
    if (!entry) throw new Error(`${dep} is not in the repository lock file`);
    if (entry.dependencies) throw new Error(`${dep} has dependencies of its own; extend the consumer lock file`);
    packages[`node_modules/${dep}`] = { ...entry, dev: undefined };
  }
  fs.writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer-app', version: '1.0.0', private: true, dependencies: { 'sovereign-router': spec } }));
  fs.writeFileSync(path.join(dir, 'package-lock.json'), JSON.stringify({ name: 'consumer-app', version: '1.0.0', lockfileVersion: 3, requires: true, packages }, null, 2));
}

const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Environment without any node_modules/.bin on PATH: only node itself and the system tools. */
function consumerEnv(): NodeJS.ProcessEnv {
  return offlineEnv({ PATH: `${path.dirname(process.execPath)}:/usr/bin:/bin`, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' });
}

describe('the npm package', () => {
  let pack: PackResult;
  let tarball: string;
  let consumer: string;
  let manifest: { artifacts: Record<string, { type: string; metadata?: Record<string, { type: string; data: unknown }[]> }> };
  let template: { Resources: Record<string, { Type: string; Properties: Record<string, unknown>; Metadata?: Record<string, string> }> };

  beforeAll(() => {
    const out = makeTempDir('pack');
    // `npm pack` runs `prepack` (npm run build) first, as `npm publish` does.
    const json = execFileSync(NPM, ['pack', '--json', '--pack-destination', out], { cwd: REPO_ROOT, env: consumerEnv(), encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
    pack = (JSON.parse(json.slice(json.indexOf('['))) as PackResult[])[0];
    tarball = path.join(out, pack.filename);

    consumer = makeTempDir('consumer-app');
    writeConsumerManifests(consumer, tarball);
    execFileSync(NPM, ['ci', '--offline', '--legacy-peer-deps', '--ignore-scripts'], { cwd: consumer, env: consumerEnv(), stdio: 'pipe' });
    for (const peer of ['aws-cdk-lib', 'constructs']) {
      fs.symlinkSync(path.join(REPO_ROOT, 'node_modules', peer), path.join(consumer, 'node_modules', peer), 'dir');
    }
    fs.writeFileSync(
      path.join(consumer, 'app.js'),
      `const { App, Stack } = require('aws-cdk-lib');
const iam = require('aws-cdk-lib/aws-iam');
const { RegionalRouter } = require('sovereign-router');
const app = new App({ outdir: 'cdk.out' });
const stack = new Stack(app, 'Consumer', { env: { region: 'eu-central-1', account: '111122223333' } });
const cell = new RegionalRouter(stack, 'Gateway', {
  residency: 'strict',
  adminPrincipals: [new iam.ArnPrincipal('arn:aws:iam::111122223333:role/platform-admin')],
  providers: { openai: { kind: 'openai', baseUrl: 'https://eu.api.openai.com' }, mistral: { kind: 'mistral', baseUrl: 'https://api.mistral.ai' } },
});
cell.grantInvokeAdminApi(new iam.Role(stack, 'Ops', { assumedBy: new iam.AccountRootPrincipal() }));
app.synth();
`,
    );
    execFileSync(process.execPath, ['app.js'], { cwd: consumer, env: consumerEnv(), stdio: 'pipe' });
    manifest = JSON.parse(fs.readFileSync(path.join(consumer, 'cdk.out', 'manifest.json'), 'utf8'));
    template = JSON.parse(fs.readFileSync(path.join(consumer, 'cdk.out', 'Consumer.template.json'), 'utf8'));
  }, 600_000);

  test('ships only what a consumer needs: compiled code, prebuilt bundles, README, LICENSE, docs', () => {
    const files = pack.files.map((f) => f.path);
    expect(files.filter((f) => !ALLOWED.some((re) => re.test(f)))).toEqual([]);
    expect(files).toEqual(expect.arrayContaining(['LICENSE', 'README.md', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/bundles/router/index.js', 'dist/bundles/vault/index.js', 'dist/bundles/admin/index.js']));
    expect(files.some((f) => /^(test|bench|local|\.ci|scripts|examples)\//.test(f) || f.endsWith('.ts') && !f.endsWith('.d.ts'))).toBe(false);
    expect(fs.readFileSync(path.join(REPO_ROOT, 'LICENSE'), 'utf8')).toMatch(/Apache License\s+Version 2\.0/);
    console.log(`npm pack: ${files.length} files, ${(fs.statSync(tarball).size / 1024).toFixed(0)} KiB tarball`);
    // The prebuilt bundles keep the same budgets as the bundles NodejsFunction builds from source.
    for (const [fn, kib] of Object.entries(budgets.deployedBudgetsKiB)) {
      const bytes = fs.statSync(path.join(REPO_ROOT, 'dist', 'bundles', fn, 'index.js')).size;
      expect({ fn, withinBudget: bytes <= kib * 1024 }).toEqual({ fn, withinBudget: true });
    }
  });

  test('declares Node.js 22 for consumers, keeps the repository usable on Node 20 (devEngines), and depends only on zod', () => {
    const pkg = JSON.parse(fs.readFileSync(path.join(consumer, 'node_modules', 'sovereign-router', 'package.json'), 'utf8'));
    expect(pkg.engines).toEqual({ node: '>=22' });
    expect(pkg.devEngines.runtime).toEqual({ name: 'node', version: '>=20', onFail: 'warn' });
    expect(pkg.peerDependencies).toEqual({ 'aws-cdk-lib': expect.any(String), constructs: expect.any(String) });
    expect(Object.keys(pkg.dependencies)).toEqual(['zod']);
  });

  test('the installed CLI runs from its bundle (no AWS SDK installed in the consumer)', () => {
    expect(fs.existsSync(path.join(consumer, 'node_modules', '@aws-sdk'))).toBe(false);
    const help = execFileSync(path.join(consumer, 'node_modules', '.bin', 'sovereign-router'), ['--help'], { cwd: consumer, env: consumerEnv(), encoding: 'utf8' });
    expect(help).toMatch(/^Usage: sovereign-router <command>/);
  });

  test('the consumer app has no esbuild and no Docker to fall back on', () => {
    expect(() => require.resolve('esbuild', { paths: [consumer] })).toThrow();
    expect(fs.existsSync(path.join(consumer, 'node_modules', 'esbuild'))).toBe(false);
    expect(() => execFileSync('sh', ['-c', 'command -v docker'], { env: consumerEnv() })).toThrow();
  });

  test('synth used the prebuilt bundles: each function asset is byte-identical to dist/bundles/<fn>/index.js', () => {
    const fns = Object.entries(template.Resources).filter(([, r]) => r.Type === 'AWS::Lambda::Function');
    expect(fns).toHaveLength(4);
    const installed = path.join(consumer, 'node_modules', 'sovereign-router', 'dist', 'bundles');
    const bundleHashes = new Set(['router', 'vault', 'admin', 'root-key-migration'].map((h) => sha(path.join(installed, h, 'index.js'))));
    const assets = (JSON.parse(fs.readFileSync(path.join(consumer, 'cdk.out', 'Consumer.assets.json'), 'utf8')) as {
      files: Record<string, { source: { path: string }; destinations: Record<string, { objectKey: string }> }>;
    }).files;
    const assetHashes = new Set<string>();
    for (const [, fn] of fns) {
      expect(fn.Properties).toMatchObject({ Runtime: 'nodejs22.x', Handler: 'index.handler', Architectures: ['arm64'] });
      const key = (fn.Properties.Code as { S3Key: string }).S3Key;
      const asset = Object.values(assets).find((a) => Object.values(a.destinations).some((d) => d.objectKey === key))!;
      assetHashes.add(sha(path.join(consumer, 'cdk.out', asset.source.path, 'index.js')));
    }
    expect(assetHashes).toEqual(bundleHashes);
  });

  test('the composed cell is complete: keys, tables, API with resource policy, guards, no synth error', () => {
    const count = (type: string) => Object.values(template.Resources).filter((r) => r.Type === type).length;
    // Root, storage, audit HMAC and the alarm topic's key.
    expect(count('AWS::KMS::Key')).toBe(4);
    expect(count('AWS::DynamoDB::Table')).toBeGreaterThanOrEqual(5);
    // The audit anchors: write-once, Object Lock in compliance mode.
    const buckets = Object.values(template.Resources).filter((r) => r.Type === 'AWS::S3::Bucket');
    const lockMode = (b: { Properties: Record<string, any> }) => b.Properties.ObjectLockConfiguration?.Rule?.DefaultRetention?.Mode as unknown;
    expect(buckets.map(lockMode)).toEqual(['COMPLIANCE']);
    // Account guards, two of them for the erasure-key table (copies and its resource policy).
    expect(count('AWS::Events::Rule')).toBe(6);
    expect(JSON.stringify(template.Resources)).toContain('NoCopyTable');
    expect(count('AWS::WAFv2::WebACL')).toBe(1);
    const api = Object.values(template.Resources).find((r) => r.Type === 'AWS::ApiGateway::RestApi')!;
    expect(JSON.stringify(api.Properties.Policy)).toContain('aws:PrincipalArn');
    const messages = Object.values(manifest.artifacts).flatMap((a) => Object.values(a.metadata ?? {}).flat());
    expect(messages.filter((m) => m.type === 'aws:cdk:error')).toEqual([]);
  });
});
