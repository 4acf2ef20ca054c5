/**
 * For raw TCP test servers that read HTTP/1.1 requests as sent: a data handler that cuts the bytes
 * of one connection into requests (a head up to the blank line, then its Content-Length bytes;
 * chunked bodies are not read) and hands each on whole, however the bytes arrived.
 */
export function requestSplitter(onRequest: (head: string, body: Buffer) => void): (data: Buffer) => void {
  let buf = Buffer.alloc(0);
  return (data) => {
    buf = Buffer.concat([buf, data]);
    for (;;) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      const head = buf.subarray(0, end).toString('latin1');
      const length = Number(/\r\ncontent-length: *(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < end + 4 + length) return;
      const body = buf.subarray(end + 4, end + 4 + length);
      buf = buf.subarray(end + 4 + length);
      onRequest(head, body);
    }
  };
}
