/**
 * An HTTPS server on 127.0.0.1 with a certificate made for the test by openssl (P-256, valid two
 * days, SAN IP:127.0.0.1): no key is kept in the repository. It fails loudly without openssl.
 */
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import type { RequestListener } from 'node:http';
import { createServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface LoopbackTlsServer {
  readonly port: number;
  /** The server's certificate (PEM): a client that trusts it connects, one on node's CA store does not. */
  readonly cert: string;
  /** Every TLS connection the server accepted, in order. */
  readonly connections: readonly unknown[];
  close(): Promise<void>;
}

export async function startLoopbackTlsServer(handler: RequestListener): Promise<LoopbackTlsServer> {
  const dir = mkdtempSync(join(tmpdir(), 'sr-tls-'));
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', join(dir, 'k.pem'), '-out', join(dir, 'c.pem'), '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'pipe' });
    const cert = readFileSync(join(dir, 'c.pem'), 'utf8');
    const server = createServer({ key: readFileSync(join(dir, 'k.pem')), cert }, handler);
    const connections: unknown[] = [];
    server.on('secureConnection', (s) => connections.push(s));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return {
      port: (server.address() as AddressInfo).port,
      cert,
      connections,
      async close() {
        server.closeAllConnections();
        await new Promise((r) => server.close(r));
      },
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
