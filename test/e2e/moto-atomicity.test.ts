/**
 * The emulator must give DynamoDB's guarantees the governance relies on: a conditional write is
 * atomic, even under concurrent requests (moto's backend is not thread-safe; the launcher runs
 * it one request at a time).
 */
import { CreateTableCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { awsClients } from '../support/aws-clients';
import { MotoServer, startMoto } from '../support/moto';

let moto: MotoServer;
beforeAll(async () => {
  moto = await startMoto();
});
afterAll(() => moto?.stop());

test('150 concurrent conditional increments against a limit of 17 admit exactly 17', async () => {
  const { ddb } = awsClients(moto.endpoint, 'eu-central-1');
  await ddb.send(
    new CreateTableCommand({
      TableName: 'counter',
      BillingMode: 'PAY_PER_REQUEST',
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
    }),
  );
  const attempts = Array.from({ length: 150 }, () =>
    ddb
      .send(
        new UpdateItemCommand({
          TableName: 'counter',
          Key: { pk: { S: 'window' } },
          UpdateExpression: 'ADD n :one',
          ConditionExpression: 'attribute_not_exists(n) OR n < :limit',
          ExpressionAttributeValues: { ':one': { N: '1' }, ':limit': { N: '17' } },
        }),
      )
      .then(
        () => 'admitted',
        (err: { name?: string }) => (err.name === 'ConditionalCheckFailedException' ? 'denied' : `error:${err.name}`),
      ),
  );
  const outcomes = await Promise.all(attempts);
  expect(outcomes.filter((o) => o.startsWith('error'))).toEqual([]);
  expect(outcomes.filter((o) => o === 'admitted')).toHaveLength(17);
});
