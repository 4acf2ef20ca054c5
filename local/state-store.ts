/**
 * Local gateway persistence: the cell's table items, the pepper and the seed of the emulated
 * KMS key, in one directory. Written after every change to tenants, tokens or secrets, so a
 * restart (or a crash) loses no stored secret. The files are as sensitive as a production
 * database plus its keys: they are created with mode 0600 in a 0700 directory.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AttributeValue, BatchWriteItemCommand, DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import type { TableName } from '../lib/table-schemas';

export interface PersistedCell {
  readonly version: 1;
  readonly region: string;
  readonly tablePrefix: string;
  readonly kmsSeedHex: string;
  readonly rootKeyArn?: string;
  readonly pepper?: string;
}

type Items = Record<string, AttributeValue>[];

export class StateStore {
  constructor(readonly dir: string) {}

  private path(name: string): string {
    return join(this.dir, name);
  }

  /** The saved cell, or a new one (not yet written). */
  loadOrCreate(region: string): { cell: PersistedCell; existing: boolean } {
    if (existsSync(this.path('cell.json'))) {
      const cell = JSON.parse(readFileSync(this.path('cell.json'), 'utf8')) as PersistedCell;
      if (cell.version !== 1) throw new Error(`${this.dir}: unsupported state version ${cell.version}`);
      if (cell.region !== region) {
        throw new Error(`${this.dir} holds a ${cell.region} cell; start with --region ${cell.region} or use another --state-dir`);
      }
      return { cell, existing: true };
    }
    return {
      cell: { version: 1, region, tablePrefix: `sr-local-${region}`, kmsSeedHex: randomBytes(32).toString('hex') },
      existing: false,
    };
  }

  saveCell(cell: PersistedCell): void {
    this.write('cell.json', JSON.stringify(cell, null, 2));
  }

  async dumpTables(ddb: DynamoDBClient, tables: Record<TableName, string>): Promise<void> {
    const out: Record<string, Items> = {};
    for (const [name, table] of Object.entries(tables)) {
      // Response-cache entries are disposable (and binary): a restart starts with an empty cache.
      if (name === 'cache') continue;
      const items: Items = [];
      let start: Record<string, AttributeValue> | undefined;
      do {
        const page = await ddb.send(new ScanCommand({ TableName: table, ExclusiveStartKey: start, ConsistentRead: true }));
        items.push(...(page.Items ?? []));
        start = page.LastEvaluatedKey;
      } while (start);
      out[name] = items;
    }
    this.write('tables.json', JSON.stringify(out));
  }

  async restoreTables(ddb: DynamoDBClient, tables: Record<TableName, string>): Promise<number> {
    if (!existsSync(this.path('tables.json'))) return 0;
    const saved = JSON.parse(readFileSync(this.path('tables.json'), 'utf8')) as Record<string, Items>;
    let count = 0;
    for (const [name, items] of Object.entries(saved)) {
      const table = tables[name as TableName];
      if (!table) continue;
      for (let i = 0; i < items.length; i += 25) {
        let requests = items.slice(i, i + 25).map((Item) => ({ PutRequest: { Item } }));
        while (requests.length > 0) {
          const res = await ddb.send(new BatchWriteItemCommand({ RequestItems: { [table]: requests } }));
          requests = (res.UnprocessedItems?.[table] ?? []) as typeof requests;
        }
      }
      count += items.length;
    }
    return count;
  }

  private write(name: string, content: string): void {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    chmodSync(this.dir, 0o700);
    const tmp = this.path(`.${name}.${process.pid}.tmp`);
    writeFileSync(tmp, content, { mode: 0o600 });
    renameSync(tmp, this.path(name));
  }
}
