/**
 * trackedSink (lambda/core/router/response-sink.ts): the answer's headers are the caller's, then
 * those set on the sink, then the request id, as one new object; nothing else gets in.
 */
import { MemorySink, trackedSink } from '../../../lambda/core/router/response-sink';

test('headers, then the sink\u2019s own, then the request id (which nothing overrides); the caller\u2019s object is not changed', () => {
  const inner = new MemorySink();
  let t = 100;
  const sink = trackedSink(inner, 'req-1', () => t++);
  const headers = Object.freeze({ 'content-type': 'application/json', 'x-request-id': 'from-provider', 'x-cache': 'stale' });
  sink.setHeader('x-cache', 'miss');
  sink.setHeader('x-request-id', 'from-set-header');
  sink.start(200, headers);
  expect(inner.status).toBe(200);
  expect(inner.headers).toEqual({ 'content-type': 'application/json', 'x-request-id': 'req-1', 'x-cache': 'miss' });
  expect(Object.keys(inner.headers)).toEqual(['content-type', 'x-request-id', 'x-cache']);
  expect(inner.headers).not.toBe(headers);
  expect(headers).toEqual({ 'content-type': 'application/json', 'x-request-id': 'from-provider', 'x-cache': 'stale' });
  expect(sink.startedAt).toBe(100);
  sink.write('{}');
  sink.end();
  sink.end();
  expect(sink.endedAt).toBe(101);
  expect(inner.body).toBe('{}');
});

test('only own names are copied: an enumerable name on the prototype (a polluted Object.prototype, an inherited default) never becomes a header', () => {
  const inner = new MemorySink();
  const inherited = Object.create({ 'set-cookie': 'session=attacker' }) as Record<string, string>;
  inherited['content-type'] = 'text/event-stream';
  const sink = trackedSink(inner, 'req-2', () => 0);
  sink.start(200, inherited);
  expect(inner.headers).toEqual({ 'content-type': 'text/event-stream', 'x-request-id': 'req-2' });
  expect(Object.keys(inner.headers)).not.toContain('set-cookie');
});

test('a second start is refused by the sink below, as before', () => {
  const sink = trackedSink(new MemorySink(), 'req-3', () => 0);
  sink.start(200, {});
  expect(() => sink.start(500, {})).toThrow('response already started');
});
