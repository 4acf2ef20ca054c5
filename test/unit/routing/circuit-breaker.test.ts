import { breakerKey, CircuitBreaker } from '../../../lambda/core/routing/circuit-breaker';

function setup(opts: { failureThreshold?: number; coolDownMs?: number } = {}) {
  const clock = { t: 1_000_000 };
  const breaker = new CircuitBreaker({ ...opts, now: () => clock.t });
  return { clock, breaker };
}

const K = breakerKey({ provider: 'openai', baseUrl: 'https://api.openai.com' });

describe('CircuitBreaker', () => {
  it('keys circuits by provider id and base URL', () => {
    expect(K).toBe('openai https://api.openai.com');
    expect(breakerKey({ provider: 'openai', baseUrl: 'https://eu.api.openai.com' })).not.toBe(K);
  });

  it('starts closed and stays closed below the threshold', () => {
    const { breaker } = setup();
    expect(breaker.state(K)).toBe('closed');
    for (let i = 0; i < 4; i++) breaker.onFailure(K);
    expect(breaker.state(K)).toBe('closed');
    expect(breaker.canPass(K)).toBe(true);
  });

  it('opens after 5 consecutive failures by default', () => {
    const { breaker } = setup();
    for (let i = 0; i < 5; i++) breaker.onFailure(K);
    expect(breaker.state(K)).toBe('open');
    expect(breaker.canPass(K)).toBe(false);
    expect(breaker.state('other')).toBe('closed');
  });

  it('a success resets the consecutive count', () => {
    const { breaker } = setup();
    for (let i = 0; i < 4; i++) breaker.onFailure(K);
    breaker.onSuccess(K);
    for (let i = 0; i < 4; i++) breaker.onFailure(K);
    expect(breaker.state(K)).toBe('closed');
  });

  it('goes half-open after the cool-down (30 s by default) and lets exactly one trial through', () => {
    const { breaker, clock } = setup();
    for (let i = 0; i < 5; i++) breaker.onFailure(K);
    clock.t += 29_999;
    expect(breaker.state(K)).toBe('open');
    expect(breaker.canPass(K)).toBe(false);
    clock.t += 1;
    expect(breaker.state(K)).toBe('half_open');
    expect(breaker.canPass(K)).toBe(true);
    expect(breaker.canPass(K)).toBe(false);
    expect(breaker.canPass(K)).toBe(false);
  });

  it('a successful trial closes the circuit', () => {
    const { breaker, clock } = setup({ failureThreshold: 2, coolDownMs: 1000 });
    breaker.onFailure(K);
    breaker.onFailure(K);
    clock.t += 1000;
    expect(breaker.canPass(K)).toBe(true);
    breaker.onSuccess(K);
    expect(breaker.state(K)).toBe('closed');
    expect(breaker.canPass(K)).toBe(true);
    breaker.onFailure(K);
    expect(breaker.state(K)).toBe('closed'); // the count restarted from zero
  });

  it('a failed trial re-opens for a full cool-down', () => {
    const { breaker, clock } = setup({ failureThreshold: 2, coolDownMs: 1000 });
    breaker.onFailure(K);
    breaker.onFailure(K);
    clock.t += 1000;
    expect(breaker.canPass(K)).toBe(true);
    clock.t += 200;
    breaker.onFailure(K);
    expect(breaker.state(K)).toBe('open');
    clock.t += 999;
    expect(breaker.canPass(K)).toBe(false);
    clock.t += 1;
    expect(breaker.canPass(K)).toBe(true);
  });

  it('a straggling failure while open does not extend the cool-down', () => {
    const { breaker, clock } = setup({ failureThreshold: 1, coolDownMs: 1000 });
    breaker.onFailure(K);
    clock.t += 500;
    breaker.onFailure(K);
    clock.t += 500;
    expect(breaker.state(K)).toBe('half_open');
  });

  it('a trial that never reports does not wedge the circuit', () => {
    const { breaker, clock } = setup({ failureThreshold: 1, coolDownMs: 1000 });
    breaker.onFailure(K);
    clock.t += 1000;
    expect(breaker.canPass(K)).toBe(true);
    clock.t += 999;
    expect(breaker.canPass(K)).toBe(false);
    clock.t += 1;
    expect(breaker.canPass(K)).toBe(true);
  });
});
