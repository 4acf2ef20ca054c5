// A minimal, fast OpenAI-compatible upstream for the side-by-side bench, in its own process.
// Any POST .../chat/completions: a fixed completion with usage, or (stream: true) five SSE chunks.
import { createServer } from 'node:http';

const COMPLETION = JSON.stringify({
  id: 'chatcmpl-bench',
  object: 'chat.completion',
  created: 1700000000,
  model: 'gpt-4o-mini',
  choices: [{ index: 0, message: { role: 'assistant', content: 'pong' }, finish_reason: 'stop' }],
  usage: { prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 },
});
const chunk = (delta, finish = null, usage) =>
  `data: ${JSON.stringify({ id: 'chatcmpl-bench', object: 'chat.completion.chunk', created: 1700000000, model: 'gpt-4o-mini', choices: [{ index: 0, delta, finish_reason: finish }], ...(usage ? { usage } : {}) })}\n\n`;
const STREAM = [chunk({ role: 'assistant', content: '' }), chunk({ content: 'po' }), chunk({ content: 'ng' }), chunk({}, 'stop'), chunk({}, null, { prompt_tokens: 8, completion_tokens: 1, total_tokens: 9 })];

const server = createServer((req, res) => {
  let body = '';
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    if (req.method === 'GET') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"object":"list","data":[{"id":"gpt-4o-mini","object":"model"}]}');
    }
    let stream = false;
    try {
      stream = JSON.parse(body).stream === true;
    } catch {
      // not JSON: answer as non-streaming
    }
    if (!stream) {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(COMPLETION) });
      return res.end(COMPLETION);
    }
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    for (const c of STREAM) res.write(c);
    res.end('data: [DONE]\n\n');
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening ${server.address().port}\n`);
});
