// Load generator for `make bench`: one process, one scenario, one server, then it exits.
//
// Runs in its own process (pinned to its own core by bench/run.py), never in the server's
// event loop. Talks to 127.0.0.1 only. Every phase is bounded in time and every loop in
// count; a hard deadline ends the process whatever happens.
//
// Control protocol with bench/run.py (line based):
//   stdout "MARK <name>"   the orchestrator samples the server's /proc (CPU, RSS) ...
//   stdin  "ok"            ... and answers; the generator then goes on.
//   stdout "RESULT <json>" the figures of the run; the process then exits 0.
// Marks: "start"/"end" around the measured window of traffic scenarios; "baseline",
// "idle-start", "idle-end" for the idle-memory scenarios.
'use strict';

const { performance } = require('node:perf_hooks');
const readline = require('node:readline');
const WebSocket = require('ws');
const { Pool } = require('undici');

const cfg = JSON.parse(process.argv[2]);
// cfg: {scenario, framing: "sockjs"|"raw", port, sessions, warmup, duration, payload,
//       window, settle, connectConcurrency, hardLimit}
const HOST = '127.0.0.1';
const origin = `http://${HOST}:${cfg.port}`;
const now = () => performance.now();

const hard = setTimeout(() => {
  process.stdout.write(`ERROR hard time limit of ${cfg.hardLimit}s reached\n`);
  process.exit(2);
}, cfg.hardLimit * 1000);
hard.unref();

// -- control channel ------------------------------------------------------------------------

const acks = [];
readline.createInterface({ input: process.stdin }).on('line', () => {
  const next = acks.shift();
  if (next) next();
});
function mark(name) {
  return new Promise((resolve) => {
    acks.push(resolve);
    process.stdout.write(`MARK ${name}\n`);
  });
}
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

// -- latency samples (milliseconds), capped so memory stays bounded ------------------------

class Samples {
  constructor(cap = 2_000_000) {
    this.buf = new Float64Array(cap);
    this.n = 0;
  }
  add(v) {
    if (this.n < this.buf.length) this.buf[this.n++] = v;
  }
  pct(p) {
    if (this.n === 0) return null;
    const sorted = this.buf.slice(0, this.n).sort();
    return sorted[Math.min(this.n - 1, Math.floor((p / 100) * this.n))];
  }
}

// -- helpers --------------------------------------------------------------------------------

function payloadFor(prefix) {
  const pad = Math.max(0, cfg.payload - prefix.length);
  return prefix + 'x'.repeat(pad);
}
const PAYLOAD = payloadFor('');

let sessionCounter = 0;
function sessionId() {
  sessionCounter += 1;
  return `b${process.pid.toString(36)}${sessionCounter.toString(36)}`;
}

async function openMany(count, openOne) {
  // At most cfg.connectConcurrency opening at once; every open has its own timeout.
  const opened = [];
  let failed = 0;
  let next = 0;
  async function worker() {
    while (next < count) {
      const index = next++;
      try {
        opened.push(await openOne(index));
      } catch (error) {
        failed += 1;
        if (failed <= 3) process.stderr.write(`open failed: ${error && error.message}\n`);
      }
    }
  }
  const workers = [];
  for (let i = 0; i < Math.min(cfg.connectConcurrency, count); i++) workers.push(worker());
  await Promise.all(workers);
  return { opened, failed };
}

function withTimeout(promise, seconds, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out`)), seconds * 1000);
    }),
  ]).finally(() => clearTimeout(timer));
}

// A WebSocket session. `onMessages(list, t)` gets application messages (SockJS `a[...]`
// frames unpacked, or raw text frames).
function openWs(prefix, onMessages) {
  const sockjs = cfg.framing === 'sockjs';
  const url = sockjs
    ? `ws://${HOST}:${cfg.port}${prefix}/000/${sessionId()}/websocket`
    : `ws://${HOST}:${cfg.port}${prefix}`;
  const ws = new WebSocket(url, { perMessageDeflate: false });
  const conn = { ws, closed: false };
  const ready = new Promise((resolve, reject) => {
    ws.on('error', (err) => reject(err));
    ws.on('close', () => {
      conn.closed = true;
      reject(new Error('closed before open'));
    });
    if (!sockjs) ws.on('open', () => resolve(conn));
    ws.on('message', (data) => {
      const text = data.toString();
      if (!sockjs) {
        onMessages([text], now());
        return;
      }
      const kind = text.charCodeAt(0);
      if (kind === 97 /* a */) onMessages(JSON.parse(text.slice(1)), now());
      else if (kind === 111 /* o */) resolve(conn);
    });
  });
  conn.send = sockjs ? (msg) => ws.send(JSON.stringify([msg])) : (msg) => ws.send(msg);
  return withTimeout(ready, 30, 'websocket open');
}

function closeAll(conns) {
  for (const c of conns) {
    try {
      c.ws.terminate();
    } catch {
      // already gone
    }
  }
}

function makePool(connections) {
  return new Pool(origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
}

async function post(pool, path, body) {
  const res = await pool.request({ path, method: 'POST', body, headers: { 'content-type': 'text/plain' } });
  const text = await res.body.text();
  return { status: res.statusCode, text };
}

// Parse one SockJS HTTP frame line ("a[...]", "o", "h", "c[...]"): messages or null.
function frameMessages(line) {
  return line.charCodeAt(0) === 97 ? JSON.parse(line.slice(1)) : null;
}

// An xhr-streaming receiver that reopens itself when the server ends the response
// (response_limit), so the session keeps receiving until stop() is called.
class XhrStream {
  constructor(pool, prefix, onMessages) {
    this.pool = pool;
    this.path = `${prefix}/000/${sessionId()}`;
    this.onMessages = onMessages;
    this.stopped = false;
    this.reopens = 0;
    this.opened = null;
  }
  start() {
    this.opened = new Promise((resolve, reject) => {
      this._resolveOpen = resolve;
      this._rejectOpen = reject;
    });
    this._request();
    return withTimeout(this.opened, 30, 'xhr_streaming open');
  }
  async _request() {
    try {
      const res = await this.pool.request({ path: `${this.path}/xhr_streaming`, method: 'POST' });
      let buffered = '';
      res.body.setEncoding('utf8');
      res.body.on('data', (chunk) => {
        buffered += chunk;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl);
          buffered = buffered.slice(nl + 1);
          if (line === 'o') this._resolveOpen(this);
          else if (line.charCodeAt(0) === 97) this.onMessages(frameMessages(line), now());
        }
      });
      res.body.on('end', () => {
        if (!this.stopped) {
          this.reopens += 1;
          this._request();
        }
      });
      res.body.on('error', () => {});
    } catch (error) {
      if (!this.stopped) this._rejectOpen(error);
    }
  }
  send(msg) {
    return post(this.pool, `${this.path}/xhr_send`, JSON.stringify([msg]));
  }
}

// -- scenarios ------------------------------------------------------------------------------

async function measured(counters) {
  // Warm up, then one measured window between the "start" and "end" marks.
  await sleep(cfg.warmup);
  await mark('start');
  counters.reset();
  const t0 = now();
  await sleep(cfg.duration);
  const snapshot = counters.snapshot();
  const elapsed = (now() - t0) / 1000;
  await mark('end');
  return { elapsed, ...snapshot };
}

async function wsEcho() {
  const lat = new Samples();
  let count = 0;
  let running = true;
  const { opened, failed } = await openMany(cfg.sessions, async () => {
    let sentAt = 0;
    const conn = await openWs('/echo', (msgs, t) => {
      count += msgs.length;
      lat.add(t - sentAt);
      if (running) {
        sentAt = now();
        conn.send(PAYLOAD);
      }
    });
    return { conn, kick: () => { sentAt = now(); conn.send(PAYLOAD); } };
  });
  for (const s of opened) s.kick();
  const result = await measured({
    reset() { count = 0; lat.n = 0; },
    snapshot() { return { messages: count, p50: lat.pct(50), p99: lat.pct(99) }; },
  });
  running = false;
  closeAll(opened.map((s) => s.conn));
  return { ...result, sessions: opened.length, failed };
}

// Publishes with at most cfg.window broadcasts in flight; a broadcast is done when every
// session has it, or after 5 s (its missing deliveries are counted as lost).
class Broadcaster {
  constructor(sessions, publish) {
    this.sessions = sessions;
    this.publishFn = publish;
    this.inFlight = new Map();
    this.seq = 0;
    this.running = true;
    this.deliveries = 0;
    this.lost = 0;
    this.lat = new Samples();
    this.sweeper = setInterval(() => this._sweep(), 250);
  }
  pump() {
    while (this.running && this.inFlight.size < cfg.window) {
      const seq = ++this.seq;
      this.inFlight.set(seq, { t: now(), left: this.sessions });
      this.publishFn(payloadFor(`${seq}|`));
    }
  }
  deliver(msgs, t) {
    for (const msg of msgs) {
      const seq = parseInt(msg, 10);
      const entry = this.inFlight.get(seq);
      if (entry === undefined) continue;
      this.deliveries += 1;
      this.lat.add(t - entry.t);
      entry.left -= 1;
      if (entry.left === 0) {
        this.inFlight.delete(seq);
        this.pump();
      }
    }
  }
  _sweep() {
    const old = now() - 5000;
    for (const [seq, entry] of this.inFlight) {
      if (entry.t < old) {
        this.lost += entry.left;
        this.inFlight.delete(seq);
      }
    }
    this.pump();
  }
  stop() {
    this.running = false;
    clearInterval(this.sweeper);
  }
  counters() {
    return {
      reset: () => { this.deliveries = 0; this.lost = 0; this.lat.n = 0; this.startSeq = this.seq; },
      snapshot: () => ({
        deliveries: this.deliveries,
        publishes: this.seq - this.startSeq,
        lost: this.lost,
        p50: this.lat.pct(50),
        p99: this.lat.pct(99),
      }),
    };
  }
}

async function wsBroadcast() {
  let bc = null;
  const { opened, failed } = await openMany(cfg.sessions, () =>
    openWs('/broadcast', (msgs, t) => { if (bc) bc.deliver(msgs, t); }));
  const publisher = opened[0];
  bc = new Broadcaster(opened.length, (msg) => publisher.send(msg));
  bc.pump();
  const result = await measured(bc.counters());
  bc.stop();
  closeAll(opened);
  return { ...result, sessions: opened.length, failed };
}

async function wsIdle() {
  await warmupSessions(true);
  await mark('baseline');
  const { opened, failed } = await openMany(cfg.sessions, () => openWs('/echo', () => {}));
  await sleep(cfg.settle);
  await mark('idle-start');
  await sleep(cfg.duration);
  await mark('idle-end');
  closeAll(opened);
  return { sessions: opened.length, failed, elapsed: cfg.duration };
}

async function warmupSessions(websocket) {
  // A few sessions that open, echo once and close, so one-time costs (imports, caches,
  // first allocations) are paid before the baseline is taken.
  for (let i = 0; i < 10; i++) {
    if (websocket) {
      let done;
      const got = new Promise((r) => { done = r; });
      const conn = await openWs('/echo', () => done());
      conn.send(PAYLOAD);
      await withTimeout(got, 10, 'warm-up echo');
      conn.ws.terminate();
    } else {
      const pool = makePool(2);
      const stream = new XhrStream(pool, '/echo', () => {});
      await stream.start();
      stream.stopped = true;
      await pool.destroy();
    }
  }
  await sleep(0.5);
}

async function xhrIdle() {
  await warmupSessions(false);
  await mark('baseline');
  const pool = makePool(cfg.sessions + 16);
  const streams = [];
  const { opened, failed } = await openMany(cfg.sessions, () => {
    const s = new XhrStream(pool, '/echo', () => {});
    streams.push(s);
    return s.start();
  });
  await sleep(cfg.settle);
  await mark('idle-start');
  await sleep(cfg.duration);
  await mark('idle-end');
  for (const s of streams) s.stopped = true;
  await pool.destroy();
  return { sessions: opened.length, failed, elapsed: cfg.duration };
}

async function xhrPollEcho() {
  const pool = makePool(2 * cfg.sessions + 16);
  const lat = new Samples();
  let count = 0;
  let errors = 0;
  let running = true;
  const body = JSON.stringify([PAYLOAD]);

  async function session() {
    const path = `/echo/000/${sessionId()}`;
    const first = await post(pool, `${path}/xhr`, '');
    if (first.text !== 'o\n') throw new Error(`unexpected open frame ${first.text.slice(0, 40)}`);
    return async function loop() {
      // One round trip: send the message, poll until it comes back; bounded by `running`
      // and by the hard limit.
      while (running) {
        const t0 = now();
        const sent = post(pool, `${path}/xhr_send`, body);
        let got = 0;
        for (let polls = 0; got === 0 && polls < 100 && running; polls++) {
          const res = await post(pool, `${path}/xhr`, '');
          const msgs = frameMessages(res.text);
          if (msgs) got = msgs.length;
          else if (res.text.startsWith('c')) { errors += 1; return; }
        }
        const res = await sent;
        if (res.status !== 204) { errors += 1; return; }
        count += got;
        lat.add(now() - t0);
      }
    };
  }

  const { opened, failed } = await openMany(cfg.sessions, session);
  const loops = opened.map((loop) => loop().catch(() => { errors += 1; }));
  const result = await measured({
    reset() { count = 0; lat.n = 0; },
    snapshot() { return { messages: count, p50: lat.pct(50), p99: lat.pct(99) }; },
  });
  running = false;
  await withTimeout(Promise.all(loops), 30, 'poll loops ending').catch(() => {});
  await pool.destroy();
  return { ...result, sessions: opened.length, failed, errors };
}

async function xhrBroadcast() {
  const pool = makePool(cfg.sessions + 16);
  let bc = null;
  const streams = [];
  const { opened, failed } = await openMany(cfg.sessions, () => {
    const s = new XhrStream(pool, '/broadcast', (msgs, t) => { if (bc) bc.deliver(msgs, t); });
    streams.push(s);
    return s.start();
  });
  const publisher = opened[0];
  let publishErrors = 0;
  bc = new Broadcaster(opened.length, (msg) => {
    publisher.send(msg).then((r) => { if (r.status !== 204) publishErrors += 1; },
      () => { publishErrors += 1; });
  });
  bc.pump();
  const result = await measured(bc.counters());
  bc.stop();
  for (const s of streams) s.stopped = true;
  const reopens = streams.reduce((n, s) => n + s.reopens, 0);
  await pool.destroy();
  return { ...result, sessions: opened.length, failed, reopens, publishErrors };
}

const SCENARIOS = {
  'ws-echo': wsEcho,
  'ws-broadcast': wsBroadcast,
  'ws-idle': wsIdle,
  'xhr-streaming-idle': xhrIdle,
  'xhr-polling-echo': xhrPollEcho,
  'xhr-streaming-broadcast': xhrBroadcast,
};

SCENARIOS[cfg.scenario]()
  .then((result) => {
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
    process.exit(0);
  })
  .catch((error) => {
    process.stdout.write(`ERROR ${error && error.stack}\n`);
    process.exit(1);
  });
