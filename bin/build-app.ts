import * as fs from 'node:fs';
import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { ConfigError, DeploymentConfig, RegionalRouterStack, validateDeploymentConfig } from '../lib';
import { DEFAULT_CONFIG } from './default-config';

/** Reads `-c config=<file.json>` if given, else the default configuration. */
export function loadConfig(app: App): DeploymentConfig {
  const file = app.node.tryGetContext('config');
  if (typeof file !== 'string' || file === '') return DEFAULT_CONFIG;
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError([`cannot read configuration file '${file}'`]);
  }
  try {
    return JSON.parse(raw) as DeploymentConfig;
  } catch {
    throw new ConfigError([`configuration file '${file}' is not valid JSON`]);
  }
}

/** Stamps one regional stack per cell and runs cdk-nag's AwsSolutions pack over the app. */
export function buildApp(app: App, config: DeploymentConfig): RegionalRouterStack[] {
  const valid = validateDeploymentConfig(config);
  const prefix = valid.stackPrefix ?? 'SovereignRouter';
  const stacks = valid.cells.map(
    (cell) =>
      new RegionalRouterStack(app, `${prefix}-${cell.region}`, {
        env: { region: cell.region, account: valid.account ?? process.env.CDK_DEFAULT_ACCOUNT },
        description: `sovereign-router regional cell (${cell.region})`,
        providers: cell.providers,
        residency: cell.residency,
        terminationProtection: true,
      }),
  );
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return stacks;
}
