// Drives @stomp/stompjs over sockjs-client for the STOMP end-to-end tests, the same code in
// Node and in the browser (stomp_probe.html loads this file after the two client bundles).
// In Node: one JSON command per stdin line, one JSON event per stdout line. In the browser:
// window.run(command) and window.waitFor(ids, event, count, timeoutMs).
//   {"cmd": "connect", "id": "a", "url": "...", "transport": "xhr-polling",
//    "incoming": 0, "outgoing": 0, "headers": {}}
//   {"cmd": "subscribe", "id": "a", "sub": "s1", "destination": "/queue/x",
//    "ack": "client-individual", "settle": "ack" | "nack" | "none", "receipt": "r1",
//    "headers": {"x-stream-offset": "offset=4"}}
//   {"cmd": "unsubscribe", "id": "a", "sub": "s1"}
//   {"cmd": "publish", "id": "a", "destination": "/topic/x", "body": "...", "receipt": "r2"}
//   {"cmd": "mute", "id": "a"}          (drop the client's heart-beats from now on)
//   {"cmd": "disconnect", "id": "a"}
//   {"cmd": "cut", "id": "a"}           (close the connection without a DISCONNECT frame)
// Events: {"event": "connected"|"message"|"receipt"|"heartbeat"|"stomp-error"|
//          "disconnected"|"close", "id": ..., ...}
"use strict";
(function (root) {
  const inNode = typeof window === "undefined";
  let SockJS, StompJs;
  if (inNode) {
    const path = require("path");
    const util = require("util");
    // stompjs needs TextEncoder/TextDecoder (global since Node 11); WebSocket is never
    // needed because every connection comes from webSocketFactory.
    if (typeof root.TextEncoder === "undefined") root.TextEncoder = util.TextEncoder;
    if (typeof root.TextDecoder === "undefined") root.TextDecoder = util.TextDecoder;
    const modules = path.join(process.cwd(), "node_modules");
    SockJS = require(path.join(modules, "sockjs-client"));
    StompJs = require(path.join(modules, "@stomp", "stompjs"));
  } else {
    SockJS = root.SockJS;
    StompJs = root.StompJs;
  }

  function driver(emit) {
    const clients = {};

    function watch(state, receipt) {
      if (receipt) {
        state.client.watchForReceipt(receipt, () => emit({ event: "receipt", id: state.id, receipt }));
      }
    }

    const commands = {
      connect({ id, url, transport, incoming = 0, outgoing = 0, headers = {} }) {
        const state = { id, muted: false, subs: {}, sock: null };
        state.client = new StompJs.Client({
          webSocketFactory: () => {
            const sock = new SockJS(url, null, { transports: [transport] });
            const send = sock.send.bind(sock);
            sock.send = (data) => { if (!(state.muted && data === "\n")) send(data); };
            state.sock = sock;
            return sock;
          },
          connectHeaders: headers,
          heartbeatIncoming: incoming,
          heartbeatOutgoing: outgoing,
          reconnectDelay: 0,
          debug: () => {},
          onConnect: (frame) => emit({
            event: "connected", id, version: frame.headers.version,
            user: frame.headers["user-name"] || null, transport: state.sock.transport,
          }),
          onStompError: (frame) => emit({
            event: "stomp-error", id, message: frame.headers.message, body: frame.body,
          }),
          onDisconnect: () => emit({ event: "disconnected", id }),
          onWebSocketClose: (e) => emit({ event: "close", id, code: e.code, reason: e.reason }),
          onHeartbeatReceived: () => emit({ event: "heartbeat", id }),
        });
        clients[id] = state;
        state.client.activate();
      },
      subscribe({ id, sub, destination, ack = "auto", settle = "none", receipt, headers: extra = {} }) {
        const state = clients[id];
        const headers = Object.assign({ id: sub, ack }, extra);
        if (receipt) headers.receipt = receipt;
        watch(state, receipt);
        state.subs[sub] = state.client.subscribe(destination, (message) => {
          emit({ event: "message", id, sub, body: message.body, headers: message.headers });
          if (settle === "ack" || settle === "nack") {
            const settled = `${settle}-${message.headers["message-id"]}`;
            watch(state, settled);
            message[settle]({ receipt: settled });
          }
        }, headers);
      },
      unsubscribe({ id, sub }) {
        clients[id].subs[sub].unsubscribe();
      },
      publish({ id, destination, body, receipt, headers = {} }) {
        const state = clients[id];
        const all = Object.assign({}, headers);
        if (receipt) all.receipt = receipt;
        watch(state, receipt);
        state.client.publish({ destination, body, headers: all });
      },
      mute({ id }) {
        clients[id].muted = true;
      },
      disconnect({ id }) {
        clients[id].client.deactivate();
      },
      cut({ id }) {
        clients[id].client.forceDisconnect();
      },
    };
    return (command) => commands[command.cmd](command);
  }

  if (inNode) {
    const emit = (event) => process.stdout.write(JSON.stringify(event) + "\n");
    const run = driver(emit);
    require("readline").createInterface({ input: process.stdin })
      .on("line", (line) => run(JSON.parse(line)))
      .on("close", () => process.exit(0));
  } else {
    const events = [];
    let waiters = [];
    const emit = (event) => {
      events.push(event);
      const woken = waiters;
      waiters = [];
      woken.forEach((wake) => wake());
    };
    root.probeEvents = events;
    root.run = driver(emit);
    // id may be one connection's name or a list of them (their events counted together).
    root.waitFor = (id, kind, count, timeoutMs) => new Promise((resolve, reject) => {
      const ids = [].concat(id);
      const matching = () => events.filter((e) => ids.includes(e.id) && e.event === kind);
      const timer = setTimeout(() => reject(new Error(
        `timed out waiting for ${count} ${kind} on ${id}; saw ${JSON.stringify(events.slice(-5))}`)),
        timeoutMs);
      const check = () => {
        const found = matching();
        if (found.length >= count) { clearTimeout(timer); resolve(found); } else { waiters.push(check); }
      };
      check();
    });
  }
})(typeof window === "undefined" ? globalThis : window);
