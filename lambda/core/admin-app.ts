import { tenantKeyProblem } from './tenant-keys';
import { z } from 'zod';
import { AUDIT_GENESIS } from './audit-chain';
import { AuditReadPorts, readAuditVerification } from './audit-read';
import type { CellConfig } from './cell-config';
import { zeroize } from './crypto-util';
import { ApiError, errorResponse, HttpRequest, HttpResponse, jsonResponse, parseJsonBody } from './http';
import type { Clock, DataKeyService, PepperRotator, PepperSource } from './ports';
import { pepperStatus, rotatePepper } from './pepper-operations';
import { CELL_AUDIT_ID } from './store';
import { findListedToken } from './listed-token';
import { runFactorChange, type FactorChangeKind } from './lifecycle/factor-change';
import { systemClock } from './ports';
import { dispatch, Route } from './route-table';
import type { OffboardCounts, TenantStore } from './store';
import { effectiveTokenView, limitsProblems } from './governance/limits';
import { isMonthKey, monthKey } from './governance/periods';
import { usageReport, usageReportKeys } from './governance/usage-report';
import { Limits, limitsSchema, TenantRecord, tenantIdSchema, tenantPolicySchema, tenantView, TokenRecord, tokenView } from './tenant-model';
import { generateTenantFactor } from './tenant-factor';
import { validate } from './validation';
import { issueToken, mapKnownErrors, secretView } from './vault-app';

export interface AdminDeps {
  readonly config: Pick<CellConfig, 'region' | 'maxRequestBytes'>;
  readonly store: TenantStore;
  readonly pepper: PepperSource;
  /** Rotates the pepper (the same adapter as `pepper`); without it, rotation answers 501. */
  readonly pepperRotator?: PepperRotator;
  /** The audit key (VerifyMac) and the anchors (read), for verifying trails. */
  readonly audit: AuditReadPorts;
  readonly clock?: Clock;
  readonly onError?: (err: unknown) => void;
  /**
   * Key lifecycle (factor rotation, managed <-> sovereign conversion): a data-key service that can
   * both Decrypt and GenerateDataKey, because a reseal opens each secret and seals it again. The
   * deployed admin function has it only while the cell sets `keyLifecycle: true`; otherwise these
   * routes answer 501. The local gateway passes its root key.
   * @default undefined
   */
  readonly keyLifecycle?: DataKeyService;
}

const factorChangeBody = z.object({ token: z.string().min(1).max(256) }).strict();
const convertBody = z.object({ to: z.enum(['sovereign', 'managed']), token: z.string().min(1).max(256) }).strict();

const createTenantBody = z
  .object({
    tenantId: tenantIdSchema,
    mode: z.enum(['managed', 'sovereign']).default('managed'),
    policy: tenantPolicySchema.default({}),
    label: z.string().max(64).regex(/^[\x20-\x7e]*$/).optional(),
  })
  .strict();
const updatePolicyBody = z.object({ policy: tenantPolicySchema }).strict();
const updateTokenLimitsBody = z.object({ limits: limitsSchema }).strict();
const rotatePepperBody = z.object({ expectedVersion: z.number().int().min(1).optional(), force: z.boolean().optional() }).strict();

/** A tenant-held key is registered only if it is a single-Region key of this cell's region. */
function checkTenantKey(policy: { tenantKeyArn?: string }, region: string): void {
  const problem = policy.tenantKeyArn === undefined ? undefined : tenantKeyProblem(policy.tenantKeyArn, region);
  if (problem) throw new ApiError(400, 'invalid_tenant_key', `Invalid request body: policy.${problem}`);
}

/**
 * Secrets sealed under one root (the cell's key or a tenant-held key) open only under it: moving a
 * tenant to another root while it has secrets would make every one of them unopenable.
 */
function checkTenantKeyMove(tenant: TenantRecord, policy: { tenantKeyArn?: string }): void {
  if (policy.tenantKeyArn === tenant.policy.tenantKeyArn) return;
  const secrets = Object.keys(tenant.secretVersions ?? {}).length;
  if (secrets > 0) {
    throw new ApiError(
      409,
      'tenant_key_in_use',
      `Tenant '${tenant.tenantId}' has ${secrets} secret(s) sealed under its current key; delete them, change the key, then store them again.`,
    );
  }
}

/** Semantic checks the schemas' regexes cannot make (IP ranges that parse). */
function checkLimits(limits: Limits, where: string): void {
  const problems = limitsProblems(limits, where);
  if (problems.length > 0) throw new ApiError(400, 'invalid_request', `Invalid request body: ${problems.join('; ')}`);
}

/**
 * Operator API behind AWS_IAM: tenants, policies, token limits, usage, offboarding and audit. It holds no
 * cryptographic permission: it can create a tenant and its first token, but open no secret.
 */
export function createAdminApp(deps: AdminDeps): (req: HttpRequest) => Promise<HttpResponse> {
  const clock = deps.clock ?? systemClock;
  const { region, maxRequestBytes } = deps.config;
  const actor = (req: HttpRequest) => `iam:${req.iamCaller}`;

  const tenantOr404 = async (id: string): Promise<TenantRecord> => {
    validate(tenantIdSchema, id, 'tenant id');
    const tenant = await deps.store.getTenant(id);
    if (!tenant) throw new ApiError(404, 'tenant_not_found', `No tenant '${id}' in ${region}.`);
    return tenant;
  };
  const tokenOr404 = async (tenant: TenantRecord, tokenId: string): Promise<TokenRecord> => {
    const listed = await findListedToken((t) => deps.store.listTokens(t), tenant.tenantId, tokenId);
    if (!listed) throw new ApiError(404, 'token_not_found', `No token ${tokenId}.`);
    return listed.token;
  };
  const tokenLimitsView = (tenant: TenantRecord, token: TokenRecord) => ({
    tokenId: token.tokenId,
    limits: token.limits ?? {},
    effective: effectiveTokenView(tenant.policy, token.limits),
  });
  /** Month spend and reservations against budgets, and the current minute against RPM/TPM. */
  const usageOf = async (tenant: TenantRecord, period?: string) => {
    const now = clock.now().getTime();
    const tokens = await deps.store.listTokens(tenant.tenantId);
    const items = await deps.store.getCounterItems(usageReportKeys(tenant.tenantId, tokens, now, period ?? monthKey(now)));
    return usageReport({ tenant, tokens, items, now, period });
  };
  const verifyTrail = (tenant: TenantRecord) => readAuditVerification(deps.store, deps.audit, tenant);
  const pepperOps = { region, store: deps.store, pepper: deps.pepper, rotator: deps.pepperRotator };
  const activeOr409 = (t: TenantRecord): TenantRecord => {
    if (t.status !== 'active') throw new ApiError(409, 'tenant_offboarded', `Tenant '${t.tenantId}' was offboarded at ${t.offboardedAt}.`);
    return t;
  };

  /** Runs (or resumes) a factor change with the tenant-admin token from the body. */
  const factorChange = async (req: HttpRequest, tenantId: string, kind: FactorChangeKind, token: string) => {
    activeOr409(await tenantOr404(tenantId));
    if (!deps.keyLifecycle) {
      throw new ApiError(
        501,
        'key_lifecycle_unavailable',
        'This admin function holds no root-key permission, so it cannot reseal secrets; deploy the cell with keyLifecycle: true for the maintenance (see README, Operations).',
      );
    }
    const report = await runFactorChange({ region, store: deps.store, pepper: deps.pepper, dataKeys: deps.keyLifecycle, clock }, { tenantId, kind, token, actor: actor(req) });
    return jsonResponse(200, report);
  };

  const routes: Route[] = [
    [
      'POST',
      '/admin/tenants/:tenantId/factor/rotate',
      async (req, params) => {
        const body = validate(factorChangeBody, parseJsonBody(req, maxRequestBytes));
        return factorChange(req, params.tenantId, 'rotate', body.token);
      },
    ],
    [
      'POST',
      '/admin/tenants/:tenantId/convert',
      async (req, params) => {
        const body = validate(convertBody, parseJsonBody(req, maxRequestBytes));
        return factorChange(req, params.tenantId, body.to === 'sovereign' ? 'to-sovereign' : 'to-managed', body.token);
      },
    ],
    [
      'POST',
      '/admin/tenants',
      async (req) => {
        const body = validate(createTenantBody, parseJsonBody(req, maxRequestBytes));
        checkLimits(body.policy, 'policy');
        checkTenantKey(body.policy, region);
        const now = clock.now().toISOString();
        const tenant: TenantRecord = {
          tenantId: body.tenantId,
          region,
          mode: body.mode,
          status: 'active',
          policy: body.policy,
          createdAt: now,
          updatedAt: now,
          auditSeq: 0,
          auditHead: AUDIT_GENESIS,
        };
        const factor = body.mode === 'sovereign' ? generateTenantFactor() : undefined;
        try {
          const { token, record } = await issueToken({
            tenant,
            role: 'tenant-admin',
            label: body.label ?? 'first tenant-admin token',
            pepper: deps.pepper,
            clock,
            factor,
          });
          try {
            await deps.store.createTenant(tenant, record, {
              type: 'tenant.created',
              actor: actor(req),
              details: { mode: body.mode, firstTokenId: record.tokenId },
            });
          } catch (err) {
            if ((err as Error).name === 'ConflictError') {
              throw new ApiError(409, 'tenant_exists', `Tenant '${body.tenantId}' already exists in ${region}.`);
            }
            throw err;
          }
          return jsonResponse(201, {
            tenant: tenantView(tenant),
            token,
            tokenId: record.tokenId,
            notice: 'Store this tenant-admin token now: it is shown only once.',
          });
        } finally {
          // The factor now exists only wrapped under the first token.
          zeroize(factor);
        }
      },
    ],
    [
      'GET',
      '/admin/tenants/:tenantId',
      async (_req, params) => {
        const tenant = await tenantOr404(params.tenantId);
        const [secrets, tokens] = await Promise.all([deps.store.listSecrets(tenant.tenantId), deps.store.listTokens(tenant.tenantId)]);
        return jsonResponse(200, { ...tenantView(tenant), secrets: secrets.map(secretView), tokens: tokens.map(tokenView) });
      },
    ],
    [
      'GET',
      '/admin/tenants/:tenantId/policy',
      async (_req, params) => jsonResponse(200, { policy: (await tenantOr404(params.tenantId)).policy }),
    ],
    [
      'PUT',
      '/admin/tenants/:tenantId/policy',
      async (req, params) => {
        const current = await tenantOr404(params.tenantId);
        activeOr409(current);
        const body = validate(updatePolicyBody, parseJsonBody(req, maxRequestBytes));
        checkLimits(body.policy, 'policy');
        checkTenantKey(body.policy, region);
        checkTenantKeyMove(current, body.policy);
        const updated = await deps.store.updatePolicy(params.tenantId, body.policy, {
          type: 'policy.updated',
          actor: actor(req),
          // The tenant-held key is part of the record: who moved a tenant's root, and to which key.
          details: { keys: Object.keys(body.policy).sort().join(','), ...(body.policy.tenantKeyArn ? { tenantKeyArn: body.policy.tenantKeyArn } : {}) },
        });
        return jsonResponse(200, { policy: updated.policy });
      },
    ],
    [
      'GET',
      '/admin/tenants/:tenantId/tokens',
      async (_req, params) => {
        const tenant = await tenantOr404(params.tenantId);
        return jsonResponse(200, { object: 'list', data: (await deps.store.listTokens(tenant.tenantId)).map(tokenView) });
      },
    ],
    [
      'DELETE',
      '/admin/tenants/:tenantId/tokens/:tokenId',
      async (req, params) => {
        activeOr409(await tenantOr404(params.tenantId));
        const deleted = await deps.store.deleteToken(params.tenantId, params.tokenId, {
          type: 'token.revoked',
          actor: actor(req),
          details: { tokenId: params.tokenId },
        });
        if (!deleted) throw new ApiError(404, 'token_not_found', `No token ${params.tokenId}.`);
        return jsonResponse(200, { revoked: true, tokenId: params.tokenId });
      },
    ],
    [
      'DELETE',
      '/admin/tenants/:tenantId',
      async (req, params) => {
        const tenant = await tenantOr404(params.tenantId);
        // `offboarding`: an interrupted offboarding, finished by running it again.
        if (tenant.status !== 'offboarding') activeOr409(tenant);
        // Crypto-shredding: the store destroys the tenant's erasure key before any row (store.ts).
        const outcome = (c: OffboardCounts) => ({
          secretsDestroyed: c.secrets,
          tokensRevoked: c.tokens,
          erasureKeyDestroyed: true,
          // v1 rows predate erasure keys: deleted, but a backup taken before still holds them.
          legacySecretsNotShredded: c.legacySecrets,
        });
        const counts = await deps.store.offboardTenant(params.tenantId, (c) => ({ type: 'tenant.offboarded', actor: actor(req), details: outcome(c) }));
        return jsonResponse(200, { offboarded: true, tenantId: params.tenantId, ...outcome(counts) });
      },
    ],
    [
      'GET',
      '/admin/tenants/:tenantId/tokens/:tokenId/limits',
      async (_req, params) => {
        const tenant = await tenantOr404(params.tenantId);
        const token = await tokenOr404(tenant, params.tokenId);
        return jsonResponse(200, tokenLimitsView(tenant, token));
      },
    ],
    [
      'PUT',
      '/admin/tenants/:tenantId/tokens/:tokenId/limits',
      async (req, params) => {
        const tenant = activeOr409(await tenantOr404(params.tenantId));
        const body = validate(updateTokenLimitsBody, parseJsonBody(req, maxRequestBytes));
        checkLimits(body.limits, 'limits');
        const updated = await deps.store.updateTokenLimits(tenant.tenantId, params.tokenId, body.limits, {
          type: 'token.limits_updated',
          actor: actor(req),
          details: { tokenId: params.tokenId, keys: Object.keys(body.limits).sort().join(',') },
        });
        if (!updated) throw new ApiError(404, 'token_not_found', `No token ${params.tokenId}.`);
        return jsonResponse(200, tokenLimitsView(tenant, updated));
      },
    ],
    [
      'GET',
      '/admin/tenants/:tenantId/usage',
      async (_req, params) => jsonResponse(200, await usageOf(await tenantOr404(params.tenantId))),
    ],
    [
      'GET',
      '/admin/tenants/:tenantId/usage/:period',
      async (_req, params) => {
        const tenant = await tenantOr404(params.tenantId);
        if (!isMonthKey(params.period)) throw new ApiError(400, 'invalid_request', 'The period must be a month, YYYY-MM.');
        return jsonResponse(200, await usageOf(tenant, params.period));
      },
    ],
    [
      'GET',
      '/admin/tenants/:tenantId/audit',
      async (_req, params) => {
        const { events, verification } = await verifyTrail(await tenantOr404(params.tenantId));
        return jsonResponse(200, { object: 'list', data: events, verification });
      },
    ],
    [
      'GET',
      '/admin/tenants/:tenantId/audit/verify',
      async (_req, params) => jsonResponse(200, (await verifyTrail(await tenantOr404(params.tenantId))).verification),
    ],
    // Pepper rotation (README: Operations). Status never shows a pepper or a verifier.
    ['GET', '/admin/pepper', async () => jsonResponse(200, await pepperStatus(pepperOps))],
    [
      'POST',
      '/admin/pepper/rotate',
      async (req) => {
        const body = validate(rotatePepperBody, req.body ? parseJsonBody(req, maxRequestBytes) : {});
        return jsonResponse(200, await rotatePepper(pepperOps, { actor: actor(req), expectedVersion: body.expectedVersion, force: body.force }));
      },
    ],
    [
      'GET',
      '/admin/cell/audit',
      async () => {
        const chain = await deps.store.getTenant(CELL_AUDIT_ID);
        if (!chain) return jsonResponse(200, { object: 'list', data: [], verification: { ok: true, tenantId: CELL_AUDIT_ID, events: 0, lastSeq: 0, anchoredThrough: 0, findings: [], unanchored: [] } });
        const { events, verification } = await verifyTrail(chain);
        return jsonResponse(200, { object: 'list', data: events, verification });
      },
    ],
  ];

  return async (req) => {
    try {
      // API Gateway's AWS_IAM authorizer names the caller; without one, the API was deployed
      // without IAM auth, and nothing here may run.
      if (!req.iamCaller) throw new ApiError(403, 'iam_auth_required', 'Admin routes require AWS_IAM (SigV4) authorization.');
      return await dispatch(routes, req);
    } catch (err) {
      const mapped = mapKnownErrors(err);
      if (!(mapped instanceof ApiError) || mapped.status >= 500) deps.onError?.(err);
      return errorResponse(mapped);
    }
  };
}
