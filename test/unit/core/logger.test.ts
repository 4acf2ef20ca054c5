/**
 * jsonLogger writes one JSON line per call: the fixed members first, then the caller's fields,
 * exactly as JSON.stringify({ level, service, message, timestamp, ...fields }) would.
 */
import fc from 'fast-check';
import { jsonLogger, type LogFields } from '../../../lambda/core/logger';

const NOW = new Date('2026-12-01T21:20:00.123Z');

beforeAll(() => {
  jest.useFakeTimers({ now: NOW, doNotFake: ['nextTick', 'setImmediate', 'queueMicrotask'] });
});
afterAll(() => {
  jest.useRealTimers();
});

function reference(level: string, service: string, message: string, fields?: LogFields): string {
  return JSON.stringify({ level, service, message, timestamp: NOW.toISOString(), ...fields });
}

describe('jsonLogger', () => {
  it('the line of each level, with and without fields, undefined fields left out', () => {
    const lines: string[] = [];
    const log = jsonLogger('router', (l) => lines.push(l));
    log.info('request', { requestId: 'r-1', status: 200, stream: false, costUsd: undefined });
    log.warn('w');
    log.error('e', {});
    expect(lines).toEqual([
      '{"level":"INFO","service":"router","message":"request","timestamp":"2026-12-01T21:20:00.123Z","requestId":"r-1","status":200,"stream":false}',
      '{"level":"WARN","service":"router","message":"w","timestamp":"2026-12-01T21:20:00.123Z"}',
      '{"level":"ERROR","service":"router","message":"e","timestamp":"2026-12-01T21:20:00.123Z"}',
    ]);
  });

  it('a field named like a fixed member replaces it, as the spread did', () => {
    const lines: string[] = [];
    const log = jsonLogger('svc', (l) => lines.push(l));
    log.info('m', { message: 'other', level: undefined, timestamp: 'x' });
    expect(lines[0]).toBe(reference('INFO', 'svc', 'm', { message: 'other', level: undefined, timestamp: 'x' }));
    expect(JSON.parse(lines[0])).toEqual({ service: 'svc', message: 'other', timestamp: 'x' });
  });

  it('array-index keys come first, as in the spread object', () => {
    const lines: string[] = [];
    jsonLogger('svc', (l) => lines.push(l)).info('m', { a: 1, 7: 'x' } as LogFields);
    expect(lines[0]).toBe('{"7":"x","level":"INFO","service":"svc","message":"m","timestamp":"2026-12-01T21:20:00.123Z","a":1}');
  });

  it('property: the same text as stringifying the spread object, for any service, message and fields', () => {
    const value = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.constant(undefined));
    fc.assert(
      fc.property(
        fc.string(),
        fc.string(),
        fc.constantFrom('INFO', 'WARN', 'ERROR'),
        fc.option(fc.dictionary(fc.oneof(fc.string(), fc.nat().map(String), fc.constantFrom('level', 'service', 'message', 'timestamp', '__proto__', 'toJSON', '4294967295', '01')), value), { nil: undefined }),
        (service, message, level, fields) => {
          const lines: string[] = [];
          const log = jsonLogger(service, (l) => lines.push(l));
          const f = fields as LogFields | undefined;
          if (level === 'INFO') log.info(message, f);
          else if (level === 'WARN') log.warn(message, f);
          else log.error(message, f);
          expect(lines).toEqual([reference(level, service, message, f)]);
        },
      ),
      { numRuns: 500 },
    );
  });
});
