/**
 * Helpers for the end-to-end tests: build the vault and admin apps on a provisioned cell, call
 * them with HttpRequest objects, check error bodies, and dump the cell's tables.
 */
import { ScanCommand as RawScanCommand } from '@aws-sdk/client-dynamodb';
import { ScanCommand } from '@aws-sdk/lib-dynamodb';
import { createAdminApp } from '../../lambda/core/admin-app';
import type { SecretIdentity } from '../../lambda/core/canonical';
import { openSecret, SealedSecret } from '../../lambda/core/envelope';
import type { HttpRequest, HttpResponse } from '../../lambda/core/http';
import { errorFields, jsonLogger } from '../../lambda/core/logger';
import type { DataKeyService } from '../../lambda/core/ports';
import { regionCodeOf } from '../../lambda/core/regions';
import { generateToken } from '../../lambda/core/token';
import { createVaultApp } from '../../lambda/core/vault-app';
import type { CellFixture } from './cell-fixture';

export type App = (req: HttpRequest) => Promise<HttpResponse>;

export const OPERATOR_ARN = 'arn:aws:iam::123456789012:role/operator';

export interface Reply {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
  readonly json: any;
}

export interface CallOptions {
  /** Sent as `Authorization: Bearer <token>`. */
  token?: string;
  /** An object is sent as JSON (with content-type application/json); a string is sent as is. */
  body?: unknown;
  headers?: Record<string, string | undefined>;
  iamCaller?: string;
}

function toReply(res: HttpResponse): Reply {
  let json: unknown;
  try {
    json = JSON.parse(res.body);
  } catch {
    json = undefined;
  }
  return { status: res.status, headers: res.headers, body: res.body, json };
}

export function request(method: string, path: string, opts: CallOptions = {}): HttpRequest {
  const headers: Record<string, string | undefined> = {};
  let body: string | undefined;
  if (opts.body !== undefined) {
    if (typeof opts.body === 'string') {
      body = opts.body;
    } else {
      body = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
  }
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  Object.assign(headers, opts.headers ?? {});
  return { method, path, headers, body, iamCaller: opts.iamCaller, sourceIp: '127.0.0.1' };
}

export async function call(app: App, method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
  return toReply(await app(request(method, path, opts)));
}

/** The apps on a cell, with every unexpected error (the apps' onError) recorded and logged as the handlers do. */
export interface CellApps {
  readonly admin: App;
  readonly vault: App;
  /** Errors the apps reported through onError (every non-ApiError, including mapped 409/403/503). */
  readonly errors: unknown[];
  /** Lines the onError logger wrote. */
  readonly logLines: string[];
  /** Every 5xx reply, with its request line. */
  readonly serverErrors: { request: string; status: number; body: string }[];
  /** Clears the recorded errors, lines and 5xx replies. */
  reset(): void;
}

export function cellApps(f: CellFixture, opts: { dataKeys?: DataKeyService } = {}): CellApps {
  const errors: unknown[] = [];
  const logLines: string[] = [];
  const log = jsonLogger('e2e', (l) => logLines.push(l));
  const onError = (err: unknown): void => {
    errors.push(err);
    log.error('unexpected error', errorFields(err));
  };
  const serverErrors: CellApps['serverErrors'] = [];
  const watch =
    (app: App): App =>
    async (req) => {
      const res = await app(req);
      if (res.status >= 500) serverErrors.push({ request: `${req.method} ${req.path}`, status: res.status, body: res.body });
      return res;
    };
  return {
    admin: watch(createAdminApp({ config: f.config, store: f.store, pepper: f.pepper, audit: f.audit, onError })),
    vault: watch(createVaultApp({ config: f.config, store: f.store, pepper: f.pepper, dataKeys: opts.dataKeys ?? f.dataKeys, usage: f.usage, audit: f.audit, onError })),
    errors,
    logLines,
    serverErrors,
    reset: () => {
      errors.length = 0;
      logLines.length = 0;
      serverErrors.length = 0;
    },
  };
}

/** Operator calls on the admin app. */
export class AdminClient {
  constructor(
    private readonly app: App,
    private readonly caller = OPERATOR_ARN,
  ) {}

  call(method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
    return call(this.app, method, path, { iamCaller: this.caller, ...opts });
  }

  createTenant(tenantId: string, extra: Record<string, unknown> = {}): Promise<Reply> {
    return this.call('POST', '/admin/tenants', { body: { tenantId, ...extra } });
  }

  /** Creates a tenant and returns its first token, failing loudly otherwise. */
  async tenantWithToken(tenantId: string, mode: 'managed' | 'sovereign' = 'managed'): Promise<{ token: string; tokenId: string }> {
    const res = await this.createTenant(tenantId, { mode });
    if (res.status !== 201) throw new Error(`creating tenant ${tenantId}: ${res.status} ${res.body}`);
    return { token: res.json.token, tokenId: res.json.tokenId };
  }

  getTenant(tenantId: string): Promise<Reply> {
    return this.call('GET', `/admin/tenants/${tenantId}`);
  }

  getPolicy(tenantId: string): Promise<Reply> {
    return this.call('GET', `/admin/tenants/${tenantId}/policy`);
  }

  putPolicy(tenantId: string, policy: unknown): Promise<Reply> {
    return this.call('PUT', `/admin/tenants/${tenantId}/policy`, { body: { policy } });
  }

  listTokens(tenantId: string): Promise<Reply> {
    return this.call('GET', `/admin/tenants/${tenantId}/tokens`);
  }

  revokeToken(tenantId: string, tokenId: string): Promise<Reply> {
    return this.call('DELETE', `/admin/tenants/${tenantId}/tokens/${tokenId}`);
  }

  offboard(tenantId: string): Promise<Reply> {
    return this.call('DELETE', `/admin/tenants/${tenantId}`);
  }

  audit(tenantId: string): Promise<Reply> {
    return this.call('GET', `/admin/tenants/${tenantId}/audit`);
  }
}

/** Tenant calls on the vault app with one token. */
export class VaultClient {
  constructor(
    private readonly app: App,
    readonly token: string,
  ) {}

  call(method: string, path: string, opts: CallOptions = {}): Promise<Reply> {
    return call(this.app, method, path, { token: this.token, ...opts });
  }

  storeSecret(provider: string, apiKey: string, name?: string): Promise<Reply> {
    return this.call('POST', '/vault/secrets', { body: { provider, apiKey, ...(name ? { name } : {}) } });
  }

  listSecrets(): Promise<Reply> {
    return this.call('GET', '/vault/secrets');
  }

  rotateSecret(provider: string, name: string, apiKey: string): Promise<Reply> {
    return this.call('PUT', `/vault/secrets/${provider}/${name}`, { body: { apiKey } });
  }

  deleteSecret(provider: string, name: string): Promise<Reply> {
    return this.call('DELETE', `/vault/secrets/${provider}/${name}`);
  }

  createToken(role: string, extra: Record<string, unknown> = {}): Promise<Reply> {
    return this.call('POST', '/vault/tokens', { body: { role, ...extra } });
  }

  listTokens(): Promise<Reply> {
    return this.call('GET', '/vault/tokens');
  }

  rotateToken(tokenId: string): Promise<Reply> {
    return this.call('POST', `/vault/tokens/${tokenId}/rotate`);
  }

  revokeToken(tokenId: string): Promise<Reply> {
    return this.call('DELETE', `/vault/tokens/${tokenId}`);
  }
}

/** Stack frames and source paths that must never reach a client. */
const LEAK_PATTERNS: readonly RegExp[] = [/\n\s*at\s/, /\bat\s+[\w$.<>]+\s+\(/, /\bat\s+\/\S+:\d+/, /\.ts:\d*/, /\.js:\d+/, /node_modules/, /\/work\//, /lambda\/(core|adapters|handlers)/];

/** Asserts a body leaks no stack trace or source path. */
export function expectNoStackTrace(body: string): void {
  for (const p of LEAK_PATTERNS) expect({ pattern: String(p), match: p.test(body), body }).toEqual({ pattern: String(p), match: false, body });
}

/**
 * Asserts an error reply in the OpenAI shape `{error:{message,type,code}}`, with JSON content
 * type, no stack trace, and none of the `forbidden` strings (tokens, secrets) anywhere in it.
 */
export function expectApiError(res: Reply, status: number, code?: string | RegExp, forbidden: readonly string[] = []): void {
  const summary = { status: res.status, body: res.body };
  expect(summary).toEqual({ status, body: expect.any(String) });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect(res.json).toEqual({ error: expect.objectContaining({ message: expect.any(String), type: expect.any(String), code: expect.any(String) }) });
  expect(res.json.error.message.length).toBeGreaterThan(10);
  if (code !== undefined) expect(res.json.error.code).toEqual(typeof code === 'string' ? code : expect.stringMatching(code));
  expectNoStackTrace(res.body);
  for (const f of forbidden) expect(res.body).not.toContain(f);
}

/** Every item of a table (unmarshalled), paginated. */
export async function scanTable(f: CellFixture, table: string): Promise<Record<string, unknown>[]> {
  const items: Record<string, unknown>[] = [];
  let start: Record<string, unknown> | undefined;
  do {
    const out = await f.clients.doc.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true }));
    items.push(...((out.Items ?? []) as Record<string, unknown>[]));
    start = out.LastEvaluatedKey;
  } while (start);
  return items;
}

export interface CellDump {
  readonly tenants: Record<string, unknown>[];
  readonly tokens: Record<string, unknown>[];
  readonly usage: Record<string, unknown>[];
  readonly audit: Record<string, unknown>[];
  /** Tenant erasure keys: readable by whoever reads the live table, in no backup (crypto-shredding). */
  readonly erasure: Record<string, unknown>[];
}

/** A full DynamoDB dump of the cell: what an attacker with read access to storage would hold. */
export async function dumpCell(f: CellFixture): Promise<CellDump> {
  const t = f.config.tables;
  const [tenants, tokens, usage, audit, erasure] = await Promise.all([
    scanTable(f, t.tenants),
    scanTable(f, t.tokens),
    scanTable(f, t.usage),
    scanTable(f, t.audit),
    scanTable(f, t.erasure),
  ]);
  return { tenants, tokens, usage, audit, erasure };
}

/**
 * The raw wire form of every table (AttributeValue JSON), binary attributes rendered as base64
 * and hex, for searching for a leaked value in any encoding.
 */
export async function rawTableText(f: CellFixture): Promise<string> {
  const parts: string[] = [];
  for (const table of Object.values(f.config.tables)) {
    let start: Record<string, unknown> | undefined;
    do {
      const out = await f.clients.ddb.send(new RawScanCommand({ TableName: table, ExclusiveStartKey: start as never, ConsistentRead: true }));
      parts.push(
        JSON.stringify(out.Items ?? [], (_k, v: unknown) =>
          v instanceof Uint8Array ? { b64: Buffer.from(v).toString('base64'), hex: Buffer.from(v).toString('hex') } : v,
        ),
      );
      start = out.LastEvaluatedKey;
    } while (start);
  }
  return parts.join('\n');
}

/** The sealed-secret rows of a dump (tenants table, `sk = SECRET#...`). */
export function secretRows(dump: CellDump, tenantId?: string): Record<string, unknown>[] {
  return dump.tenants.filter((i) => String(i.sk).startsWith('SECRET#') && (tenantId === undefined || i.tenant === tenantId));
}

export function identity(region: string, tenant: string, provider: string, secret = 'default', version = 1): SecretIdentity {
  return { app: 'sovereign-router', region, tenant, provider, secret, version };
}

/** Opens a stored record with the production openSecret and returns the plaintext as a string. */
export function openToString(
  record: unknown,
  expected: SecretIdentity,
  dataKeys: DataKeyService,
  tenantFactor?: Buffer,
  versionSalt?: Buffer,
  /** The tenant's erasure key (from the erasure-key table); v2 rows need it. */
  erasureKey?: Buffer,
): Promise<string> {
  return openSecret({ record: record as SealedSecret, expected, dataKeys, tenantFactor, versionSalt, erasureKey, use: (b) => b.toString('utf8') });
}

/** What the tenant META records now for one secret (version and, for sovereign tenants, the salt). */
export async function recordedVersion(
  f: CellFixture,
  tenant: string,
  provider: string,
  name = 'default',
): Promise<{ version: number; salt?: Buffer } | undefined> {
  const meta = await f.store.getTenant(tenant);
  const entry = meta?.secretVersions?.[`${provider}#${name}`];
  return entry && { version: entry.version, ...(entry.salt ? { salt: Buffer.from(entry.salt, 'base64') } : {}) };
}

/** Opens a sovereign tenant's current secret the way the router does: META's version and salt. */
export async function openCurrent(f: CellFixture, tenant: string, provider: string, factor?: Buffer, name = 'default'): Promise<string> {
  const entry = await recordedVersion(f, tenant, provider, name);
  if (!entry) throw new Error(`no META entry for ${provider}#${name}`);
  return openToString(await f.store.getSecret(tenant, provider, name), identity(f.config.region, tenant, provider, name, entry.version), f.dataKeys, factor, factor ? entry.salt : undefined, await f.store.getErasureKey(tenant));
}

/** Settles a promise into its rejection (or fails the test if it resolved). */
export async function rejectionOf(p: Promise<unknown>): Promise<Error> {
  const outcome = await p.then(
    (value) => ({ ok: true as const, value }),
    (err: unknown) => ({ ok: false as const, err }),
  );
  if (outcome.ok) throw new Error(`expected a rejection, got ${JSON.stringify(outcome.value)}`);
  return outcome.err as Error;
}

/** A well-formed token (valid checksum) for the tenant that the cell never issued. */
export function forgedToken(region: string, tenantId: string): string {
  return generateToken(regionCodeOf(region), tenantId);
}

/** A unique tenant id per call, valid for the tenant-id pattern. */
let tenantCounter = 0;
export function tenantId(stem: string): string {
  tenantCounter += 1;
  return `${stem}-${tenantCounter}-${Math.random().toString(36).slice(2, 6)}`.slice(0, 32).replace(/-+$/, '');
}

export const METADATA_KEYS = ['createdAt', 'fingerprint', 'name', 'provider', 'rotatedAt', 'sovereign', 'version'];
