/**
 * Waiting for a condition instead of sleeping a fixed time. CI runs the suites on 2 vCPUs under
 * heavy load, where "it happens within 50 ms" fails now and then; a test that waits for what it
 * asserts (with a generous cap, so a real failure still ends with a clear message) does not.
 */
export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, capMs = 30_000, pollMs = 10): Promise<void> {
  const deadline = Date.now() + capMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${capMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
