// sockjs-node 0.3.24 peer for `make bench`: /echo (every message back to its sender) and
// /broadcast (every message to every session), as sockjs_gateway's test server has them.
// Usage: node sockjs_node_server.js PORT   (binds 127.0.0.1; SIGTERM ends it)
'use strict';

const http = require('node:http');
const sockjs = require('sockjs');

const port = Number(process.argv[2]);
const options = {
  log: () => {},
  // The same recycling size sockjs_gateway is benchmarked with (and sockjs-node's default).
  response_limit: 128 * 1024,
  sockjs_url: 'https://cdn.jsdelivr.net/npm/sockjs-client@1/dist/sockjs.min.js',
};

const echo = sockjs.createServer(options);
echo.on('connection', (conn) => {
  conn.on('data', (message) => conn.write(message));
});

const everyone = new Set();
const broadcast = sockjs.createServer(options);
broadcast.on('connection', (conn) => {
  everyone.add(conn);
  conn.on('close', () => everyone.delete(conn));
  conn.on('data', (message) => {
    for (const other of everyone) other.write(message);
  });
});

const server = http.createServer();
echo.installHandlers(server, { prefix: '/echo' });
broadcast.installHandlers(server, { prefix: '/broadcast' });
server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`sockjs-node listening on http://127.0.0.1:${port}/\n`);
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
