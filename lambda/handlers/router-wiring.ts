/**
 * The router's production wiring, in one place: the Lambda handler, the CPU benchmark and the
 * router tests (test/support/router-harness.ts) compose the router from `routerDeps`, so what the
 * tests count (reads, KMS calls, writes per request) is what a deployed cell does. The local
 * gateway composes the same router app over its backend's ports (local/gateway.ts).
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { KMSClient } from '@aws-sdk/client-kms';
import type { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { AwsRpc } from '../adapters/aws-rpc';
import { DynamoGovernance } from '../adapters/dynamo-governance';
import { DynamoResponseCache } from '../adapters/dynamo-response-cache';
import { DynamoRouterStore } from '../adapters/dynamo-router-store';
import { KmsDataKeyService } from '../adapters/kms-data-key-service';
import { ProviderHttpClient } from '../adapters/provider-http';
import { SecretsManagerPepperSource } from '../adapters/secrets-manager-pepper';
import type { CellConfig } from '../core/cell-config';
import type { GuardrailService } from '../core/guardrails';
import type { Logger } from '../core/logger';
import type { DataKeyService, PepperSource } from '../core/ports';
import type { ProviderClient } from '../core/router/provider-port';
import { createRouterApp, type RouterDeps } from '../core/router/router-app';
import { CircuitBreaker } from '../core/routing/circuit-breaker';

export interface RouterWiring {
  readonly config: CellConfig;
  /** The lean client (aws-clients.ts leanClients) as deployed, or an SDK client (tests, local). */
  readonly ddb: AwsRpc | DynamoDBClient;
  readonly pepper: PepperSource;
  readonly dataKeys: DataKeyService;
  readonly log: Logger;
  /** @default new ProviderHttpClient() */
  readonly providers?: ProviderClient;
  /** Amazon Bedrock Guardrails for policies naming one (lambda/adapters/bedrock-guardrail.ts). */
  readonly guardrailService?: GuardrailService;
  readonly emitMetric?: (line: string) => void;
}

/**
 * Router dependencies as deployed: the DynamoDB store, budgets, RPM/TPM and allowlists through
 * DynamoGovernance on the counters table (priced with the cell's price table), one circuit breaker
 * per execution environment.
 */
export function routerDeps(w: RouterWiring): RouterDeps {
  const { config, ddb, log } = w;
  return {
    config,
    store: new DynamoRouterStore(ddb, config.tables),
    pepper: w.pepper,
    dataKeys: w.dataKeys,
    providers: w.providers ?? new ProviderHttpClient(),
    // Budgets, RPM/TPM and allowlists on the counters table, priced with the cell's price table.
    governance: new DynamoGovernance(ddb, { table: config.tables.counters, usageRecordsTable: config.tables.usage, prices: config.prices, log }),
    breaker: new CircuitBreaker(),
    // Opt-in per tenant and route (policy `cache`); sealed entries in the cell's cache table.
    ...(config.tables.cache ? { cache: new DynamoResponseCache(ddb, config.tables.cache) } : {}),
    ...(w.guardrailService ? { guardrailService: w.guardrailService } : {}),
    log,
    ...(w.emitMetric ? { emitMetric: w.emitMetric } : {}),
  };
}

/**
 * The deployed router's adapters over a function's AWS clients (the lean ones, aws-clients.ts
 * leanClients): the Lambda handler uses it, and so does the CPU benchmark (the same clients over
 * a transport answering in-process), so both measure one wiring.
 */
export function productionRouter(o: {
  readonly config: CellConfig;
  readonly clients: { readonly ddb: AwsRpc | DynamoDBClient; readonly kms: AwsRpc | KMSClient; readonly secrets: AwsRpc | SecretsManagerClient };
  readonly providers: ProviderClient;
  readonly guardrailService?: GuardrailService;
  readonly log: Logger;
  readonly emitMetric?: (line: string) => void;
}) {
  const { config, clients } = o;
  return createRouterApp(
    routerDeps({
      config,
      ddb: clients.ddb,
      pepper: new SecretsManagerPepperSource(clients.secrets, config.pepperSecretId),
      dataKeys: new KmsDataKeyService(clients.kms, config.rootKeyArn, { previousKeyArns: config.previousRootKeyArns }),
      providers: o.providers,
      ...(o.guardrailService ? { guardrailService: o.guardrailService } : {}),
      log: o.log,
      emitMetric: o.emitMetric,
    }),
  );
}
