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
 * Frames: [payload length u32 LE][CRC-32 of the payload u32 LE][payload]; the payload is the
 * JSON array of the row's key columns, a newline (JSON text has none), and the body's UTF-8
 * bytes. A frame cut short or damaged (a write the process died in, a failed write that is
 * overwritten) ends the journal: nothing after it was ever acknowledged, since the journal is
 * written from its end and a failed write fails its whole group.
 */
import { chmodSync, closeSync, constants, fdatasyncSync, fstatSync, ftruncateSync, openSync, readSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';

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
  const keys = JSON.stringify([row[0], row[1], row[2], row[3], row[4]]);
  const body = row[5];
  const keyBytes = Buffer.byteLength(keys);
  const frame = Buffer.allocUnsafe(HEADER + keyBytes + 1 + body.length);
  frame.write(keys, HEADER, 'utf8');
  frame[HEADER + keyBytes] = 0x0a;
  frame.set(body, HEADER + keyBytes + 1);
  const payload = frame.subarray(HEADER);
  frame.writeUInt32LE(payload.length, 0);
  frame.writeUInt32LE(crc32(payload), 4);
  return frame;
}

/** The rows of a journal's bytes, up to its first frame that is short, damaged or not a row. */
export function rowsOf(bytes: Buffer): UsageRow[] {
  const rows: UsageRow[] = [];
  for (let at = 0; at + HEADER <= bytes.length; ) {
    const length = bytes.readUInt32LE(at);
    if (length === 0 || length > MAX_PAYLOAD || at + HEADER + length > bytes.length) break;
    const payload = bytes.subarray(at + HEADER, at + HEADER + length);
    if (crc32(payload) !== bytes.readUInt32LE(at + 4)) break;
    const newline = payload.indexOf(0x0a);
    if (newline < 0) break;
    let keys: unknown;
    try {
      keys = JSON.parse(payload.subarray(0, newline).toString('utf8'));
    } catch {
      break;
    }
    if (!isKeys(keys)) break;
    rows.push([keys[0], keys[1], keys[2], keys[3], keys[4], Buffer.from(payload.subarray(newline + 1))]);
    at += HEADER + length;
  }
  return rows;
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

  /** The rows a killed process left (read once, when the store opens). */
  recover(): UsageRow[] {
    const size = fstatSync(this.fd).size;
    if (size === 0) return [];
    const bytes = Buffer.allocUnsafe(size);
    let read = 0;
    while (read < size) {
      const n = readSync(this.fd, bytes, read, size - read, read);
      if (n === 0) break;
      read += n;
    }
    return rowsOf(bytes.subarray(0, read));
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
