import { localAudit } from '../local-audit';
/**
 * `--backend moto`: the AWS adapters (DynamoDB, KMS, Secrets Manager) against moto, as the
 * deployed functions use them. Needs python3 (scripts/setup-python.sh). Tables are dumped to the
 * state directory after every vault/admin change; moto itself keeps nothing.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoGovernance } from '../../lambda/adapters/dynamo-governance';
import { DynamoRouterStore } from '../../lambda/adapters/dynamo-router-store';
import { DynamoTenantStore } from '../../lambda/adapters/dynamo-tenant-store';
import { DynamoUsageRecords } from '../../lambda/adapters/dynamo-usage-records';
import { KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
import { SecretsManagerPepperSource } from '../../lambda/adapters/secrets-manager-pepper';
import { DynamoResponseCache } from '../../lambda/adapters/dynamo-response-cache';
import { cellConfigFromEnv } from '../../lambda/core/cell-config';
import { startMoto } from '../moto-server';
import { provisionCell } from '../provision-cell';
import { StateStore } from '../state-store';
import type { BackendOptions, GatewayBackend } from './backend';

const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

export async function startMotoBackend(opts: BackendOptions): Promise<GatewayBackend> {
  const state = opts.stateDir ? new StateStore(opts.stateDir) : undefined;
  const persisted = state?.loadOrCreate(opts.region);
  const moto = await startMoto({ kmsSeedHex: persisted?.cell.kmsSeedHex });
  try {
    const clientConfig = { endpoint: moto.endpoint, region: opts.region, credentials, maxAttempts: 2 };
    const ddb = new DynamoDBClient(clientConfig);
    const kms = new KMSClient(clientConfig);
    const secrets = new SecretsManagerClient(clientConfig);
    const cell = await provisionCell(
      { ddb, kms, secrets },
      {
        region: opts.region,
        providers: { ...opts.providers },
        prefix: persisted?.cell.tablePrefix ?? `sr-local-${opts.region}`,
        pepper: persisted?.cell.pepper,
        maxRequestBytes: opts.maxRequestBytes,
        requestDeadlineMs: opts.requestDeadlineMs,
      },
    );
    let restoredItems = 0;
    if (state && persisted) {
      if (persisted.existing && persisted.cell.rootKeyArn !== cell.rootKeyArn) {
        throw new Error(`the emulated root key changed (${persisted.cell.rootKeyArn} → ${cell.rootKeyArn}); state in ${state.dir} cannot be opened`);
      }
      restoredItems = await state.restoreTables(ddb, cell.tables);
      state.saveCell({ ...persisted.cell, rootKeyArn: cell.rootKeyArn, pepper: cell.pepper });
    }
    const config = cellConfigFromEnv(cell.env);
    // One process holds the only cache, and a rotation through it clears it: no settling time.
    const pepper = new SecretsManagerPepperSource(secrets, config.pepperSecretId, { settleMs: 0 });
    // Changes are saved before the response goes out, so an acknowledged secret survives a crash.
    let saving = Promise.resolve();
    const dump = () => (state ? state.dumpTables(ddb, cell.tables) : Promise.resolve());
    return {
      kind: 'moto',
      config,
      store: new DynamoTenantStore(ddb, config.tables, opts.auditTrail ?? localAudit(opts.stateDir, opts.log).trail),
      routerStore: new DynamoRouterStore(ddb, config.tables),
      usageRecords: new DynamoUsageRecords(ddb, config.tables.usage),
      pepper,
      // The state directory keeps only the first pepper, so a persisted moto cell does not rotate.
      ...(opts.stateDir ? {} : { pepperRotator: pepper }),
      dataKeys: new KmsDataKeyService(kms, config.rootKeyArn),
      governance: new DynamoGovernance(ddb, { table: config.tables.counters, usageRecordsTable: config.tables.usage, prices: config.prices, log: opts.log }),
      responseCache: new DynamoResponseCache(ddb, cell.tables.cache),
      restoredItems,
      awsEndpoint: moto.endpoint,
      persist: () => (saving = saving.then(dump)),
      async stop() {
        await saving.catch(() => undefined);
        await dump().catch(() => undefined);
        await moto.stop();
      },
    };
  } catch (err) {
    await moto.stop();
    throw err;
  }
}
