import { dataKeysOfTenant, isTenantKeyRefusal, tenantKeyUnavailable } from './tenant-keys';
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { authenticate, Principal, storedRecordApiError } from './authenticate';
import { SecretIdentity } from './canonical';
import type { CellConfig } from './cell-config';
import { zeroize } from './crypto-util';
import { fingerprintKeyOf, sealSecret, SealedSecret, VERSION_SALT_BYTES } from './envelope';
import { sealedRowDigest } from './sealed-digest';
import { ApiError, errorResponse, HttpRequest, HttpResponse, jsonResponse, parseJsonBody, presentedToken } from './http';
import type { Clock, DataKeyService, PepperSource } from './ports';
import { systemClock } from './ports';
import { regionCodeOf } from './regions';
import { dispatch, Route } from './route-table';
import type { TenantStore } from './store';
import {
  limitsSchema,
  secretNameSchema,
  secretSlotOf,
  SecretVersionEntry,
  TenantRecord,
  TOKEN_ROLES,
  TokenRecord,
  TokenRole,
  tokenView,
} from './tenant-model';
import { wrapTenantFactor } from './tenant-factor';
import { sealFactorBox, tokenKeyTag, tokenPublicKey } from './factor-box';
import { factorForGeneration, tenantGeneration } from './factor-generations';
import { generateToken } from './token';
import { findListedToken } from './listed-token';
import { tokenVerifiers } from './pepper-ring';
import { tenantErasureKey } from './erasure-key';
import { validate } from './validation';
import { AuditReadPorts, readAuditVerification } from './audit-read';
import { serveConsole } from './console/console-routes';
import { parseUsageQuery, queryUsagePage, UsageRecordsPort, usageRecordView } from './usage/usage-query';

export interface VaultDeps {
  readonly config: Pick<CellConfig, 'region' | 'providers' | 'maxRequestBytes'>;
  readonly store: TenantStore;
  readonly pepper: PepperSource;
  readonly dataKeys: DataKeyService;
  /** Read side of the per-request usage records (the console's timeline, the CLI's export). */
  readonly usage: UsageRecordsPort;
  /** The audit key (VerifyMac) and the anchors (read), for the tenant's own trail verification. */
  readonly audit: AuditReadPorts;
  readonly clock?: Clock;
  /** Reports unexpected errors (never with request bodies). */
  readonly onError?: (err: unknown) => void;
}

/** Newest audit events returned to the console; the verification always covers the whole chain. */
const AUDIT_PAGE = 500;

/** Provider API keys: printable, no whitespace, bounded. */
const providerApiKey = z.string().min(8).max(1024).regex(/^[\x21-\x7e]+$/, 'must be printable ASCII without spaces');

const storeSecretBody = z.object({ provider: z.string(), name: secretNameSchema.default('default'), apiKey: providerApiKey }).strict();
const rotateSecretBody = z.object({ apiKey: providerApiKey }).strict();
const createTokenBody = z
  .object({
    role: z.enum(TOKEN_ROLES as [TokenRole, ...TokenRole[]]),
    label: z.string().max(64).regex(/^[\x20-\x7e]*$/).optional(),
    limits: limitsSchema.optional(),
  })
  .strict();

export function secretView(s: SealedSecret): Record<string, unknown> {
  return {
    provider: s.provider,
    name: s.secret,
    version: s.version,
    fingerprint: s.fingerprint,
    sovereign: s.sovereign,
    createdAt: s.createdAt,
    rotatedAt: s.rotatedAt,
  };
}

export function newTokenId(): string {
  return `tk_${randomBytes(9).toString('base64url')}`;
}

/** Issues a token: the record to store (verifier, wrap) and the token to show once. */
export async function issueToken(opts: {
  tenant: Pick<TenantRecord, 'tenantId' | 'region' | 'mode' | 'factorGeneration'>;
  role: TokenRole;
  label?: string;
  limits?: TokenRecord['limits'];
  pepper: PepperSource;
  clock: Clock;
  /** Sovereign mode: the tenant factor to wrap for the new token. */
  factor?: Buffer;
}): Promise<{ token: string; record: TokenRecord }> {
  const { tenant } = opts;
  const token = generateToken(regionCodeOf(tenant.region), tenant.tenantId);
  const tokenId = newTokenId();
  // Under the issuing version: right after a rotation, the previous one (see pepper-ring.ts).
  const { verifier, version } = tokenVerifiers(await opts.pepper.getPeppers(), token).issuing;
  if (tenant.mode === 'sovereign' && !opts.factor) throw new Error('issueToken: sovereign tenant needs its factor');
  // Every token gets a public key derived from itself, so a later factor change can seal the next
  // factor to it without the token (factor-box.ts); under a factor, the key is tagged with it.
  const binding = { token, region: tenant.region, tenant: tenant.tenantId, tokenId };
  const publicKey = tokenPublicKey(binding);
  const generation = tenantGeneration(tenant);
  const factor = tenant.mode === 'sovereign' ? opts.factor : undefined;
  const record: TokenRecord = {
    verifier,
    pepperVersion: version,
    tokenId,
    tenantId: tenant.tenantId,
    role: opts.role,
    createdAt: opts.clock.now().toISOString(),
    ...(opts.label ? { label: opts.label } : {}),
    ...(opts.limits ? { limits: opts.limits } : {}),
    ...(factor
      ? {
          // Generation 1 keeps the original wrap format; later generations are boxes.
          wrappedFactor: generation === 1 ? wrapTenantFactor(factor, binding) : sealFactorBox(factor, generation, binding, publicKey),
          factorKey: { publicKey, tag: tokenKeyTag(factor, binding, publicKey), generation },
        }
      : { factorKey: { publicKey } }),
  };
  return { token, record };
}

/** Sovereign mode: the tenant factor, unwrapped with the presented token; caller zero-fills it. */
export function factorOf(principal: Principal): Buffer | undefined {
  if (principal.tenant.mode !== 'sovereign') return undefined;
  const factor = factorForGeneration(
    principal.token,
    { token: principal.parsed.token, region: principal.tenant.region, tenant: principal.tenant.tenantId, tokenId: principal.token.tokenId },
    tenantGeneration(principal.tenant),
  );
  if (!factor) throw new ApiError(403, 'token_without_factor', 'This token cannot open the tenant vault (no tenant factor is wrapped for it).');
  return factor;
}

/** Tenant self-service API: provider secrets and tokens, for tenant-admin tokens only. */
export function createVaultApp(deps: VaultDeps): (req: HttpRequest) => Promise<HttpResponse> {
  const clock = deps.clock ?? systemClock;
  const { region, providers, maxRequestBytes } = deps.config;
  const auth = (req: HttpRequest) =>
    authenticate(presentedToken(req), { region, pepper: deps.pepper, store: deps.store, onError: deps.onError }, 'tenant-admin');
  const actor = (p: Principal) => `token:${p.token.tokenId}`;

  const checkProvider = (provider: string): void => {
    if (!Object.prototype.hasOwnProperty.call(providers, provider)) {
      // The submitted value is not echoed: a client that mixes up fields would get its API key back in an error.
      throw new ApiError(400, 'unknown_provider', `The provider is not enabled in ${region}. Enabled: ${Object.keys(providers).join(', ')}.`);
    }
    // The router signs for this provider with its own role: a stored key would never be used.
    if (providers[provider].kind === 'bedrock' && providers[provider].auth === 'iam') {
      throw new ApiError(400, 'provider_uses_router_role', `${provider} is Amazon Bedrock called with the gateway's own role; it takes no API key.`);
    }
  };

  /** Seals one version; sovereign tenants get a fresh version salt, which only META will hold. */
  async function seal(
    p: Principal,
    provider: string,
    name: string,
    version: number,
    apiKey: string,
  ): Promise<{ sealed: SealedSecret; current: SecretVersionEntry }> {
    const identity: SecretIdentity = { app: 'sovereign-router', region, tenant: p.tenant.tenantId, provider, secret: name, version };
    const plaintext = Buffer.from(apiKey, 'utf8');
    let factor: Buffer | undefined;
    let fingerprintKey: Buffer | undefined;
    let erasureKey: Buffer | undefined;
    try {
      factor = factorOf(p);
      fingerprintKey = fingerprintKeyOf(await deps.pepper.getPepper(), { region, tenant: p.tenant.tenantId, provider });
      erasureKey = await tenantErasureKey(deps.store, p.tenant.tenantId);
      const versionSalt = factor ? randomBytes(VERSION_SALT_BYTES) : undefined;
      const sealed = await sealSecret({ identity, plaintext, dataKeys: dataKeysOfTenant(deps.dataKeys, p.tenant), tenantFactor: factor, versionSalt, fingerprintKey, erasureKey, clock });
      const generation = tenantGeneration(p.tenant);
      return {
        sealed,
        current: { version, ...(versionSalt ? { salt: versionSalt.toString('base64'), ...(generation > 1 ? { generation } : {}) } : {}) },
      };
    } finally {
      zeroize(plaintext, factor, fingerprintKey, erasureKey);
    }
  }

  const routes: Route[] = [
    [
      'GET',
      '/vault/secrets',
      async (req) => {
        const p = await auth(req);
        const secrets = await deps.store.listSecrets(p.tenant.tenantId);
        return jsonResponse(200, { object: 'list', data: secrets.map(secretView) });
      },
    ],
    [
      'POST',
      '/vault/secrets',
      async (req) => {
        const p = await auth(req);
        const body = validate(storeSecretBody, parseJsonBody(req, maxRequestBytes));
        checkProvider(body.provider);
        const { sealed, current } = await seal(p, body.provider, body.name, 1, body.apiKey);
        await deps.store.putSecret({ sealed, current, expectedVersion: undefined, factorGeneration: tenantGeneration(p.tenant) }, {
          type: 'secret.stored',
          actor: actor(p),
          details: { provider: body.provider, name: body.name, version: 1, fingerprint: sealed.fingerprint, rowDigest: sealedRowDigest(sealed) },
        });
        return jsonResponse(201, secretView(sealed));
      },
    ],
    [
      'PUT',
      '/vault/secrets/:provider/:name',
      async (req, params) => {
        const p = await auth(req);
        const body = validate(rotateSecretBody, parseJsonBody(req, maxRequestBytes));
        checkProvider(params.provider);
        const name = validate(secretNameSchema, params.name, 'secret name');
        const existing = await deps.store.getSecret(p.tenant.tenantId, params.provider, name);
        if (!existing) throw new ApiError(404, 'secret_not_found', `No ${params.provider} secret named '${name}'.`);
        const recorded = p.tenant.secretVersions?.[secretSlotOf(params.provider, name)]?.version;
        if (recorded === undefined) {
          throw new ApiError(409, 'secret_not_recorded', `The ${params.provider} secret '${name}' is not recorded for this tenant; delete it and store it again.`);
        }
        // Past both the row's and META's version: a rolled-back row never makes a version number reused.
        const { sealed, current } = await seal(p, params.provider, name, Math.max(recorded, existing.version) + 1, body.apiKey);
        const rotated: SealedSecret = { ...sealed, createdAt: existing.createdAt, rotatedAt: sealed.createdAt };
        await deps.store.putSecret({ sealed: rotated, current, expectedVersion: recorded, factorGeneration: tenantGeneration(p.tenant) }, {
          type: 'secret.rotated',
          actor: actor(p),
          details: { provider: params.provider, name, version: rotated.version, fingerprint: rotated.fingerprint, rowDigest: sealedRowDigest(rotated) },
        });
        return jsonResponse(200, secretView(rotated));
      },
    ],
    [
      'DELETE',
      '/vault/secrets/:provider/:name',
      async (req, params) => {
        const p = await auth(req);
        const deleted = await deps.store.deleteSecret(p.tenant.tenantId, params.provider, params.name, {
          type: 'secret.deleted',
          actor: actor(p),
          details: { provider: params.provider, name: params.name },
        });
        if (!deleted) throw new ApiError(404, 'secret_not_found', `No ${params.provider} secret named '${params.name}'.`);
        return jsonResponse(200, { deleted: true, provider: params.provider, name: params.name });
      },
    ],
    [
      'GET',
      '/vault/usage',
      async (req) => {
        const p = await auth(req);
        const q = parseUsageQuery(p.tenant.tenantId, req.query ?? {}, clock.now().getTime());
        const page = await queryUsagePage(deps.usage, q);
        return jsonResponse(200, {
          object: 'list',
          data: page.records.map(usageRecordView),
          next_cursor: page.nextCursor ?? null,
          from: q.from,
          to: q.to,
        });
      },
    ],
    [
      'GET',
      '/vault/policy',
      async (req) => {
        const p = await auth(req);
        const t = p.tenant;
        // Read-only for tenant admins: operators set the policy through the admin API.
        return jsonResponse(200, { tenantId: t.tenantId, region: t.region, mode: t.mode, status: t.status, policy: t.policy, token: tokenView(p.token) });
      },
    ],
    [
      'GET',
      '/vault/audit',
      async (req) => {
        const p = await auth(req);
        const { events, verification } = await readAuditVerification(deps.store, deps.audit, p.tenant);
        const newest = [...events].sort((a, b) => b.seq - a.seq).slice(0, AUDIT_PAGE);
        return jsonResponse(200, { object: 'list', data: newest, total: events.length, verification });
      },
    ],
    [
      'GET',
      '/vault/tokens',
      async (req) => {
        const p = await auth(req);
        const tokens = await deps.store.listTokens(p.tenant.tenantId);
        return jsonResponse(200, { object: 'list', data: tokens.map(tokenView) });
      },
    ],
    [
      'POST',
      '/vault/tokens',
      async (req) => {
        const p = await auth(req);
        const body = validate(createTokenBody, parseJsonBody(req, maxRequestBytes));
        const factor = factorOf(p);
        try {
          const { token, record } = await issueToken({ tenant: p.tenant, ...body, pepper: deps.pepper, clock, factor });
          await deps.store.putToken(record, {
            type: 'token.created',
            actor: actor(p),
            details: { tokenId: record.tokenId, role: record.role },
          });
          return jsonResponse(201, { ...tokenView(record), token, notice: 'Store this token now: it is shown only once.' });
        } finally {
          zeroize(factor);
        }
      },
    ],
    [
      'POST',
      '/vault/tokens/:tokenId/rotate',
      async (req, params) => {
        const p = await auth(req);
        const old = (await findListedToken((t) => deps.store.listTokens(t), p.tenant.tenantId, params.tokenId))?.token;
        if (!old) throw new ApiError(404, 'token_not_found', `No token ${params.tokenId}.`);
        const factor = factorOf(p);
        try {
          const { token, record } = await issueToken({
            tenant: p.tenant,
            role: old.role,
            label: old.label,
            limits: old.limits,
            pepper: deps.pepper,
            clock,
            factor,
          });
          const replaced = await deps.store.replaceToken(record, old.tokenId, {
            type: 'token.rotated',
            actor: actor(p),
            details: { previousTokenId: old.tokenId, tokenId: record.tokenId, role: record.role },
          });
          if (!replaced) throw new ApiError(409, 'token_changed', 'The token was revoked or rotated meanwhile.');
          return jsonResponse(201, { ...tokenView(record), previousTokenId: old.tokenId, token, notice: 'Store this token now: it is shown only once.' });
        } finally {
          zeroize(factor);
        }
      },
    ],
    [
      'DELETE',
      '/vault/tokens/:tokenId',
      async (req, params) => {
        const p = await auth(req);
        const listed = await findListedToken((t) => deps.store.listTokens(t), p.tenant.tenantId, params.tokenId);
        if (!listed) throw new ApiError(404, 'token_not_found', `No token ${params.tokenId}.`);
        const { token: target, tokens } = listed;
        const admins = tokens.filter((t) => t.role === 'tenant-admin');
        if (target.role === 'tenant-admin' && admins.length === 1) {
          throw new ApiError(409, 'last_admin_token', 'This is the last tenant-admin token; create another one before revoking it.');
        }
        const deleted = await deps.store.deleteToken(p.tenant.tenantId, params.tokenId, {
          type: 'token.revoked',
          actor: actor(p),
          details: { tokenId: params.tokenId, role: target.role },
        });
        if (!deleted) throw new ApiError(404, 'token_not_found', `No token ${params.tokenId}.`);
        return jsonResponse(200, { revoked: true, tokenId: params.tokenId });
      },
    ],
  ];

  return async (req) => {
    try {
      // The console's static assets: public, token-free, served by this function (no extra infrastructure).
      const page = serveConsole(req);
      if (page) return page;
      return await dispatch(routes, req);
    } catch (err) {
      const mapped = mapKnownErrors(err);
      // Client errors (4xx) are expected; unmapped errors and service failures (5xx) are logged.
      if (!(mapped instanceof ApiError) || mapped.status >= 500) deps.onError?.(err);
      return errorResponse(mapped);
    }
  };
}

/** Domain errors that are the client's or a conflict, as API errors; the rest stay unknown (500). */
export function mapKnownErrors(err: unknown): unknown {
  if (err instanceof ApiError) return err;
  const name = (err as { name?: string } | undefined)?.name;
  if (name === 'LastAdminTokenError') return new ApiError(409, 'last_admin_token', (err as Error).message);
  if (name === 'ConflictError') return new ApiError(409, 'conflict', (err as Error).message);
  if (name === 'TenantFactorError') {
    return new ApiError(403, 'tenant_factor_unavailable', 'This token cannot unwrap the tenant factor.');
  }
  if (name === 'StoredRecordError') return storedRecordApiError();
  if (isTenantKeyRefusal(err)) return tenantKeyUnavailable();
  if (name === 'KeyServiceError') {
    const reason = (err as { reason?: string }).reason;
    if (reason === 'unavailable') return new ApiError(503, 'key_service_unavailable', 'The key service is unavailable; retry later.');
  }
  return err;
}
