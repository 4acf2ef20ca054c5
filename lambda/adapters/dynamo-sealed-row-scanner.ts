import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, ScanCommand } from '@aws-sdk/lib-dynamodb';
import { parseSealedSecret, SealedSecret } from '../core/envelope';
import type { SealedRowPage, SealedRowScanner } from '../core/root-key-migration';
import { secretKey, stripKeys } from './tenant-items';

/**
 * Every sealed row of the tenants table, a page at a time (strongly consistent Scan, sealed rows
 * only). The cursor is the scan's LastEvaluatedKey, base64url JSON: it names a row key, no data.
 */
export class DynamoSealedRowScanner implements SealedRowScanner {
  private readonly doc: DynamoDBDocumentClient;

  constructor(
    client: DynamoDBClient,
    private readonly table: string,
  ) {
    this.doc = DynamoDBDocumentClient.from(client);
  }

  async scanPage(cursor: string | undefined, limit: number): Promise<SealedRowPage> {
    const out = await this.doc.send(
      new ScanCommand({
        TableName: this.table,
        ConsistentRead: true,
        Limit: limit,
        FilterExpression: 'begins_with(sk, :secret)',
        ExpressionAttributeValues: { ':secret': 'SECRET#' },
        ...(cursor !== undefined ? { ExclusiveStartKey: decodeCursor(cursor) } : {}),
      }),
    );
    const rows: SealedSecret[] = [];
    const unreadable: { pk: string; sk: string }[] = [];
    for (const item of (out.Items ?? []) as Record<string, unknown>[]) {
      const key = { pk: String(item.pk), sk: String(item.sk) };
      let row: SealedSecret;
      try {
        row = parseSealedSecret(stripKeys(item));
      } catch {
        unreadable.push(key);
        continue;
      }
      // A row copied under another tenant's (or secret's) key is not moved: its own key is the truth.
      const own = secretKey(row.tenant, row.provider, row.secret);
      if (own.pk !== key.pk || own.sk !== key.sk) unreadable.push(key);
      else rows.push(row);
    }
    return { rows, unreadable, ...(out.LastEvaluatedKey ? { cursor: encodeCursor(out.LastEvaluatedKey) } : {}) };
  }
}

function encodeCursor(key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify({ pk: key.pk, sk: key.sk }), 'utf8').toString('base64url');
}

/** Only a {pk, sk} pair of strings passes; anything else is a bad cursor (400 upstream). */
export function decodeCursor(cursor: string): { pk: string; sk: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw new CursorError();
  }
  const k = parsed as { pk?: unknown; sk?: unknown };
  if (typeof parsed !== 'object' || parsed === null || typeof k.pk !== 'string' || typeof k.sk !== 'string' || Object.keys(parsed).length !== 2) throw new CursorError();
  if (k.pk.length > 200 || k.sk.length > 400) throw new CursorError();
  return { pk: k.pk, sk: k.sk };
}

export class CursorError extends Error {
  override readonly name = 'CursorError';
  constructor() {
    super('the cursor is not one this command returned');
  }
}
