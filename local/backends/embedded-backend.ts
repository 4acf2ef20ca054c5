import { localAudit } from '../local-audit';
/**
 * The default local backend: one SQLite database (node-sqlite3-wasm), the emulated root key and
 * the pepper, all in the state directory (0700, files 0600). Needs nothing but Node.js.
 */
import { cellConfigFromEnv } from '../../lambda/core/cell-config';
import { errorFields } from '../../lambda/core/logger';
import { TABLE_SCHEMAS, TableName } from '../../lib/table-schemas';
import { EmbeddedDatabase } from '../embedded/database';
import { EmbeddedGovernance } from '../embedded/embedded-governance-ledger';
import { EmbeddedResponseCache } from '../embedded/embedded-response-cache';
import { EmbeddedRouterStore } from '../embedded/embedded-router-store';
import { EmbeddedTenantStore } from '../embedded/embedded-tenant-store';
import { EmbeddedUsageRecords } from '../embedded/embedded-usage-records';
import { startExpirySweeper } from '../embedded/expiry';
import { LocalPepper } from '../embedded/local-pepper';
import { LocalRootKey } from '../embedded/local-root-key';
import { BackendOptions, GatewayBackend, localCellEnv } from './backend';

export async function startEmbeddedBackend(opts: BackendOptions): Promise<GatewayBackend> {
  const db = new EmbeddedDatabase({
    dir: opts.stateDir,
    synchronous: opts.syncFull ? 'FULL' : 'NORMAL',
    soleRequest: opts.soleRequest,
    onCommitError: (err) => opts.log.error('embedded store: a group commit failed and was rolled back (a settle or usage record in it is written again)', errorFields(err)),
    onBackgroundError: (err) => opts.log.error('embedded store: a checkpoint or WAL flush failed; commits stay in the WAL', errorFields(err)),
  });
  try {
    const rootKey = LocalRootKey.open(opts.region, opts.stateDir);
    const pepper = LocalPepper.open(opts.stateDir);
    checkRegion(db, opts.region, opts.stateDir);
    const tables = Object.fromEntries((Object.keys(TABLE_SCHEMAS) as TableName[]).map((t) => [t, `embedded:${t}`]));
    const config = cellConfigFromEnv(
      localCellEnv({ ...opts, rootKeyArn: rootKey.keyArn, pepperSecretArn: 'local:pepper', tables }),
    );
    const restoredItems = Number(db.one('SELECT (SELECT count(*) FROM tenants) + (SELECT count(*) FROM tokens) + (SELECT count(*) FROM secrets) AS n')?.n ?? 0);
    const sweeper = startExpirySweeper(db, opts.log);
    return {
      kind: 'embedded',
      config,
      store: new EmbeddedTenantStore(db, opts.auditTrail ?? localAudit(opts.stateDir, opts.log).trail),
      routerStore: new EmbeddedRouterStore(db),
      usageRecords: new EmbeddedUsageRecords(db),
      pepper,
      pepperRotator: pepper,
      dataKeys: rootKey,
      governance: new EmbeddedGovernance(db, { prices: config.prices, log: opts.log }),
      responseCache: new EmbeddedResponseCache(db),
      restoredItems,
      // Vault and admin writes commit before they return; this also waits for a pending group commit.
      persist: () => db.durable(),
      async stop() {
        sweeper.stop();
        db.close();
      },
    };
  } catch (err) {
    db.close();
    throw err;
  }
}

/** A state directory holds one region's cell: tokens and sealed secrets name it. */
function checkRegion(db: EmbeddedDatabase, region: string, dir: string | undefined): void {
  const stored = db.one("SELECT value FROM meta WHERE name = 'region'")?.value;
  if (stored === undefined) {
    db.run("INSERT INTO meta(name, value) VALUES ('region', ?)", [region]);
  } else if (stored !== region) {
    throw new Error(`${dir ?? 'the state directory'} holds a ${String(stored)} cell; start with --region ${String(stored)} or use another --state-dir`);
  }
}
