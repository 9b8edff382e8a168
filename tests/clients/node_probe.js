// Drives sockjs-client in Node for the tests: one JSON command per stdin line, one JSON
// event per stdout line.
//   {"cmd": "open", "id": "a", "url": "...", "transport": "xhr-polling"}
//   {"cmd": "send", "id": "a", "data": "..."}
//   {"cmd": "close", "id": "a"}
// Events: {"event": "open"|"message"|"heartbeat"|"close", "id": ..., ...}
"use strict";
const path = require("path");
const readline = require("readline");
const SockJS = require(path.join(process.cwd(), "node_modules", "sockjs-client"));

const socks = {};
const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");

function open({ id, url, transport }) {
  const sock = new SockJS(url, null, { transports: [transport] });
  socks[id] = sock;
  sock.onopen = () => emit({ event: "open", id, transport: sock.transport });
  sock.onmessage = (e) => emit({ event: "message", id, data: e.data });
  sock.addEventListener("heartbeat", () => emit({ event: "heartbeat", id }));
  sock.onclose = (e) => emit({ event: "close", id, code: e.code, reason: e.reason });
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = JSON.parse(line);
  if (command.cmd === "open") open(command);
  else if (command.cmd === "send") socks[command.id].send(command.data);
  else if (command.cmd === "close") socks[command.id].close();
}).on("close", () => process.exit(0));
