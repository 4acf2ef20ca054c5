/** The usage-records port contract against the DynamoDB adapter on moto (written by the router's store). */
import { DynamoRouterStore } from '../../lambda/adapters/dynamo-router-store';
import { DynamoUsageRecords } from '../../lambda/adapters/dynamo-usage-records';
import { cellFixture } from '../support/cell-fixture';
import { MotoServer, startMoto } from '../support/moto';
import { describeUsageRecordsContract } from '../support/usage-records-contract';

let moto: MotoServer;
afterAll(() => moto?.stop());

describeUsageRecordsContract('DynamoDB', async () => {
  moto = await startMoto();
  const f = await cellFixture(moto.endpoint, 'eu-central-1');
  const writer = new DynamoRouterStore(f.clients.ddb, f.config.tables);
  return { port: new DynamoUsageRecords(f.clients.ddb, f.config.tables.usage), put: (r) => writer.putUsage(r) };
});
