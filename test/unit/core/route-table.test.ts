import { ApiError, HttpRequest } from '../../../lambda/core/http';
import { dispatch, Route } from '../../../lambda/core/route-table';

const ok = (what: string): Route[2] => async () => ({ status: 200, headers: {}, body: what });
const routes: Route[] = [
  ['GET', '/vault/secrets', ok('list')],
  ['POST', '/vault/secrets/:provider', ok('put')],
];
const req = (method: string, path: string): HttpRequest => ({ method, path, headers: {} });

async function status(method: string, path: string): Promise<number | string> {
  try {
    return String((await dispatch(routes, req(method, path))).body);
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return (err as ApiError).status;
  }
}

describe('dispatch (vault, admin and key-migration routes)', () => {
  it('matches without the query and trailing slashes; 404 and 405 otherwise', async () => {
    expect(await status('GET', '/vault/secrets')).toBe('list');
    expect(await status('GET', '/vault/secrets///?x=/')).toBe('list');
    expect(await status('POST', '/vault/secrets/openai/')).toBe('put');
    expect(await status('DELETE', '/vault/secrets')).toBe(405);
    expect(await status('GET', '/vault/other')).toBe(404);
    expect(await status('GET', '///')).toBe(404);
  });

  // A complexity guard, not a speed goal: /\/+$/ backtracks from every slash of a run that a
  // non-slash ends (quadratic: 64 Ki slashes then 'a/' took seconds of one core, before any
  // caller is authenticated). Linear, it is well under a millisecond; the bound only tells the two apart.
  it('a long run of slashes before the end costs linear time (no regex backtracking before authentication)', async () => {
    const path = '/vault' + '/'.repeat(64 * 1024) + 'a/';
    // CPU time, not wall time: a loaded machine that takes this process off the CPU adds none.
    const started = process.cpuUsage();
    expect(await status('GET', path)).toBe(404);
    const cpu = process.cpuUsage(started);
    expect((cpu.user + cpu.system) / 1e3).toBeLessThan(250);
  });
});
