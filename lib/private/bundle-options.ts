/**
 * esbuild settings of the functions, shared by the package build (scripts/build-bundles.ts), by
 * NodejsFunction when the construct runs from TypeScript sources, and by `npm run bench`, so all
 * three produce the same code. Free of CDK imports. `target` stays node20 so tests on Node 20 run
 * the same code.
 *
 * The AWS SDK v3 is bundled, not left to the runtime: the Node.js 22 runtime's copy is the whole
 * SDK as CommonJS packages, and requiring the three clients from it cost about 80-110 ms of CPU
 * at init (measured by `npm run bench`); bundling only the commands the function uses, from the
 * SDK's ES modules (`mainFields`), tree-shaken into one file, costs about half. It also pins the
 * SDK version the tests ran against.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export const ESBUILD_TARGET = 'node20';
/** Nothing is external: the SDK is bundled (see above). */
export const ESBUILD_EXTERNALS: readonly string[] = [];
/** ES module builds first, so esbuild can drop the SDK commands a function never sends. */
export const ESBUILD_MAIN_FIELDS = ['module', 'main'] as const;
/** The functions' handler files under lambda/handlers. */
export const HANDLERS = ['router', 'vault', 'admin', 'root-key-migration'] as const;
export type HandlerName = (typeof HANDLERS)[number];

/**
 * Module aliases: the SDK's default credential chain is replaced by the environment provider
 * that Lambda needs (lambda/handlers/lambda-credentials.ts). Absolute paths, from the sources or
 * the compiled package.
 */
export function esbuildAliases(): Record<string, string> {
  const ts = path.join(__dirname, '..', '..', 'lambda', 'handlers', 'lambda-credentials.ts');
  return { '@aws-sdk/credential-provider-node': fs.existsSync(ts) ? ts : ts.replace(/\.ts$/, '.js') };
}
