/** The usage-records port contract (test/support/usage-records-contract.ts) against the embedded adapter, written by the embedded router store. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EmbeddedDatabase } from '../../local/embedded/database';
import { EmbeddedRouterStore } from '../../local/embedded/embedded-router-store';
import { EmbeddedUsageRecords } from '../../local/embedded/embedded-usage-records';
import { describeUsageRecordsContract } from '../support/usage-records-contract';

const dir = mkdtempSync(join(tmpdir(), 'sr-usage-contract-'));
let db: EmbeddedDatabase | undefined;
afterAll(() => {
  db?.close();
  rmSync(dir, { recursive: true, force: true });
});

describeUsageRecordsContract('embedded', async () => {
  db = new EmbeddedDatabase({ dir });
  const writer = new EmbeddedRouterStore(db);
  return { port: new EmbeddedUsageRecords(db), put: (r) => writer.putUsage(r) };
});
