/**
 * A memo of values by string key, bounded in entries and in characters of key text. When a new
 * entry would pass either bound the memo is emptied first: a bound on memory, not an eviction
 * policy (emptying only costs the next lookups a recomputation, never a different answer).
 */
export class BoundedMemo<V> {
  private readonly entries = new Map<string, V>();
  private chars = 0;

  constructor(
    private readonly maxEntries: number,
    private readonly maxChars = Number.POSITIVE_INFINITY,
  ) {}

  get(key: string): V | undefined {
    return this.entries.get(key);
  }

  set(key: string, value: V): void {
    if (this.entries.size >= this.maxEntries || this.chars + key.length > this.maxChars) {
      this.entries.clear();
      this.chars = 0;
    }
    this.entries.set(key, value);
    this.chars += key.length;
  }
}
