/**
 * Governance on the usage table: budgets, RPM/TPM and reservations made exact with conditional
 * writes, one TransactWriteItems per admission, settle and release.
 *
 * Items (see core/governance/keys.ts):
 * - spend `SPEND#<tenant>[#<tokenKey>]` / `YYYY-MM`: spentMicros, reservedMicros and
 *   committedMicros = spent + reserved. DynamoDB conditions cannot add, so the sum is kept as its
 *   own attribute and a reservation of `a` under budget `B` is `committedMicros <= B - a`.
 * - rate `RATE#<tenant>[#<tokenKey>]` / `<minute>`: requests, tokens; expire a few minutes later.
 * - reservation `RESV#<tenant>` / `<requestId>`: amount, period, token key, TPM estimate, and
 *   `reclaimAfter` (deadline + margin). Its `expiresAt` (TTL) is weeks later on purpose: if
 *   DynamoDB's TTL deleted a reservation before anyone gave its amount back, that amount would
 *   stay counted as reserved for the rest of the month.
 *
 * Invariant: every write keeps committed = spent + reserved on both spend items, reserve only
 * raises committed when the result stays within the budget, and settle lowers it (cost ≤
 * reservation). So settled spend never exceeds a budget while real costs stay within their
 * reservations; see `promptReserveFactor` for when they might not (the overrun is logged).
 *
 * Denials and their price: `check` judges the counters read in the router's one BatchGet, so a
 * tenant or token already at its budget (settled spend), RPM or TPM is denied before any KMS or
 * provider call. Only a race lost between that read and the conditional write, or budget held by
 * requests still in flight, is denied by `reserve`: that runs in parallel with the KMS Decrypt, so
 * it may cost that one KMS call, never a provider call (the provider waits for the reservation).
 *
 * Failures: a reservation that cannot be written (usage table unreachable) fails closed with 503
 * when a budget or rate limit applies, and lets the request go on unreserved when none does.
 * Settle and release never throw (the answer is already with the client); they log, and an
 * unreleased reservation is reclaimed after it expires.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, TransactWriteCommand, type TransactWriteCommandInput } from '@aws-sdk/lib-dynamodb';
import { createHash } from 'node:crypto';
import { AdmissionPlan, checkAdmission, GovernanceSettings, governanceSettings, planAdmission } from '../core/governance/admission';
import { budgetExceeded, governanceUnavailable, rpmExceeded, tpmExceeded } from '../core/governance/denials';
import { requestCounterKeys, reservationPk, spendKey } from '../core/governance/keys';
import type { Scope } from '../core/governance/limits';
import { monthEndMs, secondsToNextWindow, WINDOW_MS } from '../core/governance/periods';
import { costMicros, microsToUsd, PriceBook, PriceTableConfig } from '../core/governance/prices';
import type { ApiError } from '../core/http';
import { errorFields, Logger } from '../core/logger';
import type { Admission, AdmissionRequest, CounterItems, CounterKey, Governance } from '../core/router/governance';
import type { Target } from '../core/routing/types';
import { usageRecordKey } from '../core/router/usage-record';
import type { TokenUsage } from '../core/translate/usage';

type TransactItem = NonNullable<TransactWriteCommandInput['TransactItems']>[number];

export interface DynamoGovernanceOptions {
  /** The usage table (pk/sk strings, TTL attribute `expiresAt`). */
  readonly table: string;
  /** Price overrides (PRICE_TABLE) or a ready price book. @default the built-in prices */
  readonly prices?: PriceBook | PriceTableConfig;
  /** @default 4 (one prompt token reserved per request byte); see GovernanceSettings. */
  readonly promptReserveFactor?: number;
  /** @default 120000 */
  readonly reservationMarginMs?: number;
  /**
   * The table holding the router's usage records. When a request's settle failed for good, the
   * reclaim of its reservation charges the cost its usage record names instead of nothing.
   * @default `table`
   */
  readonly usageRecordsTable?: string;
  /** Attempts of a settle whose transaction failed (network, 5xx) before it is left to reclaim. @default 4 */
  readonly settleAttempts?: number;
  /** Retries of a transaction cancelled by a concurrent one (TransactionConflict) or throttling. @default 8 */
  readonly conflictRetries?: number;
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
const RECLAIM_PAGES = 10;
const RECLAIM_CONCURRENCY = 8;
/** A tenant's reservations are scanned for expired ones at most this often per instance. */
const RECLAIM_INTERVAL_MS = 5_000;

/** Positions of the items of a reservation transaction. */
const RESV = 0;
const TENANT_SPEND = 1;
const TOKEN_SPEND = 2;
const TENANT_RATE = 3;
const TOKEN_RATE = 4;

interface Reason {
  readonly code?: string;
  readonly item?: Record<string, unknown>;
}
type TxResult = { ok: true } | { ok: false; reasons: Reason[] };

/** A number attribute of an item, marshalled (`{ N: '1' }`) or not. */
function attrNumber(item: Record<string, unknown> | undefined, name: string): number {
  const v = item?.[name] as unknown;
  if (typeof v === 'number') return v;
  if (v && typeof v === 'object' && 'N' in v) return Number((v as { N: string }).N) || 0;
  return 0;
}

const toSeconds = (ms: number) => Math.ceil(ms / 1000);

export class DynamoGovernance implements Governance {
  readonly settings: GovernanceSettings;
  private readonly doc: DynamoDBDocumentClient;
  private readonly table: string;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  private readonly conflictRetries: number;
  private readonly settleAttempts: number;
  private readonly usageRecordsTable: string;
  private readonly log?: Logger;
  /** Last reclaim scan per tenant, and the one in flight (concurrent denials share it). */
  private readonly reclaims = new Map<string, { at: number; running?: Promise<number> }>();

  constructor(client: DynamoDBClient, opts: DynamoGovernanceOptions) {
    this.doc = DynamoDBDocumentClient.from(client, { marshallOptions: { removeUndefinedValues: true } });
    this.table = opts.table;
    const prices = opts.prices instanceof PriceBook ? opts.prices : new PriceBook(opts.prices);
    this.settings = governanceSettings({ prices, promptReserveFactor: opts.promptReserveFactor, reservationMarginMs: opts.reservationMarginMs });
    this.now = opts.now ?? Date.now;
    this.sleep = opts.sleep ?? ((ms) => new Promise((r) => setTimeout(r, ms)));
    this.random = opts.random ?? Math.random;
    this.conflictRetries = opts.conflictRetries ?? 8;
    this.settleAttempts = Math.max(1, opts.settleAttempts ?? 4);
    this.usageRecordsTable = opts.usageRecordsTable ?? opts.table;
    this.log = opts.log;
  }

  counterKeys(ctx: { readonly tenantId: string; readonly verifier: string; readonly now: number }): readonly CounterKey[] {
    const k = requestCounterKeys(ctx.tenantId, ctx.verifier, ctx.now);
    return [k.tenantSpend, k.tokenSpend, k.tenantRate, k.tokenRate];
  }

  check(req: AdmissionRequest, counters: CounterItems): void {
    checkAdmission(req, counters, this.settings);
  }

  /**
   * One transaction: the reservation item, both spend items (conditioned on their budgets) and
   * both rate windows (conditioned on RPM/TPM). A budget denial first gives back reservations
   * left behind by requests that died, then tries once more.
   */
  async reserve(req: AdmissionRequest): Promise<Admission> {
    const plan = planAdmission(req, this.settings);
    for (const scope of ['tenant', 'token'] as const) {
      const budgetMicros = plan.limits[scope].budgetMicros;
      if (budgetMicros !== undefined && plan.reserveMicros > budgetMicros) {
        throw budgetExceeded({ scope, period: plan.month, budgetMicros, requestMicros: plan.reserveMicros });
      }
      const tpm = plan.limits[scope].tpm;
      if (tpm !== undefined && plan.tpmTokens > tpm) {
        throw tpmExceeded({ scope, limit: tpm, used: 0, requestTokens: plan.tpmTokens, retryAfterSeconds: secondsToNextWindow(req.startedAt) });
      }
    }
    let reclaimed = false;
    for (;;) {
      let result: TxResult;
      try {
        result = await this.transact(this.reservationItems(req, plan));
      } catch (err) {
        const fields = { tenantId: req.tenant.tenantId, requestId: req.requestId, ...errorFields(err) };
        // Limits fail closed; a request that no budget or rate limit governs goes on, unreserved.
        if (hasCounterLimits(plan)) {
          this.log?.error('governance: reservation failed', fields);
          throw governanceUnavailable();
        }
        this.log?.warn('governance: reservation failed; no limit applies, so the request goes on unreserved', fields);
        return new DynamoAdmission(this, req, plan, false);
      }
      if (result.ok) return new DynamoAdmission(this, req, plan, true);
      const denial = this.denialOf(req, plan, result.reasons);
      if (denial.reclaimable && !reclaimed) {
        reclaimed = true;
        if ((await this.reclaimIfDue(req.tenant.tenantId)) > 0) continue;
      }
      throw denial.error;
    }
  }

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
   * Gives back every reservation of the tenant whose request is past its deadline and margin
   * (the request died without settling or releasing). Each one is its own transaction: delete
   * the reservation (only if still there and still expired) and lower reserved and committed.
   * Returns how many were reclaimed here.
   */
  async reclaimExpired(tenantId: string): Promise<number> {
    const nowSec = Math.floor(this.now() / 1000);
    const expired: Record<string, unknown>[] = [];
    let start: Record<string, unknown> | undefined;
    for (let page = 0; page < RECLAIM_PAGES; page++) {
      const out = await this.doc.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk',
          FilterExpression: 'reclaimAfter < :now',
          ExpressionAttributeValues: { ':pk': reservationPk(tenantId), ':now': nowSec },
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
      );
      expired.push(...((out.Items ?? []) as Record<string, unknown>[]));
      start = out.LastEvaluatedKey;
      if (!start) break;
    }
    let reclaimed = 0;
    const queue = [...expired];
    const worker = async () => {
      for (let r = queue.shift(); r; r = queue.shift()) {
        const amount = attrNumber(r, 'amountMicros');
        const period = String(r.period);
        // A request that answered but could not settle left its cost on its usage record.
        const cost = await this.recordedCost(tenantId, r);
        const give = (key: CounterKey): TransactItem => ({
          Update: {
            TableName: this.table,
            Key: key,
            UpdateExpression: 'ADD reservedMicros :neg, committedMicros :delta, spentMicros :cost',
            ExpressionAttributeValues: { ':neg': -amount, ':delta': cost - amount, ':cost': cost },
          },
        });
        try {
          const result = await this.transact([
            {
              Delete: {
                TableName: this.table,
                Key: { pk: r.pk, sk: r.sk },
                ConditionExpression: 'attribute_exists(pk) AND reclaimAfter < :now',
                ExpressionAttributeValues: { ':now': nowSec },
              },
            },
            give(spendKey(tenantId, undefined, period)),
            give(spendKey(tenantId, String(r.tokenKey), period)),
          ]);
          if (result.ok) {
            reclaimed++;
            this.log?.warn('governance: reclaimed an expired reservation', { tenantId, requestId: String(r.sk), amountMicros: amount, chargedMicros: cost });
          }
        } catch (err) {
          this.log?.error('governance: reclaim failed', { tenantId, requestId: String(r.sk), ...errorFields(err) });
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(RECLAIM_CONCURRENCY, queue.length) }, worker));
    return reclaimed;
  }

  /** The cost (micros) on the usage record of a reservation's request; 0 when there is none. */
  private async recordedCost(tenantId: string, reservation: Record<string, unknown>): Promise<number> {
    if (typeof reservation.createdAt !== 'string') return 0;
    const out = await this.doc.send(
      new GetCommand({
        TableName: this.usageRecordsTable,
        Key: usageRecordKey({ tenantId, at: reservation.createdAt, requestId: String(reservation.sk) }),
        ProjectionExpression: 'costUsd',
        ConsistentRead: true,
      }),
    );
    const usd = out.Item?.costUsd;
    return typeof usd === 'number' && Number.isFinite(usd) && usd > 0 ? Math.round(usd * 1_000_000) : 0;
  }

  // ------------------------------------------------------------------ used by DynamoAdmission

  /** Moves the reservation to spent at the real cost and corrects TPM; never throws. */
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
    const spend = (key: CounterKey, withReservation: boolean): TransactItem => ({
      Update: {
        TableName: this.table,
        Key: key,
        UpdateExpression: withReservation
          ? 'ADD spentMicros :cost, reservedMicros :negRes, committedMicros :delta SET expiresAt = if_not_exists(expiresAt, :exp)'
          : 'ADD spentMicros :cost, committedMicros :cost SET expiresAt = if_not_exists(expiresAt, :exp)',
        ExpressionAttributeValues: {
          ':cost': cost,
          ':exp': this.spendExpiry(plan.month),
          ...(withReservation ? { ':negRes': -plan.reserveMicros, ':delta': cost - plan.reserveMicros } : {}),
        },
      },
    });
    // Off the client's path (the answer is complete), so a failed write is retried; each
    // transaction carries an idempotency token, so a retry of one that did commit is a no-op.
    for (let attempt = 1; ; attempt++) {
      try {
        await this.settleOnce(req, plan, cost, tokens, reserved, spend);
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

  private async settleOnce(
    req: AdmissionRequest,
    plan: AdmissionPlan,
    cost: number,
    tokens: number,
    reserved: boolean,
    spend: (key: CounterKey, withReservation: boolean) => TransactItem,
  ): Promise<void> {
    const fields = { tenantId: req.tenant.tenantId, requestId: req.requestId };
    if (!reserved) {
      const out = await this.transact([spend(plan.keys.tenantSpend, false), spend(plan.keys.tokenSpend, false), ...this.rateCorrection(plan, tokens, 1)], idempotencyToken('settle-unreserved', req.requestId));
      if (!out.ok) throw new Error(`settle cancelled: ${out.reasons.map((r) => r.code).join(',')}`);
      return;
    }
    const rateFix = this.rateCorrection(plan, tokens - plan.tpmTokens);
    const first = await this.transact(
      [this.deleteReservation(plan), spend(plan.keys.tenantSpend, true), spend(plan.keys.tokenSpend, true), ...rateFix],
      idempotencyToken('settle', req.requestId),
    );
    if (!first.ok) {
      if (first.reasons[RESV]?.code !== 'ConditionalCheckFailed') throw new Error(`settle cancelled: ${first.reasons.map((r) => r.code).join(',')}`);
      // The reservation was reclaimed as expired (its amount already given back): record the cost.
      const second = await this.transact([spend(plan.keys.tenantSpend, false), spend(plan.keys.tokenSpend, false), ...rateFix], idempotencyToken('settle-late', req.requestId));
      if (!second.ok) throw new Error(`settle cancelled: ${second.reasons.map((r) => r.code).join(',')}`);
      this.log?.warn('governance: settled after the reservation was reclaimed', { ...fields, costMicros: cost });
    }
  }

  /** Gives the reservation and the TPM estimate back; never throws (expiry covers a failure). */
  async release(req: AdmissionRequest, plan: AdmissionPlan): Promise<void> {
    const give = (key: CounterKey): TransactItem => ({
      Update: {
        TableName: this.table,
        Key: key,
        UpdateExpression: 'ADD reservedMicros :neg, committedMicros :neg',
        ExpressionAttributeValues: { ':neg': -plan.reserveMicros },
      },
    });
    try {
      const result = await this.transact([
        this.deleteReservation(plan),
        give(plan.keys.tenantSpend),
        give(plan.keys.tokenSpend),
        ...this.rateCorrection(plan, -plan.tpmTokens),
      ]);
      if (!result.ok && result.reasons[RESV]?.code !== 'ConditionalCheckFailed') {
        throw new Error(`release cancelled: ${result.reasons.map((r) => r.code).join(',')}`);
      }
    } catch (err) {
      this.log?.error('governance: release failed; the reservation will expire', { tenantId: req.tenant.tenantId, requestId: req.requestId, ...errorFields(err) });
    }
  }

  // ------------------------------------------------------------------ internals

  private spendExpiry(month: string): number {
    return toSeconds(monthEndMs(month) + SPEND_RETENTION_MS);
  }

  private reservationItems(req: AdmissionRequest, plan: AdmissionPlan): TransactItem[] {
    const spend = (key: CounterKey, budgetMicros: number | undefined, tokenId?: string): TransactItem => ({
      Update: {
        TableName: this.table,
        Key: key,
        UpdateExpression:
          'ADD spentMicros :zero, reservedMicros :amt, committedMicros :amt SET expiresAt = if_not_exists(expiresAt, :exp)' +
          (tokenId ? ', tokenId = :tid' : ''),
        ...(budgetMicros !== undefined ? { ConditionExpression: 'attribute_not_exists(committedMicros) OR committedMicros <= :ceil' } : {}),
        ExpressionAttributeValues: {
          ':zero': 0,
          ':amt': plan.reserveMicros,
          ':exp': this.spendExpiry(plan.month),
          ...(tokenId ? { ':tid': tokenId } : {}),
          ...(budgetMicros !== undefined ? { ':ceil': budgetMicros - plan.reserveMicros } : {}),
        },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    });
    const rate = (key: CounterKey, rpm: number | undefined, tpm: number | undefined): TransactItem => {
      const conditions: string[] = [];
      const values: Record<string, unknown> = { ':one': 1, ':tok': plan.tpmTokens, ':exp': toSeconds(Date.parse(key.sk) + WINDOW_MS + RATE_RETENTION_MS) };
      if (rpm !== undefined) {
        conditions.push('(attribute_not_exists(#rq) OR #rq <= :rpmCeil)');
        values[':rpmCeil'] = rpm - 1;
      }
      if (tpm !== undefined) {
        conditions.push('(attribute_not_exists(#tk) OR #tk <= :tpmCeil)');
        values[':tpmCeil'] = tpm - plan.tpmTokens;
      }
      return {
        Update: {
          TableName: this.table,
          Key: key,
          UpdateExpression: 'ADD #rq :one, #tk :tok SET expiresAt = if_not_exists(expiresAt, :exp)',
          ...(conditions.length > 0 ? { ConditionExpression: conditions.join(' AND ') } : {}),
          ExpressionAttributeNames: { '#rq': 'requests', '#tk': 'tokens' },
          ExpressionAttributeValues: values,
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        },
      };
    };
    const { tenant, token } = plan.limits;
    const items: TransactItem[] = [];
    items[RESV] = {
      Put: {
        TableName: this.table,
        Item: {
          ...plan.keys.reservation,
          tenantId: req.tenant.tenantId,
          tokenId: req.token.tokenId,
          tokenKey: plan.tokenKey,
          period: plan.month,
          window: plan.window,
          amountMicros: plan.reserveMicros,
          tpmTokens: plan.tpmTokens,
          model: req.model,
          createdAt: new Date(req.startedAt).toISOString(),
          reclaimAfter: plan.reclaimAfter,
          expiresAt: plan.reclaimAfter + RESERVATION_RETENTION_MS / 1000,
        },
        ConditionExpression: 'attribute_not_exists(pk)',
      },
    };
    items[TENANT_SPEND] = spend(plan.keys.tenantSpend, tenant.budgetMicros);
    items[TOKEN_SPEND] = spend(plan.keys.tokenSpend, token.budgetMicros, req.token.tokenId);
    items[TENANT_RATE] = rate(plan.keys.tenantRate, tenant.rpm, tenant.tpm);
    items[TOKEN_RATE] = rate(plan.keys.tokenRate, token.rpm, token.tpm);
    return items;
  }

  /**
   * Which limit cancelled the reservation; budgets first (retrying soon will not help them).
   * `reclaimable`: a budget denial that giving back expired reservations could turn around (some
   * money is reserved, and settled spend alone leaves room for this request).
   */
  private denialOf(req: AdmissionRequest, plan: AdmissionPlan, reasons: Reason[]): { reclaimable: boolean; error: ApiError } {
    const failed = (i: number) => reasons[i]?.code === 'ConditionalCheckFailed';
    for (const [i, scope] of [
      [TENANT_SPEND, 'tenant'],
      [TOKEN_SPEND, 'token'],
    ] as const) {
      if (!failed(i)) continue;
      const item = reasons[i].item;
      const budgetMicros = plan.limits[scope].budgetMicros ?? 0;
      const reclaimable = !item || (attrNumber(item, 'reservedMicros') > 0 && attrNumber(item, 'spentMicros') + plan.reserveMicros <= budgetMicros);
      return {
        reclaimable,
        error: budgetExceeded({
          scope,
          period: plan.month,
          budgetMicros,
          spentMicros: attrNumber(item, 'spentMicros'),
          reservedMicros: Math.max(0, attrNumber(item, 'reservedMicros')),
          requestMicros: plan.reserveMicros,
        }),
      };
    }
    const retryAfterSeconds = secondsToNextWindow(req.startedAt);
    for (const [i, scope] of [
      [TENANT_RATE, 'tenant'],
      [TOKEN_RATE, 'token'],
    ] as [number, Scope][]) {
      if (!failed(i)) continue;
      const { rpm, tpm } = plan.limits[scope];
      const item = reasons[i].item;
      const requests = attrNumber(item, 'requests');
      if (rpm !== undefined && (tpm === undefined || !item || requests + 1 > rpm)) return { reclaimable: false, error: rpmExceeded({ scope, limit: rpm, retryAfterSeconds }) };
      if (tpm !== undefined) {
        return { reclaimable: false, error: tpmExceeded({ scope, limit: tpm, used: attrNumber(item, 'tokens'), requestTokens: plan.tpmTokens, retryAfterSeconds }) };
      }
    }
    this.log?.error('governance: reservation cancelled for no known limit', {
      tenantId: req.tenant.tenantId,
      requestId: req.requestId,
      reasons: reasons.map((r) => r.code ?? '?').join(','),
    });
    return { reclaimable: false, error: governanceUnavailable() };
  }

  private deleteReservation(plan: AdmissionPlan): TransactItem {
    return { Delete: { TableName: this.table, Key: plan.keys.reservation, ConditionExpression: 'attribute_exists(pk)' } };
  }

  private rateCorrection(plan: AdmissionPlan, tokenDelta: number, requests = 0): TransactItem[] {
    if (tokenDelta === 0 && requests === 0) return [];
    return [plan.keys.tenantRate, plan.keys.tokenRate].map((key) => ({
      Update: {
        TableName: this.table,
        Key: key,
        UpdateExpression: 'ADD #tk :d, #rq :r SET expiresAt = if_not_exists(expiresAt, :exp)',
        ExpressionAttributeNames: { '#tk': 'tokens', '#rq': 'requests' },
        ExpressionAttributeValues: { ':d': tokenDelta, ':r': requests, ':exp': toSeconds(Date.parse(key.sk) + WINDOW_MS + RATE_RETENTION_MS) },
      },
    }));
  }

  /**
   * One TransactWriteItems. A cancellation for a failed condition comes back as `{ ok: false }`;
   * one for a concurrent transaction on the same item (real DynamoDB, not moto) or throttling is
   * retried with jittered backoff; anything else throws.
   */
  private async transact(items: TransactItem[], clientRequestToken?: string): Promise<TxResult> {
    for (let attempt = 0; ; attempt++) {
      try {
        await this.doc.send(new TransactWriteCommand({ TransactItems: items, ClientRequestToken: clientRequestToken }));
        return { ok: true };
      } catch (err) {
        const e = err as { name?: string; CancellationReasons?: { Code?: string; Item?: Record<string, unknown> }[] };
        if (e?.name !== 'TransactionCanceledException') throw err;
        const reasons: Reason[] = (e.CancellationReasons ?? []).map((r) => ({ code: r.Code, item: r.Item }));
        if (reasons.some((r) => r.code === 'ConditionalCheckFailed')) return { ok: false, reasons };
        const transient = reasons.some((r) => r.code === 'TransactionConflict' || r.code === 'ThrottlingError' || r.code === 'ProvisionedThroughputExceeded');
        if (!transient || attempt >= this.conflictRetries) throw err;
        await this.sleep(Math.floor(this.random() * Math.min(500, 10 * 2 ** attempt)) + 1);
      }
    }
  }
}

/** DynamoDB's idempotency token for one transaction of one request (at most 36 characters). */
function idempotencyToken(step: string, requestId: string): string {
  return createHash('sha256').update(`${step}\0${requestId}`).digest('base64url').slice(0, 36);
}

/** Budget, RPM or TPM at either scope: limits that need the usage table to be enforced. */
function hasCounterLimits(plan: AdmissionPlan): boolean {
  return [plan.limits.tenant, plan.limits.token].some((s) => s.budgetMicros !== undefined || s.rpm !== undefined || s.tpm !== undefined);
}

/** A granted admission: settles or releases exactly once (later calls get the first outcome). */
class DynamoAdmission implements Admission {
  private outcome?: Promise<{ costUsd?: number }>;

  constructor(
    private readonly governance: DynamoGovernance,
    private readonly req: AdmissionRequest,
    private readonly plan: AdmissionPlan,
    /** False when the reservation could not be written and no limit required it. */
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
