/**
 * The data path: authenticate, route, open the tenant's sealed secret for one request, call the
 * provider (with fallback), stream the answer back in the client's format, record usage.
 */
import { dataKeysOfTenant, isTenantKeyRefusal, tenantKeyUnavailable } from '../tenant-keys';
import { NO_RETRY, parsePresentedToken, principalOfRead, storedRecordApiError, upgradeOnUse, verifiersNow, verifiersOf } from '../authenticate';
import type { CellConfig } from '../cell-config';
import { decodeBase64Strict, zeroize } from '../crypto-util';
import { openSecret, parseSealedRow, SealedSecret, SealedSecretError, VERSION_SALT_BYTES } from '../envelope';
import { beginCache, CACHE_HEADER, replayChunks, type CacheState, type ResponseCacheStore } from '../cache';
import { applyBedrockGuardrails, applyGuardrails, type GuardrailOutcome, type GuardrailService } from '../guardrails';
import { ApiError, ErrorShape, errorResponse, HttpRequest, presentedToken, requestIdOf } from '../http';
import { errorFields, Logger } from '../logger';
import type { DataKeyService, PepperSource } from '../ports';
import { CircuitBreaker } from '../routing/circuit-breaker';
import { executeWithFallback } from '../routing/fallback';
import { resolveTargets } from '../routing/resolve-targets';
import type { AttemptOutcome, CancelSignal } from '../routing/fallback';
import { AllTargetsFailedError, ChainStep, NoRouteError, Target } from '../routing/types';
import { SseEvent, SseParser } from '../sse';
import { entryGeneration, tenantGeneration } from '../factor-generations';
import { erasureKeyFromItem } from '../erasure-key';
import { secretSlotOf, type TenantRecord, type TokenRecord } from '../tenant-model';
import { TranslationError, UpstreamProtocolError, type TokenUsage } from '../translate';
import { ApiRoute, ClientRequest, parseClientRequest, routeOf, routePath } from './client-request';
import { Admission, AdmissionRequest, Governance, openGovernance } from './governance';
import { usageMetricLine } from './metrics';
import { modelList } from './model-list';
import { isoTime } from '../iso-time';
import { KeyUse, recordingDataKeys } from './key-use';
import { RequestFactors } from './request-factors';
import { requestLogFields, type RequestOutcome } from './request-log';
import { chunksOf, isRetryableStatus, ProviderClient, ProviderResponse, readCapped, transportFailure } from './provider-port';
import { abortedUsage, requestSignal, StreamTally } from './client-abort';
import { ResponseSink, trackedSink } from './response-sink';
import { responsesTargets } from './responses-exchange';
import { RetryHints } from './retry-hints';
import type { RawItem, RouterStore } from './router-store';
import { clientResponse, streamBridge, upstreamRequest } from './upstream-exchange';
import type { UsageRecord } from './usage-record';

export interface RouterDeps {
  readonly config: Pick<CellConfig, 'region' | 'providers' | 'maxRequestBytes' | 'requestDeadlineMs' | 'prices'>;
  readonly store: RouterStore;
  readonly pepper: PepperSource;
  readonly dataKeys: DataKeyService;
  readonly providers: ProviderClient;
  readonly governance?: Governance;
  /** Sealed response-cache entries (DynamoDB table with TTL, or the embedded store); without it nothing is cached. */
  readonly cache?: ResponseCacheStore;
  /** Amazon Bedrock Guardrails (ApplyGuardrail, the cell's region) for policies naming one; without it such requests are refused (503). */
  readonly guardrailService?: GuardrailService;
  /** One per execution environment (module scope), shared by requests. */
  readonly breaker?: CircuitBreaker;
  readonly log: Logger;
  /** Where the per-request metric line goes (stdout in Lambda: embedded metric format). */
  readonly emitMetric?: (line: string) => void;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
}

/** Largest buffered (non-streaming) upstream body we accept. */
const MAX_UPSTREAM_BODY = 16 * 1024 * 1024;

type Upstream = { kind: 'response'; res: ProviderResponse } | { kind: 'client_error'; status: number; message: string };

const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' };
const SSE_HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', 'x-accel-buffering': 'no' };

export function createRouterApp(deps: RouterDeps): (req: HttpRequest, sink: ResponseSink) => Promise<UsageRecord | undefined> {
  const now = deps.now ?? Date.now;
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const random = deps.random ?? Math.random;
  const breaker = deps.breaker ?? new CircuitBreaker();
  const governance = deps.governance ?? openGovernance;
  const { region, providers } = deps.config;
  const providerIds = Object.keys(providers);

  return async function handle(req, clientSink) {
    const started = now();
    const requestId = requestIdOf(req);
    // Every response names its request id (success and error), and the sink notes when the
    // client got its first and last byte: the record's latency is the client's, not the tail's.
    const sink = trackedSink(clientSink, requestId, now);
    let shape: ErrorShape = 'openai';
    let route: ApiRoute | undefined;
    let principal: { tenant: TenantRecord; token: TokenRecord } | undefined;
    let client: ClientRequest | undefined;
    let chain: readonly ChainStep[] = [];
    let factors: RequestFactors | undefined;
    let erasureKey: Buffer | undefined;
    let reservation: Promise<Admission> | undefined;
    let settled = false;
    let guardrails: GuardrailOutcome | undefined;
    // Set when the token was found under the previous pepper: moved to the current one after the last byte.
    let upgradeVerifier: (() => Promise<void>) | undefined;
    // The client's connection: when it closes early, the upstream call is cut (client-abort.ts).
    const clientGone = req.signal;
    /** The target of the last attempt that reached the provider, if any did. */
    let calledTarget: Target | undefined;
    let cache: CacheState | undefined;
    /** The upstream calls' deadline (and client-gone) signal; its timer is cleared at the end. */
    let deadline: ReturnType<typeof requestSignal> | undefined;
    type Outcome = Partial<UsageRecord> & Pick<UsageRecord, 'status' | 'decision'>;

    // Every Decrypt of this request, with its exact encryption context (usage record evidence).
    const keyUses: KeyUse[] = [];
    const dataKeys = recordingDataKeys(deps.dataKeys, keyUses, now);
    /**
     * The end stage, after the client has its last byte: settle (or release) the reservation,
     * then the log line, the metric and the usage record. Nothing here throws or writes to the
     * client, so a failure of any of it never changes what the client received.
     */
    const finish = async (outcome: Outcome, settle?: () => Promise<{ costUsd?: number }>): Promise<UsageRecord | undefined> => {
      let costUsd = outcome.costUsd;
      if (upgradeVerifier) await upgradeVerifier();
      if (settle) {
        try {
          ({ costUsd } = await settle());
        } catch (err) {
          deps.log.error('governance: settle failed', { requestId, ...errorFields(err) });
        }
      }
      const latencyMs = (sink.endedAt ?? now()) - started;
      // Built by assignment in the order the spreads gave (the record's fields, then the outcome's,
      // then cost and latency): this runs before the last byte locally.
      let usage: Mutable<UsageRecord> | undefined;
      if (principal && route) {
        usage = { requestId, tenantId: principal.tenant.tenantId, tokenId: principal.token.tokenId, route, model: client?.model ?? '', stream: client?.stream ?? false, fallbackChain: chain } as Mutable<UsageRecord>;
        if (keyUses.length > 0) usage.keyUses = keyUses;
        if (guardrails) usage.guardrails = guardrails;
        if (cache) usage.cache = cache.status;
        usage.at = isoTime(started);
        Object.assign(usage, outcome);
        usage.costUsd = costUsd;
        usage.latencyMs = latencyMs;
      }
      try {
        const logged: Mutable<RequestOutcome> = Object.assign({ requestId, route: route ?? 'unknown', model: client?.model, fallbackChain: chain } as RequestOutcome, outcome);
        logged.costUsd = costUsd;
        logged.latencyMs = latencyMs;
        deps.log.info('request', requestLogFields(logged, principal));
        if (usage) deps.emitMetric?.(usageMetricLine(usage, region));
      } catch {
        // A logging sink that throws must not reach the client path.
      }
      // A complete answer goes into the cache (a miss's capture), off the client's path too.
      if (cache) await cache.complete(outcome.status === 200 && outcome.decision === 'ok' ? { provider: outcome.provider, upstreamModel: outcome.upstreamModel } : undefined);
      if (!usage) return undefined;
      try {
        await deps.store.putUsage(usage);
      } catch (err) {
        deps.log.error('usage record not written', { requestId, tenantId: usage.tenantId, costUsd: usage.costUsd, ...errorFields(err) });
      }
      return usage;
    };

    try {
      // The shape follows the path, so a 405 on /v1/messages is already an Anthropic error.
      const path = routePath(req.path);
      shape = path === '/v1/messages' ? 'anthropic' : 'openai';
      route = routeOf(req, path);
      // 1. Shape, size and token format: all before any I/O.
      client = route === 'models' ? undefined : parseClientRequest(route, req, deps.config.maxRequestBytes);
      const parsed = parsePresentedToken(presentedToken(req, route === 'messages'), region);

      // 2. One DynamoDB round trip: token, tenant, default secrets of the cell's providers, all
      //    unparsed. The token is verified before any item is parsed or used.
      //    During a pepper overlap the previous pepper's verifier is read in the same call.
      const verifiers = verifiersNow(deps.pepper, parsed.token) ?? (await verifiersOf(deps.pepper, parsed.token));
      const verifier = verifiers.current.verifier;
      const counterKeys = governance.counterKeys({ tenantId: parsed.tenantId, verifier, now: started });
      // An in-process store answers without a promise turn (router-store.ts); DynamoDB is awaited.
      const read =
        deps.store.loadRequestContextNow?.(verifier, parsed.tenantId, providerIds, counterKeys, verifiers.previous?.verifier) ??
        (await deps.store.loadRequestContext(verifier, parsed.tenantId, providerIds, counterKeys, verifiers.previous?.verifier));
      const { match, token, tenant } = principalOfRead(parsed, verifiers, read.token, read.previousToken, read.tenant, region);
      principal = { tenant, token };
      if (match.matched.version < verifiers.issuing.version) {
        upgradeVerifier = async () => {
          upgradeVerifier = undefined;
          const moved = await upgradeOnUse(deps.store, verifiers, match, (err) => deps.log.error('token verifier not moved to the current pepper', { requestId, ...errorFields(err) }));
          if (moved) deps.log.info('token verifier moved to the current pepper', { requestId, tenantId: tenant.tenantId, tokenId: token.tokenId, pepperVersion: verifiers.issuing.version });
        };
      }
      if (token.role !== 'invoke') {
        throw new ApiError(403, 'insufficient_role', 'Model calls need an invoke token; this is a tenant-admin token. Create one with POST /vault/tokens.');
      }

      if (route === 'models' || !client) {
        sink.start(200, { 'content-type': 'application/json', 'cache-control': 'no-store' });
        sink.write(JSON.stringify(modelList({ tenant, token, providers, prices: deps.config.prices, storedSecrets: storedSlots(tenant, read.secrets), region })));
        sink.end();
        return await finish({ status: 200, decision: 'ok' });
      }

      // 3. Route and govern, still without KMS or provider.
      let targets: Target[];
      try {
        targets = resolveTargets(client.model, {
          policy: tenant.policy,
          providers,
          random,
          api: client.route === 'embeddings' ? 'embeddings' : 'chat',
          region,
        });
      } catch (err) {
        if (err instanceof NoRouteError) throw new ApiError(400, 'model_not_routable', err.message);
        throw err;
      }
      if (client.route === 'responses') targets = responsesTargets(client, targets);
      // A max_tokens cap applies to requests that omit max_tokens too: the cap becomes theirs.
      const cap = stricter(tenant.policy.maxTokens, token.limits?.maxTokens);
      if ((client.route === 'chat' || client.route === 'responses') && client.maxTokens === undefined && cap !== undefined) client = { ...client, maxTokens: cap };
      const deadlineAt = started + deps.config.requestDeadlineMs;
      const admissionRequest: AdmissionRequest = {
        requestId,
        startedAt: started,
        deadlineAt,
        tenant,
        token,
        model: client.model,
        sourceIp: req.sourceIp,
        maxTokens: client.maxTokens,
        promptTokenEstimate: client.promptTokenEstimate,
        targets,
      };
      governance.check(admissionRequest, read.counters);
      // Guardrails: refuse or redact the request's text before any key is opened.
      client = applyGuardrails(client, principal, (o) => (guardrails = o));
      // Without a guardrail in the tenant's policy or the token's limits there is nothing to ask
      // Bedrock (effectiveGuardrails is undefined): no call, and no promise turn on every request.
      if (tenant.policy.guardrails !== undefined || token.limits?.guardrails !== undefined) {
        await applyBedrockGuardrails(client, principal, deps.guardrailService, guardrails, (o) => (guardrails = o), clientGone);
      }

      // A target is usable if its secret exists per META or per row; which of them is current is
      // decided (and a mismatch refused) only when an attempt needs that row.
      const recorded = tenant.secretVersions ?? {};
      // The read's own map unless a named secret must be added (copied then: the read stays as read).
      let rows: ReadonlyMap<string, RawItem> = read.secrets;
      for (const t of targets) {
        const slot = secretSlotOf(t.provider, t.secret);
        if (!rows.has(slot) && t.secret !== 'default') {
          const s = await deps.store.getSecret(tenant.tenantId, t.provider, t.secret);
          if (s) rows = new Map(rows).set(slot, s);
        }
      }
      const usable = targets.filter((t) => {
        const slot = secretSlotOf(t.provider, t.secret);
        return rows.has(slot) || Object.prototype.hasOwnProperty.call(recorded, slot) || signedByRouter(t);
      });
      if (usable.length === 0) {
        const names = [...new Set(targets.map((t) => t.provider))].join(', ');
        throw new ApiError(400, 'no_provider_secret', `No stored API key for ${names}; store one with POST /vault/secrets.`);
      }

      // The current generation's factor is opened before anything is reserved (a token that cannot
      // open it fails here); during a factor change the other generation is opened when a row needs it.
      factors = new RequestFactors(token, { token: parsed.token, region, tenant: tenant.tenantId, tokenId: token.tokenId });
      factors.of(tenantGeneration(tenant));
      const requestFactors = factors;
      // The tenant's erasure key came with the same read; without it (offboarded, restored
      // tables) no v2 row opens. A malformed or misfiled item is refused like a bad row.
      erasureKey = erasureKeyFromItem(read.erasureKey, tenant.tenantId);

      // Response cache (opt-in per tenant and route): a hit is replayed with no KMS call, no
      // provider call and no reservation; a miss carries on and is stored after the last byte.
      // A tenant without a cache policy caches nothing (cacheTtlFor is undefined): no call, no promise turn.
      cache = deps.cache && tenant.policy.cache !== undefined
        ? await beginCache({ store: deps.cache, pepper: deps.pepper, region, log: deps.log, now }, { tenant, client, targets, headers: req.headers, factor: requestFactors.of(tenantGeneration(tenant)), erasureKey, requestId })
        : undefined;
      if (cache) sink.setHeader(CACHE_HEADER, cache.status);
      if (cache?.hit) {
        const hit = cache.hit;
        sink.start(200, hit.kind === 'sse' ? SSE_HEADERS : JSON_HEADERS);
        for (const part of replayChunks(hit)) sink.write(part);
        sink.end();
        settled = true;
        return await finish({ status: 200, decision: 'ok', provider: hit.provider, upstreamModel: hit.upstreamModel, costUsd: 0 });
      }

      // 4. Reserve (governance) in parallel with the first KMS Decrypt; the provider waits for both.
      const reserving = governance.reserve(admissionRequest);
      reservation = reserving;
      reserving.catch(() => undefined); // observed below; avoid an unhandled rejection meanwhile
      const activeClient = client;
      const retryHints = new RetryHints();

      const attempt = async (target: Target, signal: CancelSignal): Promise<AttemptOutcome<Upstream>> => {
        const { path, body } = upstreamRequest(activeClient, target);
        const extraHeaders = passthroughHeaders(req, activeClient, target);
        const call = async (apiKey: string): Promise<AttemptOutcome<Upstream>> => {
          await reserving;
          calledTarget = target;
          const res = await deps.providers.send({ target, path, body, apiKey, signal, extraHeaders });
          if (res.status >= 200 && res.status < 300) return { ok: true, value: { kind: 'response', res } };
          const text = await readCapped(res, 64 * 1024);
          if (isRetryableStatus(res.status)) {
            retryHints.note(target, res.status, res.retryAfterMs);
            return { ok: false, retryable: true, reason: 'status', status: res.status, retryAfterMs: res.retryAfterMs };
          }
          return {
            ok: false,
            retryable: false,
            reason: 'status',
            status: res.status,
            // A rejected stored key is not the caller's credential problem: 502, so SDKs do not
            // report the caller's own API key as wrong.
            value: {
              kind: 'client_error',
              status: res.status === 401 || res.status === 403 ? 502 : res.status,
              message: upstreamClientMessage(target, res.status, text, apiKey),
            },
          };
        };
        try {
          // The router's role signs IAM-authenticated Bedrock calls: no tenant secret to open.
          if (signedByRouter(target)) return await call('');
          // Parsed and checked against META only now, before any KMS call; a bad row fails this
          // request (non-retryable) and no request that does not need it.
          const current = currentSecret(tenant, rows, target);
          return await openSecret({
            record: current.sealed,
            // META's version, never the row's: a row written back from an older version fails.
            expected: { app: 'sovereign-router', region, tenant: tenant.tenantId, provider: target.provider, secret: target.secret, version: current.version },
            // A tenant holding its own key: the view scoped to it (tenant-keys.ts).
            dataKeys: tenant.policy.tenantKeyArn === undefined ? dataKeys : recordingDataKeys(dataKeysOfTenant(deps.dataKeys, tenant), keyUses, now),
            tenantFactor: requestFactors.of(current.generation),
            versionSalt: current.generation > 0 ? current.salt : undefined,
            erasureKey,
            use: (key) => call(key.toString('utf8')),
          });
        } catch (err) {
          const failure = transportFailure(err);
          if (failure) return { ok: false, retryable: true, reason: failure };
          throw err;
        }
      };

      let outcome;
      try {
        // Each stored key (tenant, secret, version) has its own circuit for 429 and 401/403, so a
        // key that is rate limited or revoked never opens the endpoint's circuit for other tenants.
        const keyOf = (t: Target) => `${tenant.tenantId}/${t.secret}/v${recorded[secretSlotOf(t.provider, t.secret)]?.version ?? 0}`;
        deadline = requestSignal(deadlineAt, now, clientGone);
        outcome = await executeWithFallback({ targets: usable, deadlineAt, now, sleep, random, breaker, keyOf, attempt, deadlineSignal: deadline.signal, cancelSignal: clientGone });
      } catch (err) {
        if (err instanceof AllTargetsFailedError) {
          chain = err.chain;
          throw new ApiError(
            err.status,
            'upstream_unavailable',
            `No provider could serve the request: ${err.chain.map((s) => `${s.provider} ${s.status ?? (s.outcome === 'key_breaker_open' ? 'stored key paused after repeated 429/401/403' : s.outcome)}`).join(', ')}.`,
            retryHints.details(err.status),
          );
        }
        throw err;
      }
      chain = outcome.chain;
      const target = outcome.target;
      const upstream = outcome.value;

      if (upstream.kind === 'client_error') {
        writeError(sink, new ApiError(upstream.status, upstream.status === 502 ? 'provider_rejected_key' : 'upstream_rejected_request', upstream.message), shape);
        settled = true;
        return await finish({ status: upstream.status, decision: 'client_error', provider: target.provider, secret: target.secret, upstreamModel: target.model }, async () => {
          await (await reserving.catch(() => undefined))?.release();
          return {};
        });
      }

      const res = upstream.res;
      const admitted = await reserving;
      if (!activeClient.stream) {
        let text: string;
        try {
          text = await readCapped(res, MAX_UPSTREAM_BODY);
        } catch (err) {
          if (err instanceof ApiError) throw err;
          if (transportFailure(err) === 'timeout') throw new ApiError(504, 'upstream_timeout', `${target.provider} did not finish its response before the deadline.`);
          throw new ApiError(502, 'upstream_connection_lost', `${target.provider} closed the connection before the response was complete.`);
        }
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          throw new ApiError(502, 'upstream_protocol_error', `${target.provider} returned a response that is not JSON.`);
        }
        const { body, usage } = clientResponse(activeClient, target, json, Math.floor(started / 1000));
        settled = true;
        // Same format both ways: the provider's JSON goes out as it came (parsed once, for usage;
        // never serialized again, which for an embedding's vectors is most of the work).
        const answer = body === json ? text : JSON.stringify(body);
        sink.start(200, JSON_HEADERS);
        sink.write(answer);
        cache?.capture(answer);
        sink.end();
        return await finish(
          { status: 200, decision: 'ok', provider: target.provider, secret: target.secret, upstreamModel: target.model, inputTokens: usage?.inputTokens, outputTokens: usage?.outputTokens },
          () => admitted.settle(usage, target),
        );
      }

      // 5. Stream: translate event by event; a broken upstream ends with a well-formed error event.
      const bridge = streamBridge(activeClient, target, Math.floor(started / 1000));
      sink.start(200, SSE_HEADERS);
      let firstTokenAt: number | undefined;
      let broken: string | undefined;
      const parser = new SseParser();
      const tally = new StreamTally();
      const write = (parts: string[]) => {
        for (const p of parts) {
          if (firstTokenAt === undefined) firstTokenAt = now();
          sink.write(p);
          cache?.capture(p);
        }
      };
      const observe = (ev: SseEvent) => {
        tally.observe(ev);
        write(bridge.push(ev));
      };
      try {
        if (!res.body) throw new Error('empty upstream body');
        const decoder = new TextDecoder();
        for await (const chunk of chunksOf(res.body)) {
          for (const ev of parser.push(decoder.decode(chunk, { stream: true }))) observe(ev);
          if (clientGone?.aborted) break;
        }
        if (!clientGone?.aborted) {
          for (const ev of parser.end()) observe(ev);
          if (!bridge.complete) broken = 'The upstream stream ended before the response was complete.';
        }
      } catch (err) {
        const e = err as { name?: string; message?: string };
        // The provider's own text is not echoed: it may quote the key, which is gone by now and
        // so cannot be redacted. Its error type (a short identifier) is kept.
        const type = (err as { errorType?: unknown })?.errorType;
        broken =
          e?.name === 'UpstreamStreamError'
            ? `The provider reported an error mid-stream${typeof type === 'string' && /^[A-Za-z0-9_.-]{1,64}$/.test(type) ? ` (${type})` : ''}.`
            : 'The upstream stream broke before the response was complete.';
      }
      if (clientGone?.aborted && !bridge.complete) {
        // Nobody is listening: stop here and settle what was used (client-abort.ts).
        void res.body?.cancel().catch(() => undefined);
        sink.end();
        settled = true;
        const { usage, estimated } = abortedUsage(bridge.usage(), activeClient.promptTokenEstimate, tally.outputTokenEstimate);
        return await finish(
          {
            status: 200,
            decision: 'client_aborted',
            aborted: true,
            ...(estimated ? { usageEstimated: true } : {}),
            provider: target.provider,
            secret: target.secret,
            upstreamModel: target.model,
            inputTokens: usage.inputTokens,
            outputTokens: usage.outputTokens,
            timeToFirstTokenMs: firstTokenAt === undefined ? undefined : firstTokenAt - started,
          },
          () => admitted.settle(usage, target),
        );
      }
      if (broken) sink.write(bridge.errorEvent(broken, 'upstream_stream_error'));
      else write(bridge.finish());
      sink.end();
      const usage: TokenUsage | undefined = bridge.usage();
      settled = true;
      return await finish(
        {
          status: 200,
          decision: broken ? 'upstream_stream_broken' : 'ok',
          provider: target.provider,
          secret: target.secret,
          upstreamModel: target.model,
          inputTokens: usage?.inputTokens,
          outputTokens: usage?.outputTokens,
          timeToFirstTokenMs: firstTokenAt === undefined ? undefined : firstTokenAt - started,
        },
        () => admitted.settle(usage, target),
      );
    } catch (err) {
      if (clientGone?.aborted && principal && client) {
        // Cut before or while the answer was read: nothing more goes to the client. If the
        // provider was called it has the prompt, so the input estimate is settled; else released.
        sink.end();
        const pending = settled ? undefined : reservation;
        const estimate = { inputTokens: client.promptTokenEstimate, outputTokens: 0 };
        const settleAborted = async () => {
          const admitted = await pending?.catch(() => undefined);
          if (!admitted) return {};
          if (!calledTarget) {
            await admitted.release();
            return {};
          }
          return admitted.settle(estimate, calledTarget);
        };
        return await finish(
          {
            status: 499,
            decision: 'client_aborted',
            aborted: true,
            ...(calledTarget ? { usageEstimated: true, provider: calledTarget.provider, secret: calledTarget.secret, upstreamModel: calledTarget.model, inputTokens: estimate.inputTokens, outputTokens: 0 } : {}),
          },
          pending ? settleAborted : undefined,
        );
      }
      const api = toApiError(err, requestId);
      if (!(api instanceof ApiError)) deps.log.error('unexpected router error', { requestId, ...errorFields(err) });
      else if (INTEGRITY_CODES.has(api.code)) deps.log.error('stored record refused', { requestId, code: api.code, ...integrityFields(err) });
      writeError(sink, api, shape, requestId);
      const status = api instanceof ApiError ? api.status : 500;
      const decision = api instanceof ApiError ? `${status < 500 ? 'denied' : 'failed'}:${api.code}` : 'failed:internal_error';
      // The error is with the client; give the reservation back afterwards.
      const pending = settled ? undefined : reservation;
      const release = async () => {
        await pending?.then((a) => a.release()).catch(() => undefined);
        return {};
      };
      return await finish({ status, decision }, pending ? release : undefined);
    } finally {
      deadline?.dispose();
      factors?.zeroize();
      zeroize(erasureKey);
    }
  };
}

/** An Amazon Bedrock target called with the router's IAM role (SigV4), not a tenant's sealed key. */
function signedByRouter(target: Pick<Target, 'kind' | 'auth'>): boolean {
  return target.kind === 'bedrock' && target.auth === 'iam';
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

function stricter(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined ? b : b === undefined ? a : Math.min(a, b);
}

/** Which secrets the tenant has, for listing: recorded in META or present as a row. */
function storedSlots(tenant: TenantRecord, rows: ReadonlyMap<string, RawItem>): { has(slot: string): boolean } {
  const recorded = tenant.secretVersions ?? {};
  return { has: (slot) => rows.has(slot) || Object.prototype.hasOwnProperty.call(recorded, slot) };
}

/** The current version of a target's secret: META's entry and the row, which must agree. */
function currentSecret(
  tenant: TenantRecord,
  rows: ReadonlyMap<string, RawItem>,
  target: Target,
): { sealed: SealedSecret; version: number; generation: number; salt?: Buffer } {
  const slot = secretSlotOf(target.provider, target.secret);
  const entry = Object.prototype.hasOwnProperty.call(tenant.secretVersions ?? {}, slot) ? tenant.secretVersions?.[slot] : undefined;
  const raw = rows.get(slot);
  // No entry: the row was deleted (or never stored) and written back. No row: it was removed.
  if (!entry || !raw) throw new SealedSecretError('not_current');
  // Checked and decoded once here; openSecret uses the frozen result as is.
  const sealed = parseSealedRow(raw);
  if (sealed.version !== entry.version) throw new SealedSecretError('not_current');
  // The entry's generation (0: managed) must be one the tenant opens now: its own, or either end of
  // a factor change in progress. A managed entry of a sovereign tenant is refused, and vice versa.
  const generation = entryGeneration(entry);
  if (!openable(tenant, generation)) throw new SealedSecretError('mode_mismatch');
  if (generation === 0) return { sealed, version: entry.version, generation };
  const salt = decodeBase64Strict(entry.salt ?? '');
  if (!salt || salt.length !== VERSION_SALT_BYTES) throw new SealedSecretError('version_salt');
  return { sealed, version: entry.version, generation, salt };
}

/** openableGenerations(tenant).has(generation), without a Set per request. */
export function openable(tenant: Pick<TenantRecord, 'mode' | 'factorGeneration' | 'factorChange'>, generation: number): boolean {
  const change = tenant.factorChange;
  return generation === tenantGeneration(tenant) || (change !== undefined && (generation === change.fromGeneration || generation === change.toGeneration));
}

/** Integrity failures: logged with their reason; no retry can fix them (NO_RETRY header). */
const INTEGRITY_CODES = new Set(['secret_integrity_failure', 'stored_record_unreadable', 'key_access_denied']);

/** Loggable facts about an integrity failure: reasons and codes, never an item or a message from a row. */
function integrityFields(err: unknown): Record<string, string> {
  const e = err as { name?: string; reason?: string; awsCode?: string; record?: string };
  return {
    errorName: String(e?.name ?? 'unknown'),
    ...(typeof e?.reason === 'string' ? { reason: e.reason } : {}),
    ...(typeof e?.awsCode === 'string' ? { awsCode: e.awsCode } : {}),
    ...(typeof e?.record === 'string' ? { record: e.record } : {}),
  };
}

function toApiError(err: unknown, requestId: string): unknown {
  if (err instanceof ApiError) return err;
  if (err instanceof TranslationError) return new ApiError(400, 'invalid_request', err.message);
  if (err instanceof UpstreamProtocolError) return new ApiError(502, 'upstream_protocol_error', 'The provider returned a response that could not be translated.');
  const name = (err as { name?: string } | undefined)?.name;
  if (name === 'TenantFactorError') return new ApiError(403, 'tenant_factor_unavailable', 'This token cannot unwrap the tenant factor.');
  if (name === 'StoredRecordError') return storedRecordApiError(requestId);
  if (name === 'SealedSecretError') return secretIntegrityError(requestId);
  if (isTenantKeyRefusal(err)) return tenantKeyUnavailable(requestId);
  if (name === 'KeyServiceError') {
    const reason = (err as { reason?: string }).reason;
    // The wrapped key does not authenticate under this secret's context: a moved or edited row.
    if (reason === 'invalid_ciphertext') return secretIntegrityError(requestId);
    if (reason === 'denied') {
      return new ApiError(
        500,
        'key_access_denied',
        'The key service refused to open the stored provider key; retrying will not help. Contact the operator with the request id.',
        { request_id: requestId },
        NO_RETRY,
      );
    }
    return new ApiError(503, 'key_service_unavailable', 'The key service is unavailable; retry later.');
  }
  if (name === 'PepperError') return new ApiError(503, 'service_unavailable', 'The service is temporarily unavailable; retry later.');
  return err;
}

function secretIntegrityError(requestId: string): ApiError {
  return new ApiError(
    500,
    'secret_integrity_failure',
    'The stored provider key for this route failed an integrity check, so the request cannot succeed; retrying will not help. Store the key again (PUT /vault/secrets) or contact the operator with the request id.',
    { request_id: requestId },
    NO_RETRY,
  );
}

function writeError(sink: ResponseSink, err: unknown, shape: ErrorShape, requestId?: string): void {
  const res = errorResponse(err, shape, requestId);
  try {
    sink.start(res.status, { ...res.headers });
  } catch {
    // Already streaming: the caller wrote an error event instead.
    return;
  }
  sink.write(res.body);
  sink.end();
}

/**
 * The provider's message for a client error, without anything that could carry the key:
 * authentication failures get our own message, others are scrubbed of the key and its fragments.
 */
function upstreamClientMessage(target: Target, status: number, text: string, apiKey: string): string {
  if ((status === 401 || status === 403) && signedByRouter(target)) {
    return `${target.provider} refused the gateway's own role (HTTP ${status}); the operator must allow this model for the router (RegionalRouter providers' models).`;
  }
  if (status === 401 || status === 403) {
    return `${target.provider} rejected the stored API key (HTTP ${status}); rotate it with PUT /vault/secrets/${target.provider}/${target.secret}.`;
  }
  let message = `${target.provider} rejected the request (HTTP ${status})`;
  try {
    const json = JSON.parse(text) as { error?: { message?: unknown } | string; message?: unknown };
    const m = typeof json.error === 'object' ? json.error?.message : typeof json.error === 'string' ? json.error : json.message;
    if (typeof m === 'string') message += `: ${m.slice(0, 500)}`;
  } catch {
    // not JSON: keep the generic message
  }
  for (const fragment of keyFragments(apiKey)) message = message.split(fragment).join('[redacted]');
  return message;
}

/** The key and every 8-character piece of it: providers echo prefixes and suffixes. */
function keyFragments(key: string): string[] {
  if (key.length === 0) return [];
  const out = [key];
  for (let i = 0; i + 8 <= key.length; i++) out.push(key.slice(i, i + 8));
  return out;
}

/** Anthropic clients pick an API version; on passthrough the provider must see the same one. */
function passthroughHeaders(req: HttpRequest, client: ClientRequest, target: Target): Record<string, string> | undefined {
  if (client.route !== 'messages' || target.kind !== 'anthropic') return undefined;
  const version = req.headers['anthropic-version'];
  return version && /^\d{4}-\d{2}-\d{2}$/.test(version) ? { 'anthropic-version': version } : undefined;
}
