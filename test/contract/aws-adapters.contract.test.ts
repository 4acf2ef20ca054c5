/**
 * Every port's contract suite against the AWS adapters (DynamoDB, KMS, Secrets Manager) on moto.
 * The same suites run against the embedded adapters in embedded-adapters.contract.test.ts. The
 * router's adapters run twice: over SDK clients (as the vault, admin and local backend give them)
 * and over the lean JSON-protocol client (as the deployed router gives them).
 */
import { DeleteCommand, PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import { DynamoGovernanceLedger } from '../../lambda/adapters/dynamo-governance';
import { DynamoResponseCache } from '../../lambda/adapters/dynamo-response-cache';
import { DynamoRouterStore } from '../../lambda/adapters/dynamo-router-store';
import { KmsDataKeyService } from '../../lambda/adapters/kms-data-key-service';
import { SecretsManagerPepperSource } from '../../lambda/adapters/secrets-manager-pepper';
import { leanClients } from '../../lambda/handlers/aws-clients';
import { testCredentials } from '../support/aws-clients';
import type { UsageRecord } from '../../lambda/core/router/usage-record';
import { cellFixture, CellFixture } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import type { ContractBackend } from './backend';
import { dataKeysContract } from './data-keys.contract';
import { governanceLedgerContract } from './governance-ledger.contract';
import { pepperContract } from './pepper.contract';
import { responseCacheContract } from './response-cache.contract';
import { routerStoreContract } from './router-store.contract';
import { tenantStoreContract } from './tenant-store.contract';
import { factorChangeContract } from './factor-change.contract';

const REGION = 'eu-central-1';
let moto: MotoServer;
let backend: ContractBackend;
let leanBackend: ContractBackend;

beforeAll(async () => {
  moto = await startMoto();
  const f: CellFixture = await cellFixture(moto.endpoint, REGION);
  const { doc, ddb } = f.clients;
  const t = f.config.tables;
  backend = {
    name: 'AWS adapters on moto',
    region: REGION,
    store: f.store,
    audit: f.audit,
    routerStore: new DynamoRouterStore(ddb, t),
    ledger: new DynamoGovernanceLedger(ddb, { table: t.counters, usageRecordsTable: t.usage }),
    dataKeys: f.dataKeys,
    keyArn: f.config.rootKeyArn,
    pepper: f.pepper,
    responseCache: new DynamoResponseCache(ddb, t.cache!),
    raw: {
      async putSecretRow(tenantId, provider, name, fields) {
        await doc.send(new PutCommand({ TableName: t.tenants, Item: { ...fields, pk: `TENANT#${tenantId}`, sk: `SECRET#${provider}#${name}` } }));
      },
      async deleteSecretRow(tenantId, provider, name) {
        await doc.send(new DeleteCommand({ TableName: t.tenants, Key: { pk: `TENANT#${tenantId}`, sk: `SECRET#${provider}#${name}` } }));
      },
      async putCounterRow(pk, sk, fields) {
        await doc.send(new PutCommand({ TableName: t.counters, Item: { ...fields, pk, sk } }));
      },
      async putReservationRow(pk, sk, fields) {
        await doc.send(new PutCommand({ TableName: t.counters, Item: { ...fields, pk, sk } }));
      },
      async putErasureKeyItem(tenantId, fields) {
        await doc.send(new PutCommand({ TableName: t.erasure, Item: { ...fields, tenantId } }));
      },
      async usageRecords(tenantId) {
        const out = await doc.send(
          new QueryCommand({ TableName: t.usage, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': `REQ#${tenantId}` }, ConsistentRead: true }),
        );
        return (out.Items ?? []).map(({ pk: _pk, sk: _sk, expiresAt: _e, ...r }) => r as UsageRecord);
      },
      async reservations(tenantId) {
        const out = await doc.send(
          new QueryCommand({ TableName: t.counters, KeyConditionExpression: 'pk = :pk', ExpressionAttributeValues: { ':pk': `RESV#${tenantId}` }, ConsistentRead: true }),
        );
        return (out.Items ?? []).map((i) => String(i.sk)).sort();
      },
    },
  };
  const lean = leanClients(REGION, f.config.requestDeadlineMs, { endpoint: moto.endpoint, credentials: testCredentials });
  leanBackend = {
    ...backend,
    name: 'AWS adapters on moto, lean client',
    routerStore: new DynamoRouterStore(lean.ddb, t),
    ledger: new DynamoGovernanceLedger(lean.ddb, { table: t.counters, usageRecordsTable: t.usage }),
    dataKeys: new KmsDataKeyService(lean.kms, f.config.rootKeyArn),
    pepper: new SecretsManagerPepperSource(lean.secrets, f.config.pepperSecretId),
    responseCache: new DynamoResponseCache(lean.ddb, t.cache!),
  };
}, 120_000);
afterAll(async () => {
  await moto?.stop();
});

const factory = () => backend;
tenantStoreContract('AWS adapters on moto', factory);
factorChangeContract('AWS adapters on moto', factory);
routerStoreContract('AWS adapters on moto', factory);
governanceLedgerContract('AWS adapters on moto', factory);
dataKeysContract('AWS adapters on moto', factory);
pepperContract('AWS adapters on moto', factory);
responseCacheContract('AWS adapters on moto', factory);

// The router's adapters over the lean client (the tenant store is the vault's: SDK only).
const leanFactory = () => leanBackend;
routerStoreContract('AWS adapters on moto, lean client', leanFactory);
governanceLedgerContract('AWS adapters on moto, lean client', leanFactory);
dataKeysContract('AWS adapters on moto, lean client', leanFactory);
pepperContract('AWS adapters on moto, lean client', leanFactory);
responseCacheContract('AWS adapters on moto, lean client', leanFactory);
