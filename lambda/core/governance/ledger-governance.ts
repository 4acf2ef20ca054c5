/**
 * Governance over any GovernanceLedger: budgets, RPM/TPM and reservations made exact with
 * conditional, all-or-nothing writes. Shared by the DynamoDB and the embedded adapters, which only
 * map ledger writes onto their store.
 *
 * Invariant: every write keeps committed = spent + reserved on both spend items, reserve only
 * raises committed when the result stays within the budget, and settle lowers it (cost ≤
 * reservation). So settled spend never exceeds a budget while real costs stay within their
 * reservations; see `promptReserveFactor` for when they might not (the overrun is logged).
 *
 * Denials and their price: `check` judges the counters read in the router's one read, so a
 * tenant or token already at its budget (settled spend), RPM or TPM is denied before any KMS or
 * provider call. Only a race lost between that read and the conditional write, or budget held by
 * requests still in flight, is denied by `reserve`: that runs in parallel with the KMS Decrypt, so
 * it may cost that one KMS call, never a provider call (the provider waits for the reservation).
 *
 * Reservations carry `reclaimAfter` (deadline + margin). Their stored expiry is weeks later on
 * purpose: if a TTL deleted a reservation before anyone gave its amount back, that amount would
 * stay counted as reserved for the rest of the month.
 *
 * Requests that no budget, RPM or TPM governs (tenant and token) make no reservation: nothing is
 * written before the provider, and one unreserved settle after the last byte records their spend.
 *
 * Failures: a reservation that cannot be written (store unreachable) fails closed with 503. Settle and
 * release never throw (the answer is already with the client); they log, and an unreleased
 * reservation is reclaimed after it expires.
 */
import { createHash } from 'node:crypto';
import type { ApiError } from '../http';
import { isoTime } from '../iso-time';
import { errorFields, Logger } from '../logger';
import type { Admission, AdmissionRequest, CounterItems, CounterKey, Governance } from '../router/governance';
import type { Target } from '../routing/types';
import type { TokenUsage } from '../translate/usage';
import { AdmissionPlan, checkAdmission, GovernanceSettings, governanceSettings, planAdmission } from './admission';
import { budgetExceeded, governanceUnavailable, rpmExceeded, tpmExceeded } from './denials';
import { requestCounterKeys, spendKey } from './keys';
import type { CounterUpdate, CounterValues, GovernanceLedger, LedgerResult, LedgerWrite, ReservationRecord } from './ledger';
import type { Scope } from './limits';
import { epochSeconds, monthEndMs, secondsToNextWindow, WINDOW_MS } from './periods';
import { costMicros, microsToUsd, PriceBook, PriceTableConfig } from './prices';

export interface LedgerGovernanceOptions {
  /** Price overrides (PRICE_TABLE) or a ready price book. @default the built-in prices */
  readonly prices?: PriceBook | PriceTableConfig;
  /** @default 4 (one prompt token reserved per request byte); see GovernanceSettings. */
  readonly promptReserveFactor?: number;
  /** @default 120000 */
  readonly reservationMarginMs?: number;
  /** Attempts of a settle whose write failed (network, 5xx) before it is left to reclaim. @default 4 */
  readonly settleAttempts?: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  readonly log?: Logger;
}

const DAY_MS = 24 * 3600 * 1000;
/** Spend items are kept as long as usage records: a year of monthly reports plus a margin. */
const SPEND_RETENTION_MS = 400 * DAY_MS;
/** Rate windows outlive their minute long enough for settle to correct TPM of long requests. */
const RATE_RETENTION_MS = 20 * 60_000;
/** A reservation nobody reclaimed is garbage-collected by TTL once its month is long over. */
const RESERVATION_RETENTION_MS = 40 * DAY_MS;
/** Reservations looked at per reclaim scan. */
const RECLAIM_LIMIT = 1000;
const RECLAIM_CONCURRENCY = 8;
/** A tenant's reservations are scanned for expired ones at most this often per instance. */
const RECLAIM_INTERVAL_MS = 5_000;

/** Positions of the counter updates of a reservation write. */
const TENANT_SPEND = 0;
const TOKEN_SPEND = 1;
const TENANT_RATE = 2;
const TOKEN_RATE = 3;

/** `f` with its last answer kept: every write of a request asks for the same month's and window's expiry. */
function lastOf(f: (key: string) => number): (key: string) => number {
  let lastKey: string | undefined;
  let last = 0;
  return (key) => {
    if (key !== lastKey) {
      last = f(key);
      lastKey = key;
    }
    return last;
  };
}
const spendExpiry = lastOf((month) => epochSeconds(monthEndMs(month) + SPEND_RETENTION_MS));
const windowExpiry = lastOf((window) => epochSeconds(Date.parse(window) + WINDOW_MS + RATE_RETENTION_MS));
const rateExpiry = (key: CounterKey) => windowExpiry(key.sk);
const num = (v: number | undefined) => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

export class LedgerGovernance implements Governance {
  readonly settings: GovernanceSettings;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly settleAttempts: number;
  private readonly log?: Logger;
  /** Last reclaim scan per tenant, and the one in flight (concurrent denials share it). */
  private readonly reclaims = new Map<string, { at: number; running?: Promise<number> }>();
  /** Plans made by check(), for reserve() of the same request (held weakly: gone with the request). */
  private readonly plans = new WeakMap<AdmissionRequest, AdmissionPlan>();

  constructor(
    private readonly ledger: GovernanceLedger,
    opts: LedgerGovernanceOptions = {},
  ) {
    const prices = opts.prices instanceof PriceBook ? opts.prices : new PriceBook(opts.prices);
    this.settings = governanceSettings({ prices, promptReserveFactor: opts.promptReserveFactor, reservationMarginMs: opts.reservationMarginMs });
    this.now = opts.now ?? Date.now;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = opts.random ?? Math.random;
    this.settleAttempts = Math.max(1, opts.settleAttempts ?? 4);
    this.log = opts.log;
  }

  counterKeys(ctx: { readonly tenantId: string; readonly verifier: string; readonly now: number }): readonly CounterKey[] {
    const k = requestCounterKeys(ctx.tenantId, ctx.verifier, ctx.now);
    return [k.tenantSpend, k.tokenSpend, k.tenantRate, k.tokenRate];
  }

  check(req: AdmissionRequest, counters: CounterItems): void {
    this.plans.set(req, checkAdmission(req, counters, this.settings));
  }

  /**
   * One write: the reservation, both spend items (conditioned on their budgets) and both rate
   * windows (conditioned on RPM/TPM). A budget denial first gives back reservations left behind
   * by requests that died, then tries once more.
   */
  async reserve(req: AdmissionRequest): Promise<Admission> {
    // The router checks, then reserves, the same (readonly) request: its plan is made once.
    const plan = this.plans.get(req) ?? planAdmission(req, this.settings);
    for (const scope of ['tenant', 'token'] as const) {
      const budgetMicros = plan.limits[scope].budgetMicros;
      if (budgetMicros !== undefined && plan.reserveMicros > budgetMicros) {
        throw budgetExceeded({ scope, period: plan.month, budgetMicros, requestMicros: plan.reserveMicros, nowMs: req.startedAt });
      }
      const tpm = plan.limits[scope].tpm;
      if (tpm !== undefined && plan.tpmTokens > tpm) {
        throw tpmExceeded({ scope, limit: tpm, used: 0, requestTokens: plan.tpmTokens, retryAfterSeconds: secondsToNextWindow(req.startedAt) });
      }
    }
    // Nothing to hold a place for: no write before the provider. The spend and rate counters are
    // still raised after the last byte (the admin usage report, and a budget set later this
    // month, count this request), with one write instead of a reservation plus a settle.
    if (!hasCounterLimits(plan)) return new LedgerAdmission(this, req, plan, false);
    let reclaimed = false;
    for (;;) {
      let result: LedgerResult;
      try {
        result = await this.ledger.write(reservationWrite(req, plan));
      } catch (err) {
        // Limits fail closed (only requests with limits get here).
        this.log?.error('governance: reservation failed', { tenantId: req.tenant.tenantId, requestId: req.requestId, ...errorFields(err) });
        throw governanceUnavailable();
      }
      if (result.ok) return new LedgerAdmission(this, req, plan, true);
      const denial = this.denialOf(req, plan, result);
      if (denial.reclaimable && !reclaimed) {
        reclaimed = true;
        if ((await this.reclaimIfDue(req.tenant.tenantId)) > 0) continue;
      }
      throw denial.error;
    }
  }

  /**
   * Gives back every reservation of the tenant whose request is past its deadline and margin
   * (the request died, or could not settle). Each one is its own write: delete the reservation
   * (only if still there and still expired), lower reserved, and charge the cost its usage record
   * names (0 without one). Returns how many were reclaimed here.
   */
  async reclaimExpired(tenantId: string): Promise<number> {
    const nowSec = Math.floor(this.now() / 1000);
    const queue = await this.ledger.expiredReservations(tenantId, nowSec, RECLAIM_LIMIT);
    let reclaimed = 0;
    const worker = async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        try {
          // A request that answered but could not settle left its cost on its usage record.
          const cost = await this.ledger.recordedCostMicros(r);
          const give = (key: CounterKey): CounterUpdate => ({
            key,
            add: { reservedMicros: -r.amountMicros, committedMicros: cost - r.amountMicros, spentMicros: cost },
          });
          const result = await this.ledger.write({
            reservation: { delete: r.key, reclaimableAt: nowSec },
            counters: [give(spendKey(tenantId, undefined, r.period)), give(spendKey(tenantId, r.tokenKey, r.period))],
          });
          if (result.ok) {
            reclaimed++;
            this.log?.warn('governance: reclaimed an expired reservation', { tenantId, requestId: r.key.sk, amountMicros: r.amountMicros, chargedMicros: cost });
          }
        } catch (err) {
          this.log?.error('governance: reclaim failed', { tenantId, requestId: r.key.sk, ...errorFields(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RECLAIM_CONCURRENCY, queue.length) }, worker));
    return reclaimed;
  }

  // ------------------------------------------------------------------ used by LedgerAdmission

  /**
   * Moves the reservation to spent at the real cost and corrects TPM; never throws. Off the
   * client's path (the answer is complete), so a failed write is retried; each write carries an
   * idempotency token, so a retry of one that did commit is a no-op.
   */
  async settle(
    req: AdmissionRequest,
    plan: AdmissionPlan,
    usage: TokenUsage | undefined,
    target: Target | undefined,
    reserved = true,
  ): Promise<{ costUsd?: number }> {
    const price = target ? this.settings.prices.lookup(target) : plan.worstPrice;
    // Without usage counts the provider may still have billed the worst case: charge it.
    const cost = usage ? costMicros(price.entry, usage) : plan.reserveMicros;
    const tokens = usage ? usage.inputTokens + usage.outputTokens : plan.tpmTokens;
    const fields = { tenantId: req.tenant.tenantId, requestId: req.requestId };
    if (cost > plan.reserveMicros) {
      this.log?.warn('governance: cost above its reservation', { ...fields, costMicros: cost, reservedMicros: plan.reserveMicros, price: price.source });
    }
    const spend = (key: CounterKey, withReservation: boolean, tokenId?: string): CounterUpdate => ({
      key,
      add: withReservation
        ? { spentMicros: cost, reservedMicros: -plan.reserveMicros, committedMicros: cost - plan.reserveMicros }
        : { spentMicros: cost, committedMicros: cost },
      expiresAt: spendExpiry(plan.month),
      // Without a reservation this may be the token's first write of the month: name the token.
      ...(tokenId ? { tokenId } : {}),
    });
    const unreserved = (rateFix: CounterUpdate[], step: string): LedgerWrite =>
      withIdempotencyToken({ counters: [spend(plan.keys.tenantSpend, false), spend(plan.keys.tokenSpend, false, req.token.tokenId), ...rateFix] }, step, req.requestId);
    const settleOnce = async (): Promise<void> => {
      if (!reserved) {
        assertWritten(await this.ledger.write(unreserved(rateCorrection(plan, tokens, 1), 'settle-unreserved')), 'settle');
        return;
      }
      const rateFix = rateCorrection(plan, tokens - plan.tpmTokens);
      const first = await this.ledger.write(
        withIdempotencyToken({ reservation: { delete: plan.keys.reservation }, counters: [spend(plan.keys.tenantSpend, true), spend(plan.keys.tokenSpend, true), ...rateFix] }, 'settle', req.requestId),
      );
      if (!first.ok) {
        if (!first.reservationFailed) assertWritten(first, 'settle');
        // The reservation was reclaimed as expired (its amount already given back): record the cost.
        assertWritten(await this.ledger.write(unreserved(rateFix, 'settle-late')), 'settle');
        this.log?.warn('governance: settled after the reservation was reclaimed', { ...fields, costMicros: cost });
      }
    };
    for (let attempt = 1; ; attempt++) {
      try {
        await settleOnce();
        return { costUsd: microsToUsd(cost) };
      } catch (err) {
        if (attempt >= this.settleAttempts) {
          // The reservation stays; its reclaim charges the cost named by the usage record.
          this.log?.error('governance: settle failed; the reservation is reclaimed at the recorded cost', { ...fields, costMicros: cost, attempts: attempt, ...errorFields(err) });
          return { costUsd: microsToUsd(cost) };
        }
        this.log?.warn('governance: settle failed; retrying', { ...fields, attempt, ...errorFields(err) });
        await this.sleep(Math.floor(this.random() * 50 * 2 ** attempt) + 25);
      }
    }
  }

  /** Gives the reservation and the TPM estimate back; never throws (expiry covers a failure). */
  async release(req: AdmissionRequest, plan: AdmissionPlan): Promise<void> {
    const give = (key: CounterKey): CounterUpdate => ({ key, add: { reservedMicros: -plan.reserveMicros, committedMicros: -plan.reserveMicros } });
    try {
      const result = await this.ledger.write({
        reservation: { delete: plan.keys.reservation },
        counters: [give(plan.keys.tenantSpend), give(plan.keys.tokenSpend), ...rateCorrection(plan, -plan.tpmTokens)],
      });
      // A reservation already reclaimed has nothing left to give back.
      if (!result.ok && !result.reservationFailed) assertWritten(result, 'release');
    } catch (err) {
      this.log?.error('governance: release failed; the reservation will expire', { tenantId: req.tenant.tenantId, requestId: req.requestId, ...errorFields(err) });
    }
  }

  // ------------------------------------------------------------------ internals

  /** One reclaim scan per tenant at a time, and none within RECLAIM_INTERVAL_MS of the last. */
  private async reclaimIfDue(tenantId: string): Promise<number> {
    const state = this.reclaims.get(tenantId);
    if (state?.running) return state.running;
    const now = this.now();
    if (state && now - state.at < RECLAIM_INTERVAL_MS) return 0;
    const running = this.reclaimExpired(tenantId).catch((err: unknown) => {
      this.log?.error('governance: reclaim scan failed', { tenantId, ...errorFields(err) });
      return 0;
    });
    this.reclaims.set(tenantId, { at: now, running });
    try {
      return await running;
    } finally {
      this.reclaims.set(tenantId, { at: now });
      if (this.reclaims.size > 1000) this.reclaims.clear();
    }
  }

  /**
   * Which limit refused the reservation; budgets first (retrying soon will not help them).
   * `reclaimable`: a budget denial that giving back expired reservations could turn around (some
   * money is reserved, and settled spend alone leaves room for this request).
   */
  private denialOf(req: AdmissionRequest, plan: AdmissionPlan, result: Extract<LedgerResult, { ok: false }>): { reclaimable: boolean; error: ApiError } {
    const failed = new Map<number, CounterValues | undefined>(result.failed.map((f) => [f.index, f.item]));
    for (const [i, scope] of [
      [TENANT_SPEND, 'tenant'],
      [TOKEN_SPEND, 'token'],
    ] as const) {
      if (!failed.has(i)) continue;
      const item = failed.get(i);
      const budgetMicros = plan.limits[scope].budgetMicros ?? 0;
      const reclaimable = !item || (num(item.reservedMicros) > 0 && num(item.spentMicros) + plan.reserveMicros <= budgetMicros);
      return {
        reclaimable,
        error: budgetExceeded({
          scope,
          period: plan.month,
          budgetMicros,
          spentMicros: num(item?.spentMicros),
          reservedMicros: Math.max(0, num(item?.reservedMicros)),
          requestMicros: plan.reserveMicros,
          nowMs: req.startedAt,
        }),
      };
    }
    const retryAfterSeconds = secondsToNextWindow(req.startedAt);
    for (const [i, scope] of [
      [TENANT_RATE, 'tenant'],
      [TOKEN_RATE, 'token'],
    ] as [number, Scope][]) {
      if (!failed.has(i)) continue;
      const { rpm, tpm } = plan.limits[scope];
      const item = failed.get(i);
      const requests = num(item?.requests);
      if (rpm !== undefined && (tpm === undefined || !item || requests + 1 > rpm)) return { reclaimable: false, error: rpmExceeded({ scope, limit: rpm, retryAfterSeconds }) };
      if (tpm !== undefined) {
        return { reclaimable: false, error: tpmExceeded({ scope, limit: tpm, used: num(item?.tokens), requestTokens: plan.tpmTokens, retryAfterSeconds }) };
      }
    }
    this.log?.error('governance: reservation refused for no known limit', {
      tenantId: req.tenant.tenantId,
      requestId: req.requestId,
      reservationFailed: result.reservationFailed,
      failed: result.failed.map((f) => f.index).join(','),
    });
    return { reclaimable: false, error: governanceUnavailable() };
  }
}

/** The reservation write: the reservation item, then the four counters in the TENANT_SPEND.. order. */
function reservationWrite(req: AdmissionRequest, plan: AdmissionPlan): LedgerWrite {
  const spend = (key: CounterKey, budgetMicros: number | undefined, tokenId?: string): CounterUpdate => ({
    key,
    add: { spentMicros: 0, reservedMicros: plan.reserveMicros, committedMicros: plan.reserveMicros },
    ...(budgetMicros !== undefined ? { ceilings: { committedMicros: budgetMicros - plan.reserveMicros } } : {}),
    expiresAt: spendExpiry(plan.month),
    ...(tokenId ? { tokenId } : {}),
  });
  const rate = (key: CounterKey, rpm: number | undefined, tpm: number | undefined): CounterUpdate => {
    const ceilings: Partial<Record<'requests' | 'tokens', number>> = {};
    if (rpm !== undefined) ceilings.requests = rpm - 1;
    if (tpm !== undefined) ceilings.tokens = tpm - plan.tpmTokens;
    return { key, add: { requests: 1, tokens: plan.tpmTokens }, ...(rpm !== undefined || tpm !== undefined ? { ceilings } : {}), expiresAt: rateExpiry(key) };
  };
  const { tenant, token } = plan.limits;
  const reservation: ReservationRecord = {
    key: plan.keys.reservation,
    tenantId: req.tenant.tenantId,
    tokenId: req.token.tokenId,
    tokenKey: plan.tokenKey,
    period: plan.month,
    window: plan.window,
    amountMicros: plan.reserveMicros,
    tpmTokens: plan.tpmTokens,
    model: req.model,
    createdAt: isoTime(req.startedAt),
    reclaimAfter: plan.reclaimAfter,
    expiresAt: plan.reclaimAfter + RESERVATION_RETENTION_MS / 1000,
  };
  const counters: CounterUpdate[] = [];
  counters[TENANT_SPEND] = spend(plan.keys.tenantSpend, tenant.budgetMicros);
  counters[TOKEN_SPEND] = spend(plan.keys.tokenSpend, token.budgetMicros, req.token.tokenId);
  counters[TENANT_RATE] = rate(plan.keys.tenantRate, tenant.rpm, tenant.tpm);
  counters[TOKEN_RATE] = rate(plan.keys.tokenRate, token.rpm, token.tpm);
  return { reservation: { put: reservation }, counters };
}

function rateCorrection(plan: AdmissionPlan, tokenDelta: number, requests = 0): CounterUpdate[] {
  if (tokenDelta === 0 && requests === 0) return [];
  return [plan.keys.tenantRate, plan.keys.tokenRate].map((key) => ({ key, add: { tokens: tokenDelta, requests }, expiresAt: rateExpiry(key) }));
}

/** A usage record's costUsd in micros; 0 when absent, negative or not a number. */
export function microsOfUsd(usd: unknown): number {
  return typeof usd === 'number' && Number.isFinite(usd) && usd > 0 ? Math.round(usd * 1_000_000) : 0;
}

/** The idempotency token of one write of one request (at most 36 characters, as DynamoDB allows). */
function idempotencyToken(step: string, requestId: string): string {
  return createHash('sha256').update(`${step}\0${requestId}`).digest('base64url').slice(0, 36);
}

/**
 * A write with its idempotency token, hashed when a ledger reads it (the embedded ledger never
 * does), then kept. A getter on the prototype: a per-object accessor (defineProperty) would turn
 * every such write into a slow dictionary-mode object.
 */
class IdempotentWrite implements LedgerWrite {
  private token?: string;
  readonly reservation?: LedgerWrite['reservation'];

  constructor(
    w: Omit<LedgerWrite, 'idempotencyToken'>,
    private readonly step: string,
    private readonly requestId: string,
    readonly counters = w.counters,
  ) {
    if (w.reservation) this.reservation = w.reservation;
  }

  get idempotencyToken(): string {
    return (this.token ??= idempotencyToken(this.step, this.requestId));
  }
}

function withIdempotencyToken(w: Omit<LedgerWrite, 'idempotencyToken'>, step: string, requestId: string): LedgerWrite {
  return new IdempotentWrite(w, step, requestId);
}

function assertWritten(result: LedgerResult, what: string): void {
  if (result.ok) return;
  const parts = [...(result.reservationFailed ? ['reservation'] : []), ...result.failed.map((f) => `counter ${f.index}`)];
  throw new Error(`${what} refused: ${parts.join(',')}`);
}

/** Budget, RPM or TPM at either scope: limits that need the counters to be enforced. */
function hasCounterLimits(plan: AdmissionPlan): boolean {
  return [plan.limits.tenant, plan.limits.token].some((s) => s.budgetMicros !== undefined || s.rpm !== undefined || s.tpm !== undefined);
}

/** A granted admission: settles or releases exactly once (later calls get the first outcome). */
class LedgerAdmission implements Admission {
  private outcome?: Promise<{ costUsd?: number }>;

  constructor(
    private readonly governance: LedgerGovernance,
    private readonly req: AdmissionRequest,
    private readonly plan: AdmissionPlan,
    /** False when no limit governs the request, so no reservation was written. */
    private readonly reserved: boolean,
  ) {}

  settle(usage: TokenUsage | undefined, target: Target | undefined): Promise<{ costUsd?: number }> {
    this.outcome ??= this.governance.settle(this.req, this.plan, usage, target, this.reserved);
    return this.outcome;
  }

  async release(): Promise<void> {
    this.outcome ??= this.reserved ? this.governance.release(this.req, this.plan).then(() => ({})) : Promise.resolve({});
    await this.outcome;
  }
}
