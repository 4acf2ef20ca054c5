/**
 * esbuild settings of the functions, shared by the package build (scripts/build-bundles.ts) and
 * by NodejsFunction when the construct runs from TypeScript sources, so both produce the same
 * code. Free of CDK imports. `target` stays node20 so tests on Node 20 run the same code.
 */
export const ESBUILD_TARGET = 'node20';
/** The Node.js 22 runtime ships AWS SDK v3; leaving it out keeps bundles small and init fast. */
export const ESBUILD_EXTERNALS = ['@aws-sdk/*'];
/** The functions' handler files under lambda/handlers. */
export const HANDLERS = ['router', 'vault', 'admin'] as const;
export type HandlerName = (typeof HANDLERS)[number];
