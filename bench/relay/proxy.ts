// The baseline for the relay benchmark: a plain one-hop Node reverse proxy, the kind a relay is
// compared against. node:http server in, a keep-alive http.Agent out, bodies streamed both ways, no
// framework and no auth. Usage: node --import tsx bench/relay/proxy.ts UPSTREAM_PORT; prints {"port":N}.
import { Agent, createServer, request, type IncomingHttpHeaders } from 'node:http';
import type { AddressInfo } from 'node:net';

const upstreamPort = Number(process.argv[2]);
if (!Number.isInteger(upstreamPort) || upstreamPort <= 0) {
  process.stderr.write('usage: proxy.ts UPSTREAM_PORT\n');
  process.exit(2);
}

// Node's defaults otherwise (maxSockets Infinity, maxFreeSockets 256): every client connection keeps
// its own upstream socket warm, as a tuned production proxy would.
const agent = new Agent({ keepAlive: true });

/** RFC 9110 §7.6.1: connection-specific fields a proxy must not forward. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function forwardable(headers: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  for (const [k, v] of Object.entries(headers)) if (!HOP_BY_HOP.has(k)) out[k] = v;
  return out;
}

const server = createServer((req, res) => {
  const up = request({ host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: forwardable(req.headers), agent }, (upRes) => {
    res.writeHead(upRes.statusCode ?? 502, forwardable(upRes.headers));
    upRes.pipe(res);
  });
  up.on('error', () => {
    if (!res.headersSent) res.writeHead(502).end();
    else res.destroy();
  });
  req.pipe(up);
});
server.keepAliveTimeout = 65_000;
server.on('connection', (s) => s.setNoDelay(true));
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`${JSON.stringify({ port: (server.address() as AddressInfo).port })}\n`);
});
process.on('SIGTERM', () => {
  server.close();
  server.closeAllConnections();
  agent.destroy();
  process.exit(0);
});
