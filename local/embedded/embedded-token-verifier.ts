/**
 * The embedded side of an on-use pepper upgrade (see lambda/adapters/dynamo-token-verifier.ts):
 * in one transaction, the record moves to its new verifier only if the stored body is still
 * exactly the one that was read and the new key is free.
 */
import type { VersionedVerifier } from '../../lambda/core/pepper-ring';
import type { EmbeddedDatabase } from './database';

export function moveTokenVerifierRow(db: EmbeddedDatabase, item: Readonly<Record<string, unknown>>, to: VersionedVerifier): boolean {
  const from = item.verifier;
  if (typeof from !== 'string' || from === to.verifier) return false;
  return db.transaction(() => {
    const row = db.one('SELECT body, tenant_id, token_id FROM tokens WHERE verifier = ?', [from]);
    if (!row || row.body !== JSON.stringify(item)) return false;
    if (db.one('SELECT 1 AS x FROM tokens WHERE verifier = ?', [to.verifier])) return false;
    db.run('DELETE FROM tokens WHERE verifier = ?', [from]);
    const moved = { ...item, verifier: to.verifier, pepperVersion: to.version };
    db.run('INSERT INTO tokens(verifier, tenant_id, token_id, body) VALUES (?, ?, ?, ?)', [to.verifier, String(row.tenant_id), String(row.token_id), JSON.stringify(moved)]);
    return true;
  });
}
