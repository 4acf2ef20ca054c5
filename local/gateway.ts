/**
 * The local gateway: the same vault, admin and router code as the Lambda functions, behind a
 * node:http server on loopback, with moto as the embedded AWS backend.
 */
import { createServer, IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { KMSClient } from '@aws-sdk/client-kms';
import { SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { DynamoGovernance } from '../lambda/adapters/dynamo-governance';
import { DynamoRouterStore } from '../lambda/adapters/dynamo-router-store';
import { DynamoTenantStore } from '../lambda/adapters/dynamo-tenant-store';
import { DynamoUsageRecords } from '../lambda/adapters/dynamo-usage-records';
import { KmsDataKeyService } from '../lambda/adapters/kms-data-key-service';
import { ProviderHttpClient } from '../lambda/adapters/provider-http';
import { SecretsManagerPepperSource } from '../lambda/adapters/secrets-manager-pepper';
import { createAdminApp } from '../lambda/core/admin-app';
import { cellConfigFromEnv, type ProviderEndpointConfig } from '../lambda/core/cell-config';
import { ApiError, errorResponse, HttpRequest, HttpResponse, withRequestId } from '../lambda/core/http';
import { errorFields, jsonLogger, Logger } from '../lambda/core/logger';
import { CircuitBreaker } from '../lambda/core/routing/circuit-breaker';
import { createRouterApp } from '../lambda/core/router/router-app';
import type { ResponseSink } from '../lambda/core/router/response-sink';
import { createVaultApp } from '../lambda/core/vault-app';
import { MotoServer, startMoto } from './moto-server';
import { provisionCell, ProvisionedCell } from './provision-cell';
import { StateStore } from './state-store';

export type LocalProvider = ProviderEndpointConfig;

export interface LocalGatewayOptions {
  readonly region?: string;
  /** @default 8787; 0 picks a free port */
  readonly port?: number;
  readonly providers: Readonly<Record<string, LocalProvider>>;
  /** Keep state in this directory across restarts; default: in memory only. */
  readonly stateDir?: string;
  readonly maxRequestBytes?: number;
  readonly requestDeadlineMs?: number;
  readonly log?: Logger;
}

export interface LocalGateway {
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly cell: ProvisionedCell;
  readonly restoredItems: number;
  /** The embedded AWS emulator (moto), e.g. for the AWS CLI's --endpoint-url. */
  readonly awsEndpoint: string;
  stop(): Promise<void>;
}

const HOST = '127.0.0.1';
const credentials = { accessKeyId: 'local', secretAccessKey: 'local' };

export async function startLocalGateway(opts: LocalGatewayOptions): Promise<LocalGateway> {
  const region = opts.region ?? 'eu-central-1';
  const log = opts.log ?? jsonLogger('local-gateway');
  const state = opts.stateDir ? new StateStore(opts.stateDir) : undefined;
  const persisted = state?.loadOrCreate(region);
  const moto: MotoServer = await startMoto({ kmsSeedHex: persisted?.cell.kmsSeedHex });
  let server: Server | undefined;
  try {
    const clientConfig = { endpoint: moto.endpoint, region, credentials, maxAttempts: 2 };
    const ddb = new DynamoDBClient(clientConfig);
    const kms = new KMSClient(clientConfig);
    const secrets = new SecretsManagerClient(clientConfig);
    const cell = await provisionCell(
      { ddb, kms, secrets },
      {
        region,
        providers: { ...opts.providers },
        prefix: persisted?.cell.tablePrefix ?? `sr-local-${region}`,
        pepper: persisted?.cell.pepper,
        maxRequestBytes: opts.maxRequestBytes,
        requestDeadlineMs: opts.requestDeadlineMs ?? 120_000,
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
    const store = new DynamoTenantStore(ddb, config.tables);
    const pepper = new SecretsManagerPepperSource(secrets, config.pepperSecretId);
    const dataKeys = new KmsDataKeyService(kms, config.rootKeyArn);
    const onError = (err: unknown) => log.error('unexpected error', errorFields(err));
    const usage = new DynamoUsageRecords(ddb, config.tables.usage);
    const vault = createVaultApp({ config, store, pepper, dataKeys, usage, onError });
    const admin = createAdminApp({ config, store, pepper, onError });
    const router = createRouterApp({
      config,
      store: new DynamoRouterStore(ddb, config.tables),
      pepper,
      dataKeys,
      providers: new ProviderHttpClient(),
      breaker: new CircuitBreaker(),
      // The same budgets, rate limits and allowlists as the deployed router.
      governance: new DynamoGovernance(ddb, { table: config.tables.counters, usageRecordsTable: config.tables.usage, prices: config.prices, log }),
      log,
    });

    // Changes are saved before the response goes out, so an acknowledged secret survives a crash.
    let saving = Promise.resolve();
    const persist = () => (saving = saving.then(() => (state ? state.dumpTables(ddb, cell.tables) : undefined)));

    server = createServer((req, res) => {
      void handle(req, res).catch((err) => {
        log.error('local gateway error', errorFields(err));
        if (!res.headersSent) send(res, errorResponse(err));
        else res.end();
      });
    });
    // Clients pool connections for longer than node's 5 s default (SDKs reuse a socket after a
    // pause and fail with "other side closed" when the server dropped it just then).
    server.keepAliveTimeout = 65_000;
    server.headersTimeout = 66_000;

    const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
      const started = Date.now();
      const [path, search] = (req.url ?? '/').split('?', 2);
      const body = await readBody(req, config.maxRequestBytes + 1);
      const httpReq: HttpRequest = {
        method: req.method ?? 'GET',
        path,
        headers: lowerHeaders(req),
        query: Object.fromEntries(new URLSearchParams(search ?? '')),
        body,
        sourceIp: req.socket.remoteAddress?.replace(/^::ffff:/, ''),
        iamCaller: 'local-operator',
      };
      if (path === '/healthz') return send(res, { status: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' });
      // The router writes its own line per request (ids, timings, cost; no secrets).
      if (path.startsWith('/v1/')) {
        await router(httpReq, nodeSink(res));
        return;
      }
      let out: HttpResponse;
      if (/^\/(vault|admin|console)(\/|$)/.test(path)) {
        // The console's static pages are served by the vault app, as on the deployed cell.
        const app = path.startsWith('/admin') ? admin : vault;
        out = await app(httpReq);
        if (httpReq.method !== 'GET' && out.status < 400) await persist();
      } else {
        out = errorResponse(new ApiError(404, 'not_found', `No route ${httpReq.method} ${path}.`));
      }
      const { requestId, res: answer } = withRequestId(httpReq, out);
      send(res, answer);
      log.info('request', { requestId, method: httpReq.method, path: routeLabel(path), status: answer.status, latencyMs: Date.now() - started });
    };

    await new Promise<void>((ok, fail) => {
      server!.once('error', fail);
      server!.listen(opts.port ?? 8787, HOST, () => ok());
    });
    const { port } = server.address() as AddressInfo;
    const running = server;
    return {
      url: `http://${HOST}:${port}`,
      cell,
      restoredItems,
      awsEndpoint: moto.endpoint,
      async stop() {
        await new Promise<void>((ok) => {
          running.close(() => ok());
          running.closeAllConnections();
        });
        await saving.catch(() => undefined);
        if (state) await state.dumpTables(ddb, cell.tables).catch(() => undefined);
        await moto.stop();
      },
    };
  } catch (err) {
    server?.close();
    await moto.stop();
    throw err;
  }
}

/** Path without ids, for log lines. */
function routeLabel(path: string): string {
  return path.replace(/\/(tenants|secrets|tokens)\/[^/]+/g, '/$1/:id');
}

function lowerHeaders(req: IncomingMessage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(req.headers)) if (typeof v === 'string') out[k.toLowerCase()] = v;
  return out;
}

/** Reads at most `limit` bytes; a longer body is cut there, and the size check answers 413. */
async function readBody(req: IncomingMessage, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    if (size >= limit) continue; // drain without keeping
    chunks.push(chunk);
    size += chunk.length;
  }
  if (size === 0) return undefined;
  return Buffer.concat(chunks).subarray(0, limit).toString('utf8');
}

function send(res: ServerResponse, out: HttpResponse): void {
  res.writeHead(out.status, out.headers);
  res.end(out.body);
}

/** The router's sink on a node:http response: headers flushed at start, each chunk written as it comes. */
export function nodeSink(res: ServerResponse): ResponseSink {
  let started = false;
  return {
    start(status, headers) {
      if (started) throw new Error('response already started');
      started = true;
      res.writeHead(status, headers);
      res.flushHeaders();
    },
    write(chunk) {
      res.write(chunk);
    },
    end() {
      res.end();
    },
  };
}
