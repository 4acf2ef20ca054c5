import { isSupportedRegion, REGION_CODES } from '../../lambda/core/regions';
import { ProviderEndpoints, providerEndpointProblems } from './provider-endpoint';
import { ResidencyMode, residencyProblems } from './provider-residency';

/** One regional cell: a region and the provider endpoints its router may call. */
export interface CellConfig {
  /** AWS region of the cell, e.g. `eu-central-1`. Tenants of this cell never leave it. */
  readonly region: string;
  /** Provider endpoints allowed in this region (the router's egress allowlist). */
  readonly providers: ProviderEndpoints;
  /**
   * `strict`: every provider endpoint must process prompts in the cell's zone (EU for EU
   * regions...); synth fails otherwise. `standard`: any listed endpoint.
   * @default 'standard'
   */
  readonly residency?: ResidencyMode;
}

/** What `bin/app.ts` deploys: one stack per cell. */
export interface DeploymentConfig {
  /** Prefix of the stack names. @default 'SovereignRouter' */
  readonly stackPrefix?: string;
  /** Account to deploy to. @default - the CLI's environment (CDK_DEFAULT_ACCOUNT), else environment-agnostic account */
  readonly account?: string;
  /** The cells, at least one, each region at most once. */
  readonly cells: readonly CellConfig[];
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid sovereign-router configuration:\n  - ${problems.join('\n  - ')}`);
    this.name = 'ConfigError';
  }
}

/** Validates a deployment configuration; throws a ConfigError listing every problem found. */
export function validateDeploymentConfig(config: DeploymentConfig): DeploymentConfig {
  const problems: string[] = [];
  if (!config || !Array.isArray(config.cells) || config.cells.length === 0) {
    throw new ConfigError(['cells: at least one cell (region) is required']);
  }
  if (config.stackPrefix !== undefined && !/^[A-Za-z][A-Za-z0-9-]{0,63}$/.test(config.stackPrefix)) {
    problems.push(`stackPrefix '${config.stackPrefix}' must start with a letter and hold only letters, digits and '-'`);
  }
  if (config.account !== undefined && !/^\d{12}$/.test(config.account)) {
    problems.push(`account '${config.account}' must be a 12-digit AWS account id`);
  }
  const seen = new Set<string>();
  config.cells.forEach((cell, i) => {
    const where = `cells[${i}] (${cell?.region ?? 'no region'})`;
    if (!cell || typeof cell.region !== 'string' || !isSupportedRegion(cell.region)) {
      problems.push(
        `${where}: unknown region '${cell?.region}'; supported regions: ${Object.keys(REGION_CODES).join(', ')}`,
      );
    } else if (seen.has(cell.region)) {
      problems.push(`${where}: region '${cell.region}' is listed more than once; a region has exactly one cell`);
    }
    if (cell && typeof cell.region === 'string') seen.add(cell.region);
    problems.push(...providerEndpointProblems(cell?.providers, where));
    if (cell && typeof cell.region === 'string') problems.push(...residencyProblems(cell.region, cell.residency, cell.providers, where));
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
