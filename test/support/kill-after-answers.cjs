/**
 * Preload for a gateway process (`node --require <this>`): SIGKILLs the process right after it
 * ended its KILL_AFTER_ANSWERS-th answer on /v1/ (the answer's bytes are in the socket; nothing
 * scheduled after it, such as the end-of-turn commit, has run). A kill -9 at the earliest moment
 * a client can have an answer, for durability tests (test/e2e/local-kill-durability.test.ts).
 */
'use strict';
const { ServerResponse } = require('node:http');

const limit = Number(process.env.KILL_AFTER_ANSWERS);
if (Number.isInteger(limit) && limit > 0) {
  let answers = 0;
  const end = ServerResponse.prototype.end;
  ServerResponse.prototype.end = function (...args) {
    const out = end.apply(this, args);
    if (this.req && typeof this.req.url === 'string' && this.req.url.startsWith('/v1/') && ++answers === limit) process.kill(process.pid, 'SIGKILL');
    return out;
  };
}
