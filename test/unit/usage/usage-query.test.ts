import { ApiError } from '../../../lambda/core/http';
import { decodeCursor, encodeCursor, outcomeOf, parseUsageQuery, queryUsagePage, usageRecordView } from '../../../lambda/core/usage/usage-query';

const NOW = Date.UTC(2026, 11, 15, 12, 0, 0);
const err = (fn: () => unknown) => {
  try {
    fn();
  } catch (e) {
    return e as ApiError;
  }
  throw new Error('expected an error');
};

describe('parseUsageQuery', () => {
  test('defaults: the current UTC month up to now, 100 records', () => {
    expect(parseUsageQuery('acme', {}, NOW)).toEqual({ tenantId: 'acme', from: '2026-12-01T00:00:00.000Z', to: new Date(NOW + 1).toISOString(), limit: 100 });
  });

  test('dates, instants, filters and a cursor', () => {
    const cursor = encodeCursor('2026-11-02T10:00:00.000Z#abc-123');
    const q = parseUsageQuery('acme', { from: '2026-11-01', to: '2026-11-03T00:00:00Z', token: 'tk_AbC-1', model: 'gpt-4o', outcome: 'denied', limit: '500', cursor }, NOW);
    expect(q).toEqual({
      tenantId: 'acme',
      from: '2026-11-01T00:00:00.000Z',
      to: '2026-11-03T00:00:00.000Z',
      tokenId: 'tk_AbC-1',
      model: 'gpt-4o',
      outcome: 'denied',
      limit: 500,
      after: '2026-11-02T10:00:00.000Z#abc-123',
    });
  });

  test.each([
    [{ from: 'yesterday' }, 'from'],
    [{ to: '2026-13-45' }, 'to'],
    [{ limit: '0' }, 'limit'],
    [{ limit: '501' }, 'limit'],
    [{ limit: '1e3' }, 'limit'],
    [{ outcome: 'maybe' }, 'outcome'],
    [{ token: 'sr_eu_acme_secretlooking' }, 'token'],
    [{ model: 'gpt 4o' }, 'model'],
    [{ tenant: 'other' }, 'unknown parameter'],
    [{ sr_eu_acme_looksLikeAToken: 'x' }, 'unknown parameter'],
    [{ from: '2026-11-05', to: '2026-11-01' }, 'before'],
    [{ from: '2024-01-01', to: '2026-01-01' }, '400 days'],
  ])('rejects %j with a 400 that names the problem, never the value', (params, needle) => {
    const e = err(() => parseUsageQuery('acme', params as Record<string, string>, NOW));
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(400);
    expect(e.message).toContain(needle);
    for (const [k, v] of Object.entries(params)) {
      if (v.length > 4) expect(e.message).not.toContain(v);
      if (k.length > 8) expect(e.message).not.toContain(k);
    }
  });

  test('forged, foreign and oversized cursors are 400 invalid_cursor', () => {
    for (const c of [
      'not-base64!',
      Buffer.from('u1|../../etc').toString('base64url'),
      Buffer.from('u2|2026-11-02T10:00:00.000Z#abc').toString('base64url'),
      Buffer.from('u1|2026-11-02T10:00:00.000Z#abc|x').toString('base64url'),
      Buffer.from('{"pk":"REQ#other","sk":"x"}').toString('base64url'),
      'A'.repeat(201),
    ]) {
      const e = err(() => parseUsageQuery('acme', { cursor: c }, NOW));
      expect([e.status, e.code]).toEqual([400, expect.stringMatching(/invalid_cursor|invalid_request/)]);
    }
    expect(decodeCursor(encodeCursor('2026-11-02T10:00:00.000Z#r1'))).toBe('2026-11-02T10:00:00.000Z#r1');
  });

  test('a cursor before the period is refused (it cannot widen the period)', async () => {
    const q = parseUsageQuery('acme', { from: '2026-11-10', cursor: encodeCursor('2026-11-01T00:00:00.000Z#r') }, NOW);
    const port = { queryUsage: jest.fn() };
    await expect(queryUsagePage(port, q)).rejects.toMatchObject({ status: 400, code: 'invalid_cursor' });
    expect(port.queryUsage).not.toHaveBeenCalled();
  });
});

test('outcomes and the record view', () => {
  expect(['ok', 'denied:budget_exceeded', 'client_error', 'upstream_error', 'upstream_stream_broken'].map(outcomeOf)).toEqual(['ok', 'denied', 'error', 'error', 'error']);
  const base = { requestId: 'r', tenantId: 't', tokenId: 'tk_a', route: 'chat', model: 'm', stream: false, status: 429, latencyMs: 1, fallbackChain: [], at: 'x' };
  expect(usageRecordView({ ...base, decision: 'denied:rate_limit_exceeded' })).toEqual({ ...base, decision: 'denied:rate_limit_exceeded', outcome: 'denied', denialReason: 'rate_limit_exceeded' });
  expect(usageRecordView({ ...base, decision: 'ok' })).not.toHaveProperty('denialReason');
});
