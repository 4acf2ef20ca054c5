/**
 * An exact in-process cache of the rows a request reads by key and that change only through
 * vault and admin writes: tenants, tokens, secrets (sealed, never a plaintext key) and erasure
 * keys. Exact, not "fresh enough": only this process writes the database (EXCLUSIVE lock and a
 * lock file), and EmbeddedDatabase clears the whole cache before any statement that might change
 * one of those tables runs, and on every rollback, so the very next read after a revocation,
 * a secret rotation, a policy change or an offboarding goes to SQLite. Writes to those tables
 * are rare; clearing everything keeps the rule simple enough to be obviously right.
 *
 * Entries are the stored body text (or "no row") and, once asked for, the body parsed into one
 * deeply frozen object (lambda/core/shared-rows.ts) that every request reading the unchanged row
 * gets: the router's parsers keep what they checked by that object, so an unchanged row is
 * neither parsed again nor turned back into text to be recognised. Cleared with the text.
 */

import { shareRow } from '../../lambda/core/shared-rows';

/**
 * Statements that may leave the cache in place: reads (a SELECT cannot write: no user function
 * is registered), transaction control, and writes whose target is one of the request path's own
 * tables (a SQLite write changes only its target table: the schema has no trigger, which the
 * database refuses to create, and no foreign keys). Everything else (a write to a cached table,
 * DDL, ROLLBACK, anything not recognised) clears it.
 */
const KEEPS_CACHE =
  /^\s*(?:SELECT\b|(?:BEGIN IMMEDIATE|COMMIT|SAVEPOINT \w+|RELEASE \w+)$|PRAGMA wal_checkpoint\b|(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|UPDATE|DELETE\s+FROM)\s+(?:counters|reservations|usage|response_cache|audit|meta)\b)/i;

/** What SQLite takes for a blank: white space and comments (block comments, and dash-dash comments to the end of the line). */
const BLANK = String.raw`(?:\s|/\*[\s\S]*?(?:\*/|$)|--[^\n]*(?:\n|$))`;
/** A statement that could create a trigger (which could write a cached table behind a write to another). */
export const CREATES_TRIGGER = new RegExp(String.raw`^${BLANK}*CREATE${BLANK}+(?:TEMP(?:ORARY)?${BLANK}+)?TRIGGER\b`, 'i');

export function invalidatesRowCache(sql: string): boolean {
  return !KEEPS_CACHE.test(sql);
}

/**
 * Entries kept before the cache starts over: a bound on memory (about 10 MB of text at most, and
 * about as much again in the parses of the rows requests read), not an
 * eviction policy. Lookups of unknown tokens are cached as "no row" too, so a flood of made-up
 * tokens only makes the cache start over now and then.
 */
const MAX_ENTRIES = 10_000;
const MISSING = Symbol('no row');

/** A cached row: its text, and its parse once a caller asked for it. */
interface Row {
  readonly body: string;
  item?: object;
}

export class RowCache {
  private readonly entries = new Map<string, Row | typeof MISSING>();
  /** Clears so far (tests). */
  clears = 0;

  /** The cached body of `key`, else `load()`'s (cached). Undefined: no row. */
  get(key: string, load: () => string | undefined): string | undefined {
    const row = this.row(key, load);
    return row === undefined ? undefined : row.body;
  }

  /**
   * The cached row of `key` parsed by `parse` (which must return a fresh object: it is deeply
   * frozen and shared, shared-rows.ts), the same object until the cache is cleared. The parse is
   * kept per key; a cache holds one parse per key, so every caller of one key passes the same parse.
   * Undefined: no row.
   */
  item<T extends object>(key: string, load: () => string | undefined, parse: (body: string) => T): Readonly<T> | undefined {
    const row = this.row(key, load);
    if (row === undefined) return undefined;
    return (row.item ??= shareRow(parse(row.body))) as Readonly<T>;
  }

  private row(key: string, load: () => string | undefined): Row | undefined {
    const hit = this.entries.get(key);
    if (hit !== undefined) return hit === MISSING ? undefined : hit;
    const body = load();
    if (this.entries.size >= MAX_ENTRIES) this.entries.clear();
    const row = body === undefined ? undefined : { body };
    this.entries.set(key, row ?? MISSING);
    return row;
  }

  clear(): void {
    if (this.entries.size > 0) this.entries.clear();
    this.clears++;
  }

  get size(): number {
    return this.entries.size;
  }

  /** The cached bodies (tests: what the cache holds is what the table holds, sealed). */
  bodies(): string[] {
    const out: string[] = [];
    for (const v of this.entries.values()) if (v !== MISSING) out.push(v.body);
    return out;
  }
}
