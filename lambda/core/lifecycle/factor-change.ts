/**
 * Tenant-factor rotation and managed <-> sovereign conversion: one resumable job, three kinds.
 * Generation 0 is managed (no factor); a sovereign tenant's factor F has a generation >= 1.
 *
 *   start    META records the change {kind, from, to} (audited), with the presenting token's box
 *   wrap     the new factor is sealed to every live token's public key (pendingFactor)
 *   reseal   each secret: open under `from`, seal at version+1 under `to`, row + META entry in one
 *            audited transaction; the plaintext exists for that one reseal only
 *   finish   META takes the new mode/generation and drops the change (audited), only when every
 *            entry is at `to`
 *   promote  each token's box becomes its wrap (or, to managed, the wrap is removed)
 *
 * Every stage is idempotent: running the job again after a crash (with a tenant-admin token that
 * has the new factor, e.g. the one that started it) carries on where it stopped. Meanwhile the
 * router opens rows of both generations, and no other secret or token write can land.
 * Design and the backup argument: docs/sealed-secret-format.md §5.
 */
import { randomBytes } from 'node:crypto';
import { authenticate, type Principal } from '../authenticate';
import type { SecretIdentity } from '../canonical';
import { zeroize } from '../crypto-util';
import { fingerprintKeyOf, openSecret, sealSecret, VERSION_SALT_BYTES, type SealedSecret } from '../envelope';
import { tenantErasureKey } from '../erasure-key';
import { sealFactorBox, tokenKeyIsAuthentic, tokenKeyTag, tokenPublicKey } from '../factor-box';
import { entryGeneration, factorForGeneration, tenantGeneration, wrapGeneration } from '../factor-generations';
import { ApiError } from '../http';
import { sealedRowDigest } from '../sealed-digest';
import type { Clock, DataKeyService, PepperSource } from '../ports';
import { systemClock } from '../ports';
import type { TenantStore, TokenFactorUpdate } from '../store';
import { generateTenantFactor, type FactorBinding } from '../tenant-factor';
import type { FactorChange, SecretVersionEntry, TenantMode, TenantRecord, TokenRecord } from '../tenant-model';

export type FactorChangeKind = FactorChange['kind'];

export interface FactorChangeDeps {
  readonly region: string;
  readonly store: TenantStore;
  readonly pepper: PepperSource;
  /** Both GenerateDataKey and Decrypt: a reseal opens a row and seals it again. */
  readonly dataKeys: DataKeyService;
  readonly clock?: Clock;
}

export interface FactorChangeRequest {
  readonly tenantId: string;
  readonly kind: FactorChangeKind;
  /** A live tenant-admin token of the tenant (never stored, never logged). */
  readonly token: string;
  /** Who runs it, for the audit trail (`iam:<ARN>`). */
  readonly actor: string;
}

export interface FactorChangeReport {
  readonly tenantId: string;
  readonly kind: FactorChangeKind;
  readonly fromGeneration: number;
  readonly toGeneration: number;
  readonly mode: TenantMode;
  /** True when a change found in progress was carried on. */
  readonly resumed: boolean;
  readonly tokensRewrapped: number;
  readonly secretsResealed: number;
  readonly tokensPromoted: number;
}

/** What a kind means for a tenant in its current state (409 when it does not apply). */
export function planFactorChange(tenant: TenantRecord, kind: FactorChangeKind, startedAt: string): FactorChange {
  const from = tenantGeneration(tenant);
  const fail = (why: string) => new ApiError(409, 'factor_change_not_applicable', why);
  if (kind === 'rotate') {
    if (from === 0) throw fail(`Tenant '${tenant.tenantId}' is managed: it has no tenant factor to rotate.`);
    return { kind, fromGeneration: from, toGeneration: from + 1, startedAt };
  }
  if (kind === 'to-sovereign') {
    if (from !== 0) throw fail(`Tenant '${tenant.tenantId}' is already sovereign.`);
    // A generation the tenant never used, so no leftover box of an earlier sovereign period matches.
    return { kind, fromGeneration: 0, toGeneration: (tenant.factorGeneration ?? 0) + 1, startedAt };
  }
  if (from === 0) throw fail(`Tenant '${tenant.tenantId}' is already managed.`);
  return { kind, fromGeneration: from, toGeneration: 0, startedAt };
}

const bindingOf = (tenant: TenantRecord, t: TokenRecord): Omit<FactorBinding, 'token'> => ({ region: tenant.region, tenant: tenant.tenantId, tokenId: t.tokenId });

/** Runs (or resumes) a factor change to its end. */
export async function runFactorChange(deps: FactorChangeDeps, req: FactorChangeRequest): Promise<FactorChangeReport> {
  const clock = deps.clock ?? systemClock;
  const p = await authenticate(req.token, { region: deps.region, pepper: deps.pepper, store: deps.store }, 'tenant-admin');
  if (p.tenant.tenantId !== req.tenantId) throw new ApiError(403, 'wrong_tenant', `The token does not belong to tenant '${req.tenantId}'.`);
  const tenant = p.tenant;
  const resumed = tenant.factorChange !== undefined;
  // A reseal opens each secret: under a tenant-held key that needs the tenant's key, which the admin
  // role may not use (and must not: the tenant's revocation has to stay final). Refused before
  // anything is written, so the tenant is never left half-changed.
  if (!resumed && tenant.policy.tenantKeyArn !== undefined) {
    throw new ApiError(
      409,
      'tenant_key_not_supported',
      `Tenant '${tenant.tenantId}' holds its own KMS key: its factor cannot be rotated nor its mode converted by the cell. Store its secrets again instead.`,
    );
  }
  if (tenant.factorChange && tenant.factorChange.kind !== req.kind) {
    throw new ApiError(409, 'factor_change_in_progress', `A '${tenant.factorChange.kind}' change of tenant '${tenant.tenantId}' is in progress; run that one again to finish it.`);
  }
  const change = tenant.factorChange ?? planFactorChange(tenant, req.kind, clock.now().toISOString());
  const binding: FactorBinding = { token: p.parsed.token, ...bindingOf(tenant, p.token) };

  let oldFactor: Buffer | undefined;
  let newFactor: Buffer | undefined;
  try {
    if (change.fromGeneration > 0) {
      oldFactor = factorForGeneration(p.token, binding, change.fromGeneration);
      if (!oldFactor) throw new ApiError(403, 'token_without_factor', 'This token holds no wrap of the current tenant factor.');
    }
    if (resumed) {
      if (change.toGeneration > 0) {
        newFactor = factorForGeneration(p.token, binding, change.toGeneration);
        if (!newFactor) {
          throw new ApiError(409, 'token_without_new_factor', 'This token has not received the new factor yet; resume with the token that started the change.');
        }
      }
    } else {
      newFactor = change.toGeneration > 0 ? generateTenantFactor() : undefined;
      await start(deps, p, change, binding, oldFactor, newFactor, req.actor);
    }
    const tokensRewrapped = await wrapForEveryToken(deps, tenant, change, oldFactor, newFactor);
    const secretsResealed = await resealEverySecret(deps, tenant.tenantId, change, oldFactor, newFactor, req.actor, clock);
    // Again, right before the finish: a box lost to a concurrent verifier move is made again.
    await wrapForEveryToken(deps, tenant, change, oldFactor, newFactor);
    const to = { mode: (change.toGeneration === 0 ? 'managed' : 'sovereign') as TenantMode, generation: change.toGeneration };
    await deps.store.finishFactorChange(tenant.tenantId, to, {
      type: change.kind === 'rotate' ? 'tenant.factor_rotated' : 'tenant.converted',
      actor: req.actor,
      details: { kind: change.kind, fromGeneration: change.fromGeneration, toGeneration: change.toGeneration, secretsResealed, tokensRewrapped, resumed },
    });
    const tokensPromoted = await promoteTokens(deps.store, tenant, change.toGeneration, newFactor && { factor: newFactor, oldFactor });
    return { tenantId: tenant.tenantId, kind: change.kind, fromGeneration: change.fromGeneration, toGeneration: change.toGeneration, mode: to.mode, resumed, tokensRewrapped, secretsResealed, tokensPromoted };
  } finally {
    zeroize(oldFactor, newFactor);
  }
}

/** The box and the key tag a token gets for the new factor. */
function pendingFor(tenant: TenantRecord, token: TokenRecord, publicKey: string, factor: Buffer, generation: number): TokenFactorUpdate {
  const b = bindingOf(tenant, token);
  return { pendingFactor: { box: sealFactorBox(factor, generation, b, publicKey), keyTag: tokenKeyTag(factor, b, publicKey) } };
}

/**
 * A token's public key, if it may receive the new factor: under a factor, its tag must verify
 * with the current one (a table writer cannot plant a key); while managed there is no factor to
 * tag with, so the key as stored is taken (docs/sealed-secret-format.md §5.3).
 */
function trustedKeyOf(tenant: TenantRecord, token: TokenRecord, oldFactor: Buffer | undefined): string | undefined {
  const key = token.factorKey;
  if (!key || typeof key.publicKey !== 'string') return undefined;
  if (oldFactor) return tokenKeyIsAuthentic(oldFactor, bindingOf(tenant, token), key) ? key.publicKey : undefined;
  return key.publicKey;
}

/** Stage 1: checks every live token can receive the new factor, then records the change. */
async function start(
  deps: FactorChangeDeps,
  p: Principal,
  change: FactorChange,
  binding: FactorBinding,
  oldFactor: Buffer | undefined,
  newFactor: Buffer | undefined,
  actor: string,
): Promise<void> {
  const tenant = p.tenant;
  // Leftovers of an earlier change that finished but crashed before promoting every token.
  await promoteTokens(deps.store, tenant, tenantGeneration(tenant));
  const tokens = await deps.store.listTokens(tenant.tenantId);
  if (newFactor) {
    const ownKey = tokenPublicKey(binding);
    const unusable = tokens.filter((t) => (t.tokenId === p.token.tokenId ? p.token.factorKey?.publicKey !== ownKey : trustedKeyOf(tenant, t, oldFactor) === undefined));
    if (unusable.length > 0) {
      throw new ApiError(
        409,
        'tokens_without_key',
        `Token(s) ${unusable.map((t) => t.tokenId).join(', ')} have no public key the new factor can be sealed to (issued before factor rotation existed, or the key failed its check); rotate or revoke them, then run again.`,
      );
    }
  }
  await deps.store.beginFactorChange(
    tenant.tenantId,
    change,
    newFactor ? { verifier: p.token.verifier, update: pendingFor(tenant, p.token, tokenPublicKey(binding), newFactor, change.toGeneration) } : undefined,
    {
      type: 'tenant.factor_change_started',
      actor,
      details: { kind: change.kind, fromGeneration: change.fromGeneration, toGeneration: change.toGeneration, tokens: tokens.length, secrets: Object.keys(tenant.secretVersions ?? {}).length },
    },
  );
}

/**
 * Stage 2: a box of the new factor for every live token that has none yet. Repeated until a pass
 * finds nothing to do: a token moved meanwhile to a new verifier (pepper upgrade on use) is
 * listed again under its new key.
 */
async function wrapForEveryToken(deps: FactorChangeDeps, tenant: TenantRecord, change: FactorChange, oldFactor: Buffer | undefined, newFactor: Buffer | undefined): Promise<number> {
  if (!newFactor) return 0;
  let wrapped = 0;
  for (let pass = 0; pass < WRAP_PASSES; pass++) {
    const lacking = (await deps.store.listTokens(tenant.tenantId)).filter((t) => t.pendingFactor?.box.generation !== change.toGeneration);
    if (lacking.length === 0) return wrapped;
    for (const t of lacking) {
      const publicKey = trustedKeyOf(tenant, t, oldFactor);
      if (!publicKey) throw new ApiError(409, 'tokens_without_key', `Token ${t.tokenId} has no public key the new factor can be sealed to; revoke it, then run again.`);
      if (await deps.store.updateTokenFactor(tenant.tenantId, t.verifier, pendingFor(tenant, t, publicKey, newFactor, change.toGeneration))) wrapped++;
    }
  }
  throw new ApiError(409, 'tokens_changing', 'The tenant\'s tokens kept changing while the new factor was being wrapped; run the command again.');
}

const WRAP_PASSES = 5;

/** Stage 3: every secret META records at another generation, resealed one at a time. */
async function resealEverySecret(
  deps: FactorChangeDeps,
  tenantId: string,
  change: FactorChange,
  oldFactor: Buffer | undefined,
  newFactor: Buffer | undefined,
  actor: string,
  clock: Clock,
): Promise<number> {
  const tenant = await deps.store.getTenant(tenantId);
  if (!tenant) throw new ApiError(404, 'tenant_not_found', `No tenant '${tenantId}'.`);
  let resealed = 0;
  for (const [slot, entry] of Object.entries(tenant.secretVersions ?? {})) {
    if (entryGeneration(entry) === change.toGeneration) continue;
    await resealOne(deps, tenant, slot, entry, change, oldFactor, newFactor, actor, clock);
    resealed++;
  }
  return resealed;
}

async function resealOne(
  deps: FactorChangeDeps,
  tenant: TenantRecord,
  slot: string,
  entry: SecretVersionEntry,
  change: FactorChange,
  oldFactor: Buffer | undefined,
  newFactor: Buffer | undefined,
  actor: string,
  clock: Clock,
): Promise<void> {
  const hash = slot.indexOf('#');
  const provider = slot.slice(0, hash);
  const name = slot.slice(hash + 1);
  if (entryGeneration(entry) !== change.fromGeneration) throw new ApiError(500, 'factor_change_inconsistent', `The ${provider} secret '${name}' is at an unexpected factor generation.`);
  const row = await deps.store.getSecret(tenant.tenantId, provider, name);
  if (!row || row.version !== entry.version) {
    throw new ApiError(409, 'secret_not_current', `The ${provider} secret '${name}' row is not the version the tenant records; delete the secret (or restore its row), then run again.`);
  }
  const id = (version: number): SecretIdentity => ({ app: 'sovereign-router', region: tenant.region, tenant: tenant.tenantId, provider, secret: name, version });
  const version = entry.version + 1;
  const oldSalt = entry.salt === undefined ? undefined : Buffer.from(entry.salt, 'base64');
  const newSalt = newFactor ? randomBytes(VERSION_SALT_BYTES) : undefined;
  let fingerprintKey: Buffer | undefined;
  let erasureKey: Buffer | undefined;
  let sealed: SealedSecret;
  try {
    fingerprintKey = fingerprintKeyOf(await deps.pepper.getPepper(), { region: tenant.region, tenant: tenant.tenantId, provider });
    const key = fingerprintKey;
    // The tenant's erasure key opens a v2 row and goes into the reseal (a v1 row becomes v2 here).
    erasureKey = await tenantErasureKey(deps.store, tenant.tenantId);
    const erasure = erasureKey;
    // The plaintext exists only inside `use`, for one GenerateDataKey and one AES-GCM seal;
    // openSecret zero-fills it as soon as `use` settles.
    sealed = await openSecret({
      record: row,
      expected: id(entry.version),
      dataKeys: deps.dataKeys,
      tenantFactor: oldFactor,
      versionSalt: oldFactor ? oldSalt : undefined,
      erasureKey: erasure,
      use: (plaintext) => sealSecret({ identity: id(version), plaintext, dataKeys: deps.dataKeys, tenantFactor: newFactor, versionSalt: newSalt, fingerprintKey: key, erasureKey: erasure, clock }),
    });
  } finally {
    zeroize(fingerprintKey, oldSalt, erasureKey);
  }
  // Not a rotation of the provider key: the row keeps its dates.
  const row2: SealedSecret = { ...sealed, createdAt: row.createdAt, ...(row.rotatedAt ? { rotatedAt: row.rotatedAt } : {}) };
  const current: SecretVersionEntry = newSalt ? { version, salt: newSalt.toString('base64'), generation: change.toGeneration } : { version };
  await deps.store.putSecret(
    { sealed: row2, current, expectedVersion: entry.version, factorChange: true },
    {
      type: 'secret.resealed',
      actor,
      details: { provider, name, version, fromGeneration: change.fromGeneration, toGeneration: change.toGeneration, fingerprint: row2.fingerprint, rowDigest: sealedRowDigest(row2) },
    },
  );
}

/**
 * Stage 5: boxes of the now-current generation become the tokens' wraps (to managed: no wrap).
 * With the new factor at hand, a token that lost its box to a race gets one sealed directly.
 */
async function promoteTokens(
  store: TenantStore,
  tenant: TenantRecord,
  generation: number,
  factors?: { factor: Buffer; oldFactor: Buffer | undefined },
): Promise<number> {
  let promoted = 0;
  for (const t of await store.listTokens(tenant.tenantId)) {
    let update: TokenFactorUpdate | undefined;
    if (generation === 0) {
      if (t.wrappedFactor || t.pendingFactor || t.factorKey?.tag) {
        update = { wrappedFactor: null, pendingFactor: null, ...(t.factorKey ? { factorKey: { publicKey: t.factorKey.publicKey } } : {}) };
      }
    } else if (t.pendingFactor?.box.generation === generation && t.factorKey) {
      update = { wrappedFactor: t.pendingFactor.box, pendingFactor: null, factorKey: { publicKey: t.factorKey.publicKey, tag: t.pendingFactor.keyTag, generation } };
    } else if (wrapGeneration(t.wrappedFactor) !== generation && factors) {
      const publicKey = trustedKeyOf(tenant, t, factors.oldFactor);
      if (publicKey) {
        const p = pendingFor(tenant, t, publicKey, factors.factor, generation).pendingFactor!;
        update = { wrappedFactor: p.box, pendingFactor: null, factorKey: { publicKey, tag: p.keyTag, generation } };
      }
    } else if (t.pendingFactor) {
      update = { pendingFactor: null }; // a box of a change that did not finish at this generation
    }
    if (update && (await store.updateTokenFactor(tenant.tenantId, t.verifier, update))) promoted++;
  }
  return promoted;
}
