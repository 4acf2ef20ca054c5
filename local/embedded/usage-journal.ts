/**
 * The usage records' journal: an append-only file next to the database (`usage.journal`, 0600)
 * that a group commit writes its usage records to, in one write, before its COMMIT (database.ts).
 * A usage record is then on disk as soon as it would have been in the WAL, for a fraction of the
 * work: one write of the records' bytes instead of a 4 KB WAL frame for the usage table's leaf
 * page, and for every page a B-tree split touches (about 2.6 frames per record), each frame two
 * writes plus a checksum over the page. The records are moved into the usage table in batches
 * (one transaction for hundreds, off the request path), and before any statement that touches
 * the usage table, so every reader sees them; once they are committed there, the journal is
 * emptied. A journal left by a killed process is moved into the table when the store opens.
 *
 * It also holds settles (and releases) of reservations made durable before their SQL runs
 * (database.ts `deferredApply`): the counter updates of one ledger write and the reservation row
 * it deletes. Replaying one is idempotent: it applies only while that reservation row still
 * exists, and the SQL that applied it deleted the row in the same transaction.
 *
 * And it holds budget reservations made durable before their SQL runs (database.ts
 * `journalReservation`): the reservation row and its counter updates, with a sequence number.
 * The group that applies one also stores the highest sequence number applied so far (in order)
 * in the database, in the same transaction; replaying one applies it only above that number, so a
 * reservation applied once is never applied again, whatever happened to its row since (a settle,
 * a reclaim, an expiry).
 *
 * Frames: [payload length u32 LE][CRC-32 of the payload u32 LE][payload]; the payload is a JSON
 * array of keys, a newline (JSON text has none), and a body. A usage row: the row's five key
 * columns, then the body's UTF-8 bytes. A ledger write: `["ledger"]`, then its JSON. A
 * reservation: `["reserve"]`, then its JSON. A frame cut
 * short or damaged (a write the process died in, a failed write that is overwritten) ends the
 * journal: nothing after it was ever acknowledged, since the journal is written from its end and
 * a failed write fails its whole group.
 */
import { chmodSync, closeSync, constants, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { COUNTER_FIELDS, CounterField } from '../../lambda/core/governance/ledger';

/** The usage table's columns, in order: tenant_id, sk, at, request_id, expires_at, body (UTF-8 of JSON text). */
export type UsageRow = readonly [string, string, string, string, number, Uint8Array];

export const USAGE_JOURNAL_FILE = 'usage.journal';
/** The statement that moves a row into the table: keyed like the DynamoDB item, a second write of one key replaces it. */
export const INSERT_USAGE_SQL = 'INSERT OR REPLACE INTO usage(tenant_id, sk, at, request_id, expires_at, body) VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT))';

const HEADER = 8;
/** A frame longer than this is taken for damage (a usage record is a few KB at most). */
const MAX_PAYLOAD = 16 * 1024 * 1024;

/** One row as a journal frame. */
export function frameOf(row: UsageRow): Buffer {
  return frameWith(JSON.stringify([row[0], row[1], row[2], row[3], row[4]]), row[5]);
}

/**
 * A settle or release journaled before its SQL runs: the reservation row it deletes and the
 * counter updates it makes (no ceilings: it is applied whenever that row still exists).
 */
export interface JournaledLedgerWrite {
  readonly reservation: { readonly pk: string; readonly sk: string };
  readonly counters: readonly {
    readonly key: { readonly pk: string; readonly sk: string };
    readonly add: Partial<Record<CounterField, number>>;
    readonly expiresAt?: number;
    readonly tokenId?: string;
  }[];
}

/**
 * A budget reservation journaled before its SQL runs: its row (the reservation record's JSON text
 * as stored) and its counter updates (no ceilings: they were checked when it was journaled), with
 * the sequence number that says whether a replay must apply it.
 */
export interface JournaledReservation {
  readonly seq: number;
  readonly put: { readonly pk: string; readonly sk: string; readonly expiresAt: number; readonly reclaimAfter: number; readonly body: string };
  readonly counters: JournaledLedgerWrite['counters'];
}

export type JournalEntry = { readonly row: UsageRow } | { readonly ledger: JournaledLedgerWrite } | { readonly reservation: JournaledReservation };

const LEDGER_KEYS = '["ledger"]';
const RESERVE_KEYS = '["reserve"]';

/**
 * A ledger write as a journal frame: its JSON written field by field (only the fields the reader
 * accepts, counter fields in COUNTER_FIELDS order), without building a copy of the write first.
 */
export function ledgerFrameOf(w: JournaledLedgerWrite): Buffer {
  const json = `{"reservation":{"pk":${JSON.stringify(w.reservation.pk)},"sk":${JSON.stringify(w.reservation.sk)}},"counters":${countersJson(w.counters)}}`;
  return frameWithText(LEDGER_KEYS, json);
}

/** A reservation as a journal frame (field by field, like ledgerFrameOf). */
export function reservationFrameOf(r: JournaledReservation): Buffer {
  const p = r.put;
  const json =
    `{"seq":${r.seq},"put":{"pk":${JSON.stringify(p.pk)},"sk":${JSON.stringify(p.sk)},"expiresAt":${p.expiresAt},"reclaimAfter":${p.reclaimAfter},` +
    `"body":${JSON.stringify(p.body)}},"counters":${countersJson(r.counters)}}`;
  return frameWithText(RESERVE_KEYS, json);
}

/** `"<field>":` of each counter field, in COUNTER_FIELDS order. */
const FIELD_JSON = COUNTER_FIELDS.map((f) => `"${f}":`);
/** The JSON text that opens a counter update of one key, made once per key (a request's keys are mostly the last one's). */
const keyOpenings = new Map<string, Map<string, string>>();
/** Keys remembered per level before it starts over (rate windows add a key every minute). */
const MAX_OPENINGS = 1_024;

function keyOpening(pk: string, sk: string): string {
  let bySk = keyOpenings.get(pk);
  if (bySk === undefined) {
    if (keyOpenings.size >= MAX_OPENINGS) keyOpenings.clear();
    keyOpenings.set(pk, (bySk = new Map()));
  }
  let opening = bySk.get(sk);
  if (opening === undefined) {
    if (bySk.size >= MAX_OPENINGS) bySk.clear();
    opening = `{"key":{"pk":${JSON.stringify(pk)},"sk":${JSON.stringify(sk)}},"add":{`;
    bySk.set(sk, opening);
  }
  return opening;
}

function countersJson(counters: JournaledLedgerWrite['counters']): string {
  let json = '[';
  for (let i = 0; i < counters.length; i++) {
    const c = counters[i];
    if (i > 0) json += ',';
    json += keyOpening(c.key.pk, c.key.sk);
    let first = true;
    for (let k = 0; k < COUNTER_FIELDS.length; k++) {
      const v = c.add[COUNTER_FIELDS[k]];
      if (v === undefined) continue;
      json += first ? FIELD_JSON[k] : `,${FIELD_JSON[k]}`;
      json += v;
      first = false;
    }
    json += '}';
    if (c.expiresAt !== undefined) json += `,"expiresAt":${c.expiresAt}`;
    if (c.tokenId !== undefined) json += `,"tokenId":${JSON.stringify(c.tokenId)}`;
    json += '}';
  }
  return `${json}]`;
}

/** A frame whose body is `text`'s UTF-8, encoded straight into the frame (no copy of it made first). */
function frameWithText(keys: string, text: string): Buffer {
  const keyBytes = keys.length; // the keys here are ASCII
  const bodyStart = HEADER + keyBytes + 1;
  const frame = Buffer.allocUnsafe(bodyStart + Buffer.byteLength(text, 'utf8'));
  frame.write(keys, HEADER, 'latin1');
  frame[HEADER + keyBytes] = 0x0a;
  frame.write(text, bodyStart, 'utf8');
  return sealFrame(frame);
}

/** Writes the payload's length and CRC-32 into the header. */
function sealFrame(frame: Buffer): Buffer {
  const payload = frame.subarray(HEADER);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload), 4);
  return frame;
}

function frameWith(keys: string, body: Uint8Array): Buffer {
  const keyBytes = Buffer.byteLength(keys);
  const frame = Buffer.allocUnsafe(HEADER + keyBytes + 1 + body.length);
  frame.write(keys, HEADER, 'utf8');
  frame[HEADER + keyBytes] = 0x0a;
  frame.set(body, HEADER + keyBytes + 1);
  return sealFrame(frame);
}

/** The usage rows of a journal's bytes, up to its first frame that is short, damaged or not an entry. */
export function rowsOf(bytes: Buffer): UsageRow[] {
  return entriesOf(bytes).flatMap((e) => ('row' in e ? [e.row] : []));
}

/** The entries of a journal's bytes, up to its first frame that is short, damaged or not an entry. */
export function entriesOf(bytes: Buffer): JournalEntry[] {
  const entries: JournalEntry[] = [];
  for (let at = 0; at + HEADER <= bytes.length; ) {
    const length = bytes.readUInt32LE(at);
    if (length === 0 || length > MAX_PAYLOAD || at + HEADER + length > bytes.length) break;
    const payload = bytes.subarray(at + HEADER, at + HEADER + length);
    if (crc32(payload) !== bytes.readUInt32LE(at + 4)) break;
    const newline = payload.indexOf(0x0a);
    if (newline < 0) break;
    let keys: unknown;
    let ledger: unknown;
    let reservation: unknown;
    try {
      keys = JSON.parse(payload.subarray(0, newline).toString('utf8'));
      const kind = Array.isArray(keys) && keys.length === 1 ? keys[0] : undefined;
      if (kind === 'ledger') ledger = JSON.parse(payload.subarray(newline + 1).toString('utf8'));
      else if (kind === 'reserve') reservation = JSON.parse(payload.subarray(newline + 1).toString('utf8'));
    } catch {
      break;
    }
    if (ledger !== undefined) {
      if (!isLedgerWrite(ledger)) break;
      entries.push({ ledger });
    } else if (reservation !== undefined) {
      if (!isReservation(reservation)) break;
      entries.push({ reservation });
    } else {
      if (!isKeys(keys)) break;
      entries.push({ row: [keys[0], keys[1], keys[2], keys[3], keys[4], Buffer.from(payload.subarray(newline + 1))] });
    }
    at += HEADER + length;
  }
  return entries;
}

const isKey = (k: unknown): k is { pk: string; sk: string } =>
  typeof k === 'object' && k !== null && !Array.isArray(k) && typeof (k as { pk?: unknown }).pk === 'string' && typeof (k as { sk?: unknown }).sk === 'string';

/** Exactly the shape ledgerFrameOf writes: safe-integer amounts of known fields, string keys. */
function isLedgerWrite(v: unknown): v is JournaledLedgerWrite {
  if (typeof v !== 'object' || v === null || !isKey((v as { reservation?: unknown }).reservation)) return false;
  return isCounters((v as { counters?: unknown }).counters);
}

/** Exactly the shape reservationFrameOf writes: a positive safe-integer sequence number, a row with safe-integer times and a text body. */
function isReservation(v: unknown): v is JournaledReservation {
  if (typeof v !== 'object' || v === null) return false;
  const { seq, put, counters } = v as { seq?: unknown; put?: unknown; counters?: unknown };
  if (!Number.isSafeInteger(seq) || (seq as number) < 1 || !isKey(put)) return false;
  const { expiresAt, reclaimAfter, body } = put as { expiresAt?: unknown; reclaimAfter?: unknown; body?: unknown };
  return Number.isSafeInteger(expiresAt) && Number.isSafeInteger(reclaimAfter) && typeof body === 'string' && isCounters(counters);
}

function isCounters(counters: unknown): counters is JournaledLedgerWrite['counters'] {
  if (!Array.isArray(counters)) return false;
  return counters.every((c: unknown) => {
    if (typeof c !== 'object' || c === null || !isKey((c as { key?: unknown }).key)) return false;
    const { add, expiresAt, tokenId } = c as { add?: unknown; expiresAt?: unknown; tokenId?: unknown };
    if (typeof add !== 'object' || add === null || Array.isArray(add)) return false;
    const fieldsOk = Object.entries(add).every(([f, n]) => (COUNTER_FIELDS as readonly string[]).includes(f) && Number.isSafeInteger(n));
    return fieldsOk && (expiresAt === undefined || Number.isSafeInteger(expiresAt)) && (tokenId === undefined || typeof tokenId === 'string');
  });
}

function isKeys(v: unknown): v is [string, string, string, string, number] {
  return Array.isArray(v) && v.length === 5 && v.slice(0, 4).every((s) => typeof s === 'string') && typeof v[4] === 'number' && Number.isSafeInteger(v[4]);
}

/** The journal file: appended to at its end, emptied once its rows are in the table. */
export class UsageJournal {
  private readonly fd: number;
  /** Where the next frame goes: the end of the frames written so far (a failed write is overwritten). */
  private end = 0;
  private closed = false;

  constructor(path: string) {
    // Not O_APPEND: frames are written at a position (a failed write is overwritten by the next).
    this.fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600);
    chmodSync(path, 0o600);
  }

  /** The entries a killed process left (read once, when the store opens). */
  recover(): JournalEntry[] {
    const size = fstatSync(this.fd).size;
    if (size === 0) return [];
    const bytes = Buffer.allocUnsafe(size);
    let read = 0;
    while (read < size) {
      const n = readSync(this.fd, bytes, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return entriesOf(bytes.subarray(0, read));
  }

  /** Writes the frames after the last ones, in one write; on disk like a WAL frame (and synced with `sync`). Throws if not all was written. */
  append(frames: readonly Buffer[], sync: boolean): void {
    const bytes = frames.length === 1 ? frames[0] : Buffer.concat(frames);
    const written = writeSync(this.fd, bytes, 0, bytes.length, this.end);
    if (written !== bytes.length) throw new Error('embedded store: the usage journal was written only in part');
    if (sync) fdatasyncSync(this.fd);
    this.end += bytes.length;
  }

  /** Empties the journal (its rows are committed in the table). */
  clear(): void {
    ftruncateSync(this.fd, 0);
    this.end = 0;
  }

  get bytes(): number {
    return this.end;
  }

  /** The file descriptor, for a background flush to disk. */
  get descriptor(): number {
    return this.fd;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    closeSync(this.fd);
  }
}
