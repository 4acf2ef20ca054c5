/**
 * The functions' bundles, built for real by NodejsFunction with the local esbuild (no Docker):
 * each exists where the assets manifest says, stays under its budgets (deployed file, and the
 * project's own code) and carries only the AWS SDK commands it sends, tree-shaken.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as cxapi from 'aws-cdk-lib/cx-api';
import { buildSync } from 'esbuild';
import { ESBUILD_TARGET } from '../../lib/private/bundle-options';
import budgets from './bundle-budgets.json';
import { SynthesizedApp, logicalIdOf, synthBundledApp } from './support/synth';

const STACK = 'SovereignRouter-eu-central-1';
const FUNCTIONS = ['router', 'vault', 'admin', 'root-key-migration'] as const;
type FunctionName = (typeof FUNCTIONS)[number];

interface FileAsset {
  displayName?: string;
  source: { path: string; packaging?: string };
  destinations: Record<string, { objectKey: string }>;
}

interface Bundle {
  name: FunctionName;
  assetDir: string;
  indexJs: string;
  bytes: number;
}

describe(`bundled functions of ${STACK}`, () => {
  let synth: SynthesizedApp;
  const bundles = new Map<FunctionName, Bundle>();

  beforeAll(() => {
    synth = synthBundledApp({ stacks: [STACK] });
    const stack = synth.stacks.find((s) => s.stackName === STACK)!;
    const artifact = synth.assembly.getStackArtifact(stack.artifactId);

    // The stack's asset manifest: asset hash -> source directory in the cloud assembly.
    const manifests = artifact.dependencies.filter((d): d is cxapi.AssetManifestArtifact => d instanceof cxapi.AssetManifestArtifact);
    expect(manifests).toHaveLength(1);
    const files = (JSON.parse(fs.readFileSync(manifests[0].file, 'utf8')) as { files: Record<string, FileAsset> }).files;

    const fns = { router: stack.router.routerFunction, vault: stack.router.vaultFunction, admin: stack.router.adminFunction, 'root-key-migration': stack.router.rootKeyMigrationFunction };
    for (const name of FUNCTIONS) {
      // The function's Code.S3Key in the template is the object key of its asset.
      const resource = artifact.template.Resources[logicalIdOf(fns[name])];
      const objectKey = resource.Properties.Code.S3Key as string;
      const matches = Object.values(files).filter((asset) => Object.values(asset.destinations).some((d) => d.objectKey === objectKey));
      if (matches.length !== 1) throw new Error(`${name}: ${matches.length} assets publish ${objectKey}`);
      const assetDir = path.resolve(artifact.assembly.directory, matches[0].source.path);
      const indexJs = path.join(assetDir, 'index.js');
      bundles.set(name, { name, assetDir, indexJs, bytes: fs.existsSync(indexJs) ? fs.statSync(indexJs).size : -1 });
    }
    const report = FUNCTIONS.map((n) => {
      const b = bundles.get(n)!;
      return `  ${n.padEnd(18)} ${(b.bytes / 1024).toFixed(1).padStart(8)} KiB  (deployed budget ${budgets.deployedBudgetsKiB[n]} KiB)  ${path.basename(b.assetDir)}`;
    });
    console.log(`Bundle sizes (index.js):\n${report.join('\n')}`);
  }, 120_000);

  afterAll(() => synth?.cleanup());

  test('budgets exist for every function', () => {
    expect(Object.keys(budgets.budgetsKiB).sort()).toEqual([...FUNCTIONS].sort());
  });

  test('only the requested stack was bundled; its four functions have distinct bundles', () => {
    expect(new Set([...bundles.values()].map((b) => b.assetDir)).size).toBe(4);
    // The other region's functions point at the dummy (unbundled) asset: bundling really was selective.
    const other = synth.stacks.find((s) => s.stackName !== STACK)!;
    const otherKey = synth.assembly.getStackArtifact(other.artifactId).template.Resources[logicalIdOf(other.router.routerFunction)].Properties.Code.S3Key;
    const thisKey = synth.assembly.getStackArtifact(synth.stacks.find((s) => s.stackName === STACK)!.artifactId).template.Resources[
      logicalIdOf(synth.stacks.find((s) => s.stackName === STACK)!.router.routerFunction)
    ].Properties.Code.S3Key;
    expect(otherKey).not.toEqual(thisKey);
  });

  describe.each(FUNCTIONS)('%s', (name) => {
    test('index.js exists and exports the handler', () => {
      const b = bundles.get(name)!;
      expect({ indexJs: b.indexJs, exists: fs.existsSync(b.indexJs) }).toEqual({ indexJs: b.indexJs, exists: true });
      expect(b.bytes).toBeGreaterThan(0);
      const code = fs.readFileSync(b.indexJs, 'utf8');
      expect(code).toMatch(/\bhandler\b/);
      // A CommonJS bundle for the Node.js runtime.
      expect(code).toMatch(/module\.exports/);
    });

    test('the deployed file is under its deployed budget', () => {
      const b = bundles.get(name)!;
      const budget = budgets.deployedBudgetsKiB[name] * 1024;
      expect({ name, bytes: b.bytes, withinBudget: b.bytes > 0 && b.bytes <= budget }).toEqual({ name, bytes: b.bytes, withinBudget: true });
    });

    test("the project's own code (AWS SDK and smithy left out) is under its budget", () => {
      const own = buildSync({
        entryPoints: [path.join(__dirname, '..', '..', 'lambda', 'handlers', `${name}.ts`)],
        bundle: true,
        minify: true,
        platform: 'node',
        target: ESBUILD_TARGET,
        format: 'cjs',
        // The AWS SDK, smithy included (the router's lean client uses smithy's signer and transport).
        external: ['@aws-sdk/*', '@smithy/*'],
        write: false,
        outfile: `${name}.js`,
        logLevel: 'error',
      });
      const bytes = own.outputFiles.find((f) => f.path.endsWith('.js'))!.contents.length;
      expect({ name, bytes, withinBudget: bytes <= budgets.budgetsKiB[name] * 1024 }).toEqual({ name, bytes, withinBudget: true });
    });

    test('bundles the SDK code it uses, tree-shaken, with the environment credential provider only', () => {
      const b = bundles.get(name)!;
      const mapFile = `${b.indexJs}.map`;
      expect(fs.existsSync(mapFile)).toBe(true);
      const sources = (JSON.parse(fs.readFileSync(mapFile, 'utf8')) as { sources: string[] }).sources;
      const sdk = sources.filter((s) => /node_modules\/(@aws-sdk|@smithy|@aws-crypto)\//.test(s));
      // ES module builds (tree-shakeable), not the CommonJS packages the runtime would load whole.
      expect(sdk.filter((s) => /\/dist-es\//.test(s)).length).toBeGreaterThan(0);
      expect(sdk.filter((s) => /@aws-sdk\/client-[a-z-]+\/dist-cjs\//.test(s))).toEqual([]);
      // Lambda gives the role's credentials in the environment: no SSO, ini, STS or metadata code.
      expect(sdk.filter((s) => /credential-provider-(node|sso|ini|web-identity|process|http|login)|nested-clients|credential-provider-imds/.test(s))).toEqual([]);
      // (The router takes fromEnv directly: it builds no SDK client, so it never asks for the default chain.)
      expect(sources.some((s) => s.endsWith('lambda/handlers/lambda-credentials.ts'))).toBe(name !== 'router');
      // Only commands of the adapters the function composes: the router carries no audit or S3 code.
      const commands = new Set(sdk.map((s) => /\/commands\/([A-Za-z]+Command)\.js$/.exec(s)?.[1]).filter((c): c is string => !!c));
      if (name === 'router') {
        // The router calls DynamoDB, KMS and Secrets Manager through the lean JSON-protocol client
        // (SigV4 signer and transport from smithy): no SDK client, command or the rpc seam's SDK path.
        expect(commands).toEqual(new Set());
        expect(sdk.filter((s) => /@aws-sdk\/(client-[a-z-]+|lib-dynamodb|util-dynamodb)\//.test(s))).toEqual([]);
        expect(sources.filter((s) => s.endsWith('lambda/adapters/aws-sdk-rpc.ts'))).toEqual([]);
        expect(sources.some((s) => s.endsWith('lambda/adapters/aws-json-client.ts'))).toBe(true);
        expect(sdk.some((s) => /@smithy\/signature-v4\//.test(s)) && sdk.some((s) => /@smithy\/node-http-handler\//.test(s))).toBe(true);
      } else {
        for (const c of ['PutObjectCommand', 'GenerateMacCommand']) expect(commands).toContain(c);
      }
      expect(commands.size).toBeLessThan(30);
    });
  });
});
