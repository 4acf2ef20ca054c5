/**
 * Bundles the Lambda handlers into dist/bundles/<handler>/index.js when the package is built, so
 * that a consumer's `cdk synth` uses these files (lambda.Code.fromAsset) and needs neither esbuild
 * nor Docker. Same settings as NodejsFunction in a source checkout (lib/private/bundle-options.ts).
 * Also bundles the CLI with its AWS SDK credential and signing code into dist/cli, so the package
 * depends on nothing but zod at run time (the function bundles carry the SDK commands they use).
 */
import * as path from 'node:path';
import { build } from 'esbuild';
import { ESBUILD_EXTERNALS, ESBUILD_MAIN_FIELDS, ESBUILD_TARGET, esbuildAliases, HANDLERS } from '../lib/private/bundle-options';

const root = path.resolve(__dirname, '..');
const outRoot = path.join(root, 'dist', 'bundles');

async function main(): Promise<void> {
  for (const handler of HANDLERS) {
    const outfile = path.join(outRoot, handler, 'index.js');
    const result = await build({
      entryPoints: [path.join(root, 'lambda', 'handlers', `${handler}.ts`)],
      outfile,
      bundle: true,
      platform: 'node',
      target: ESBUILD_TARGET,
      format: 'cjs',
      minify: true,
      sourcemap: true,
      sourcesContent: false,
      external: [...ESBUILD_EXTERNALS],
      mainFields: [...ESBUILD_MAIN_FIELDS],
      alias: esbuildAliases(),
      metafile: true,
      logLevel: 'warning',
    });
    const bytes = Object.values(result.metafile.outputs).find((o) => o.entryPoint)?.bytes ?? 0;
    console.log(`dist/bundles/${handler}/index.js  ${(bytes / 1024).toFixed(1)} KiB`);
  }
  await build({
    entryPoints: [path.join(root, 'cli', 'main.ts')],
    outfile: path.join(root, 'dist', 'cli', 'sovereign-router.js'),
    bundle: true,
    platform: 'node',
    target: 'node22',
    format: 'cjs',
    minify: true,
    logLevel: 'warning',
  });
  console.log('dist/cli/sovereign-router.js');
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
