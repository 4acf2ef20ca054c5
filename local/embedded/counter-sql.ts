/**
 * The counters table's upsert, shared by the governance ledger (embedded-governance-ledger.ts)
 * and the replay of journaled ledger writes when the store opens (database.ts): one statement
 * for `n` counter updates, a field left NULL not touched.
 */
import { COUNTER_FIELDS, CounterUpdate } from '../../lambda/core/governance/ledger';

/** One multi-row upsert of `n` counter updates (a field left NULL is not touched). */
export const upsertSql = (() => {
  const cols = COUNTER_FIELDS.join(', ');
  const sets = COUNTER_FIELDS.map((f) => `${f} = CASE WHEN excluded.${f} IS NULL THEN ${f} ELSE coalesce(${f}, 0) + excluded.${f} END`).join(', ');
  const row = `(?, ?, ${COUNTER_FIELDS.map(() => '?').join(', ')}, ?, ?)`;
  const bySize = new Map<number, string>();
  return (n: number): string => {
    let sql = bySize.get(n);
    if (!sql) {
      sql =
        `INSERT INTO counters(pk, sk, ${cols}, expires_at, token_id) VALUES ${Array.from({ length: n }, () => row).join(', ')} ` +
        `ON CONFLICT(pk, sk) DO UPDATE SET ${sets}, expires_at = coalesce(expires_at, excluded.expires_at), token_id = coalesce(excluded.token_id, token_id)`;
      bySize.set(n, sql);
    }
    return sql;
  };
})();

/** One counter update's values in the upsert's column order: pk, sk, COUNTER_FIELDS (NULL: untouched), expires_at, token_id. */
export function pushCounterParams(params: (string | number | null | Uint8Array)[], u: Pick<CounterUpdate, 'key' | 'add' | 'expiresAt' | 'tokenId'>): void {
  params.push(u.key.pk, u.key.sk);
  for (let i = 0; i < COUNTER_FIELDS.length; i++) params.push(u.add[COUNTER_FIELDS[i]] ?? null);
  params.push(u.expiresAt ?? null, u.tokenId ?? null);
}
