/**
 * Verification of a tenant's audit trail against its anchors and its current secret rows.
 * Pure: the caller reads events, anchors and rows through its adapters and passes them in.
 *
 * What each check catches (the adversary holds table write access, not the audit key):
 * - MAC under the audit key over (tenant, seq, fields, previous MAC): edited, forged, reordered
 *   and replayed (other tenant, other seq) events.
 * - Contiguous seqs and previous-MAC links: dropped events in the middle.
 * - Anchors (write-once, outside the tables) and the tenant's head: dropped newest events, and a
 *   whole chain recomputed by anyone, including a holder of the audit key, before an anchor.
 * - Secret rows against the last secret event per (provider, name): restored older rows.
 */
import { AUDIT_GENESIS, AuditEvent, AuditHead, auditMessage } from './audit-chain';
import type { SealedSecret } from './envelope';
import type { AuditMac, StoredAuditAnchor } from './ports';
import { sealedRowDigest } from './sealed-digest';

export type AuditFindingCode =
  | 'missing'
  | 'truncated'
  | 'not_authentic'
  | 'chain_broken'
  | 'wrong_tenant'
  | 'anchor_mismatch'
  | 'anchor_rewritten'
  | 'anchor_malformed'
  | 'head_mismatch'
  | 'secret_rolled_back'
  | 'secret_replaced'
  | 'secret_unrecorded'
  | 'secret_missing'
  | 'version_record_mismatch';

export interface AuditFinding {
  /** The event the finding is about (for a secret row: the event that recorded its expected state). */
  readonly seq?: number;
  readonly type?: string;
  readonly code: AuditFindingCode;
  readonly message: string;
}

export interface AuditVerification {
  readonly ok: boolean;
  readonly tenantId: string;
  /** Events present in the trail. */
  readonly events: number;
  /** Highest seq known from events, anchors or the tenant's head. */
  readonly lastSeq: number;
  /** Highest anchored seq. */
  readonly anchoredThrough: number;
  /** The first finding by seq (the first bad event), when not ok. */
  readonly firstBad?: AuditFinding;
  readonly findings: readonly AuditFinding[];
  /** Authentic events without an anchor (e.g. the anchor write failed): not provable against truncation. */
  readonly unanchored: readonly number[];
}

export interface AuditTrailSnapshot {
  readonly tenantId: string;
  readonly events: readonly AuditEvent[];
  readonly anchors: readonly StoredAuditAnchor[];
  /** The head on the tenant record (auditSeq, auditHead). */
  readonly head?: AuditHead;
  /** The tenant's current sealed-secret rows; omit to skip the row cross-check. */
  readonly secrets?: readonly SealedSecret[];
  /** Versions the tenant record says are current, keyed `provider/name` (when the store records them). */
  readonly recordedVersions?: Readonly<Record<string, number>>;
}

const SECRET_WRITES = new Set(['secret.stored', 'secret.rotated', 'secret.resealed', 'secret.rewrapped']);
const VERIFY_CONCURRENCY = 8;

const label = (e: Pick<AuditEvent, 'seq' | 'type'>) => `event #${e.seq} (${typeof e.type === 'string' ? e.type : '?'})`;
const secretKey = (provider: unknown, name: unknown) => `${String(provider)}/${String(name)}`;

async function macValid(mac: AuditMac, e: AuditEvent): Promise<boolean> {
  try {
    if (typeof e.mac !== 'string' || !/^[0-9a-f]{64}$/.test(e.mac)) return false;
    return await mac.verify(auditMessage(e), Buffer.from(e.mac, 'hex'));
  } catch (err) {
    // A malformed event cannot be encoded: not authentic. A failing key service is not a verdict.
    if (err instanceof Error && /canonicalEncode|audit details/.test(err.message)) return false;
    throw err;
  }
}

async function verifyAll(mac: AuditMac, events: readonly AuditEvent[]): Promise<boolean[]> {
  const out = new Array<boolean>(events.length);
  let next = 0;
  const worker = async () => {
    while (next < events.length) {
      const i = next++;
      out[i] = await macValid(mac, events[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(VERIFY_CONCURRENCY, events.length) }, worker));
  return out;
}

/** Chain, MACs, anchors and head: the findings about events. */
async function checkChain(s: AuditTrailSnapshot, mac: AuditMac, findings: AuditFinding[]) {
  const bySeq = new Map<number, AuditEvent>();
  for (const e of s.events) {
    if (e.tenantId !== s.tenantId) {
      findings.push({ seq: e.seq, type: e.type, code: 'wrong_tenant', message: `${label(e)} belongs to tenant '${String(e.tenantId)}'` });
      continue;
    }
    if (Number.isSafeInteger(e.seq) && e.seq > 0) bySeq.set(e.seq, e);
  }
  const ordered = [...bySeq.values()].sort((a, b) => a.seq - b.seq);
  const valid = new Map<number, boolean>();
  (await verifyAll(mac, ordered)).forEach((ok, i) => valid.set(ordered[i].seq, ok));

  const anchors = new Map(s.anchors.map((a) => [a.seq, a]));
  const lastEventSeq = ordered.at(-1)?.seq ?? 0;
  const anchoredThrough = Math.max(0, ...s.anchors.filter((a) => a.anchor).map((a) => a.seq));
  const lastSeq = Math.max(lastEventSeq, anchoredThrough, s.head?.seq ?? 0);
  const unanchored: number[] = [];

  let prevMac: string | undefined = AUDIT_GENESIS;
  for (let seq = 1; seq <= lastSeq; seq++) {
    const e = bySeq.get(seq);
    if (!e) {
      findings.push(
        seq > lastEventSeq
          ? {
              seq,
              code: 'truncated',
              message: `event #${seq} is missing: the trail ends at #${lastEventSeq}, but ${anchoredThrough >= seq ? `an anchor records #${anchoredThrough}` : `the tenant's head is at #${s.head?.seq}`}`,
            }
          : { seq, code: 'missing', message: `event #${seq} is missing from the trail` },
      );
      if (seq > lastEventSeq) break; // one finding for a cut-off tail
      prevMac = undefined;
      continue;
    }
    if (!valid.get(seq)) {
      findings.push({ seq, type: e.type, code: 'not_authentic', message: `${label(e)} is not authentic: its MAC does not verify under the audit key` });
    } else if (prevMac !== undefined && e.prevMac !== prevMac) {
      findings.push({ seq, type: e.type, code: 'chain_broken', message: `${label(e)} does not follow event #${seq - 1}` });
    }
    const a = anchors.get(seq);
    if (a?.anchor && a.anchor.mac !== e.mac) {
      findings.push({ seq, type: e.type, code: 'anchor_mismatch', message: `${label(e)} differs from the event anchored at #${seq}` });
    }
    if (!a?.anchor) unanchored.push(seq);
    prevMac = typeof e.mac === 'string' ? e.mac : undefined;
  }

  for (const a of s.anchors) {
    if (a.malformed) findings.push({ seq: a.seq, code: 'anchor_malformed', message: `the anchor of event #${a.seq} is not a valid anchor of this tenant` });
    if (a.laterVersions > 0) {
      findings.push({ seq: a.seq, code: 'anchor_rewritten', message: `someone tried to rewrite the anchor of event #${a.seq} (${a.laterVersions} later version(s) or delete marker(s))` });
    }
  }
  const headEvent = s.head ? bySeq.get(s.head.seq) : undefined;
  if (s.head && s.head.seq > 0 && headEvent && headEvent.mac !== s.head.mac) {
    findings.push({ seq: s.head.seq, type: headEvent.type, code: 'head_mismatch', message: `the tenant's audit head does not match ${label(headEvent)}` });
  }
  if (s.head && lastEventSeq > s.head.seq) {
    const seq = s.head.seq + 1;
    findings.push({ seq, type: bySeq.get(seq)?.type, code: 'head_mismatch', message: `event #${seq} lies beyond the tenant's audit head #${s.head.seq}` });
  }
  return { ordered, lastSeq, anchoredThrough, unanchored };
}

interface ExpectedSecret {
  readonly seq: number;
  readonly type: string;
  readonly version?: number;
  readonly digest?: string;
  readonly deleted: boolean;
}

/**
 * What the trail says each secret row should be. Events that are not authentic count too: they
 * are findings of their own already, and skipping them would blame an earlier, genuine event.
 */
function expectedSecrets(ordered: readonly AuditEvent[]): Map<string, ExpectedSecret> {
  const expected = new Map<string, ExpectedSecret>();
  for (const e of ordered) {
    const d = typeof e.details === 'object' && e.details !== null ? e.details : {};
    if (SECRET_WRITES.has(e.type)) {
      expected.set(secretKey(d.provider, d.name), {
        seq: e.seq,
        type: e.type,
        version: Number(d.version),
        digest: typeof d.rowDigest === 'string' ? d.rowDigest : undefined,
        deleted: false,
      });
    } else if (e.type === 'secret.deleted') {
      expected.set(secretKey(d.provider, d.name), { seq: e.seq, type: e.type, deleted: true });
    } else if (e.type === 'tenant.offboarded') {
      for (const [k] of expected) expected.set(k, { seq: e.seq, type: e.type, deleted: true });
    }
  }
  return expected;
}

function checkSecrets(s: AuditTrailSnapshot, expected: Map<string, ExpectedSecret>, findings: AuditFinding[]): void {
  const seen = new Set<string>();
  for (const row of s.secrets ?? []) {
    const key = secretKey(row.provider, row.secret);
    seen.add(key);
    const exp = expected.get(key);
    const at = exp ? { seq: exp.seq, type: exp.type } : {};
    if (!exp || exp.deleted) {
      findings.push({
        ...at,
        code: 'secret_unrecorded',
        message: exp
          ? `secret row ${key} (version ${row.version}) exists, but event #${exp.seq} (${exp.type}) removed it`
          : `secret row ${key} (version ${row.version}) was never recorded in the audit trail`,
      });
    } else if (row.version !== exp.version) {
      findings.push({
        ...at,
        code: 'secret_rolled_back',
        message: `secret row ${key} holds version ${row.version}, but event #${exp.seq} (${exp.type}) recorded version ${exp.version}`,
      });
    } else if (exp.digest !== undefined && sealedRowDigest(row) !== exp.digest) {
      findings.push({ ...at, code: 'secret_replaced', message: `secret row ${key} (version ${row.version}) is not the row event #${exp.seq} (${exp.type}) recorded` });
    }
  }
  if (s.secrets) {
    for (const [key, exp] of expected) {
      if (!exp.deleted && !seen.has(key)) {
        findings.push({ seq: exp.seq, type: exp.type, code: 'secret_missing', message: `secret row ${key} recorded by event #${exp.seq} (${exp.type}) is missing` });
      }
    }
  }
  for (const [key, version] of Object.entries(s.recordedVersions ?? {})) {
    const exp = expected.get(key);
    if (!exp || exp.deleted || exp.version !== version) {
      findings.push({
        ...(exp ? { seq: exp.seq, type: exp.type } : {}),
        code: 'version_record_mismatch',
        message: `the tenant record says ${key} is at version ${version}, but the audit trail ${exp && !exp.deleted ? `recorded version ${exp.version} (event #${exp.seq})` : 'has no such current secret'}`,
      });
    }
  }
}

/** Verifies a tenant's trail. `ok` is false if anything was found; `firstBad` names the earliest. */
export async function verifyAuditTrail(s: AuditTrailSnapshot, mac: AuditMac): Promise<AuditVerification> {
  const findings: AuditFinding[] = [];
  const { ordered, lastSeq, anchoredThrough, unanchored } = await checkChain(s, mac, findings);
  checkSecrets(s, expectedSecrets(ordered), findings);
  const sorted = findings
    .map((f, i) => ({ f, i }))
    .sort((a, b) => (a.f.seq ?? Infinity) - (b.f.seq ?? Infinity) || a.i - b.i)
    .map(({ f }) => f);
  return {
    ok: sorted.length === 0,
    tenantId: s.tenantId,
    events: s.events.length,
    lastSeq,
    anchoredThrough,
    ...(sorted.length > 0 ? { firstBad: sorted[0] } : {}),
    findings: sorted,
    unanchored,
  };
}
