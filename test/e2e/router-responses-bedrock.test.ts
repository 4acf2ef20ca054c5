/**
 * `POST /v1/responses` to Amazon Bedrock targets (issue 14.3 with 14.1): the Responses request
 * goes through the chat exchange, which reaches Bedrock's Converse/ConverseStream (through the
 * Anthropic shape); answers come back as Response objects and Responses events. The official
 * `openai` SDK calls the real router (moto, production wiring) over HTTP; the fake Bedrock runtime
 * checks the tenant's Bedrock API key.
 */
import OpenAI from 'openai';
import { startFakeBedrock, type FakeBedrock } from '../support/fake-bedrock';
import { makeCanary, canaryHits } from '../support/canary';
import { RouterHarness, startRouterHarness } from '../support/router-harness';
import { RouterServer, serveRouter } from '../support/router-http';

const REGION = 'eu-central-1';
const HAIKU = 'anthropic.claude-3-5-haiku-20241022-v1:0';
const BEDROCK_KEY = makeCanary('bedrock');
let bedrock: FakeBedrock;
let h: RouterHarness;
let server: RouterServer;
let client: OpenAI;

const WEATHER_TOOL = { type: 'function' as const, name: 'get_weather', description: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false };

beforeAll(async () => {
  bedrock = await startFakeBedrock({ region: REGION, key: BEDROCK_KEY });
  h = await startRouterHarness({ region: REGION, extraProviders: () => ({ bedrock: { kind: 'bedrock', baseUrl: bedrock.baseUrl } }) });
  const { invokeToken } = await h.tenant('resp-bedrock', { keys: { bedrock: BEDROCK_KEY }, policy: { routes: { 'eu-claude': [{ provider: 'bedrock', model: HAIKU }] } } });
  server = await serveRouter(h.router);
  client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: invokeToken, maxRetries: 0 });
}, 60_000);
afterAll(async () => {
  await server?.close();
  await h?.close();
  await bedrock?.close();
});
beforeEach(() => bedrock.reset());

async function lastRecord() {
  await server.idle();
  return server.records.at(-1)!;
}
const eventsOf = async (stream: AsyncIterable<{ type: string }>) => {
  const out: any[] = [];
  for await (const ev of stream) out.push(ev);
  return out;
};

test('not streamed: instructions and input become a Converse call; a Response object comes back with usage', async () => {
  const res = await client.responses.create({ model: 'eu-claude', instructions: 'be brief', input: 'hello bedrock', max_output_tokens: 50 });
  expect(res.output_text).toBe('Echo: hello bedrock');
  expect(res.status).toBe('completed');
  expect(res.usage).toMatchObject({ output_tokens: 3 });
  const up = bedrock.requests.at(-1)!;
  expect(up.path).toBe(`/model/${encodeURIComponent(HAIKU)}/converse`);
  expect(up.bearer).toBe(BEDROCK_KEY);
  expect(up.body).toEqual({ messages: [{ role: 'user', content: [{ text: 'hello bedrock' }] }], system: [{ text: 'be brief' }], inferenceConfig: { maxTokens: 50 } });
  expect(await lastRecord()).toMatchObject({ route: 'responses', provider: 'bedrock', upstreamModel: HAIKU, decision: 'ok', outputTokens: 3, inputTokens: res.usage!.input_tokens });
});

test('streamed: ConverseStream becomes Responses semantic events, ending in response.completed with usage', async () => {
  const events = await eventsOf(await client.responses.create({ model: 'eu-claude', input: 'stream me please', stream: true }));
  expect(events[0].type).toBe('response.created');
  expect(events.at(-1).type).toBe('response.completed');
  expect(events.filter((e) => e.type === 'response.output_text.delta').map((e) => e.delta).join('')).toBe('Echo: stream me please');
  expect(events.at(-1).response.usage.output_tokens).toBe(4);
  expect(bedrock.requests.at(-1)!.path).toBe(`/model/${encodeURIComponent(HAIKU)}/converse-stream`);
  expect(await lastRecord()).toMatchObject({ provider: 'bedrock', stream: true, decision: 'ok', outputTokens: 4 });
});

test('function tools: toolConfig up, function_call out (streamed and not), function_call_output back as toolResult', async () => {
  bedrock.script([{ kind: 'tool-call', name: 'get_weather', input: { city: 'Berlin' } }]);
  const first = await client.responses.create({ model: 'eu-claude', input: 'weather?', tools: [WEATHER_TOOL] });
  const call = first.output.find((o) => o.type === 'function_call');
  expect(call).toMatchObject({ name: 'get_weather', arguments: '{"city":"Berlin"}' });
  expect((bedrock.requests.at(-1)!.body as any).toolConfig.tools[0].toolSpec).toMatchObject({ name: 'get_weather', description: 'weather' });
  if (call?.type !== 'function_call') throw new Error('no call');

  bedrock.script([{ kind: 'tool-call', name: 'get_weather', input: { city: 'Oslo' } }]);
  const events = await eventsOf(await client.responses.create({ model: 'eu-claude', input: 'weather?', tools: [WEATHER_TOOL], stream: true }));
  expect(events.filter((e) => e.type === 'response.function_call_arguments.delta').map((e) => e.delta).join('')).toBe('{"city":"Oslo"}');
  expect(events.at(-1).response.output[0]).toMatchObject({ type: 'function_call', name: 'get_weather', arguments: '{"city":"Oslo"}' });

  const second = await client.responses.create({
    model: 'eu-claude',
    tools: [WEATHER_TOOL],
    input: [
      { role: 'user', content: 'weather?' },
      { type: 'function_call', call_id: call.call_id, name: call.name, arguments: call.arguments },
      { type: 'function_call_output', call_id: call.call_id, output: 'sunny' },
    ],
  });
  expect(second.output_text).toBe('Echo: sunny');
  const msgs = (bedrock.requests.at(-1)!.body as any).messages;
  expect(msgs[1].content[0].toolUse).toMatchObject({ toolUseId: call.call_id, name: 'get_weather', input: { city: 'Berlin' } });
  expect(msgs[2].content[0].toolResult).toMatchObject({ toolUseId: call.call_id });
});

test('untranslatable for Bedrock: a built-in tool and previous_response_id are refused with a 400, Bedrock never called', async () => {
  for (const extra of [{ tools: [{ type: 'web_search' }] }, { previous_response_id: 'resp_1' }]) {
    const err = await client.responses.create({ model: 'eu-claude', input: 'hi', ...extra } as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toMatch(/not supported when the model is served by bedrock|cannot be translated/);
  }
  expect(bedrock.requests).toHaveLength(0);
  expect(canaryHits(JSON.stringify(server.records), [BEDROCK_KEY])).toEqual([]);
});
