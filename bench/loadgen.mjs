// wirehub bench load generator (Node 20 + ws). Driven by bench/run.py:
//
//   node bench/loadgen.mjs '<json options>'
//
// Options: { proto: "raw" | "centrifugo" | "socketio", url, clients, scenario:
// "fanout" | "latency" | "rpc" | "channels", messages (channels: per group), rate
// (latency: publications/s), duration (rpc: seconds), group_size (channels), payload
// (bytes of padding), timeout (s, bound on the measured phase), concurrency (connects in
// flight), channel, urls (optional: subscribers spread round-robin over these, e.g. two
// nodes sharing Redis; the publisher uses url), subscribe (centrifugo: extra fields of
// the subscribe request, e.g. {"delta": "fossil"}), document (centrifugo fanout: each
// publication is the next version of a ~2 KB dashboard state, one field changed) }.
// The result has bytes_received: WebSocket message bytes the subscribers received while
// the scenario ran (centrifugo fanout and latency).
//
// Protocol with the orchestrator: it writes "READY {json}" on stdout once every client is
// connected and subscribed, waits for "GO" on stdin, runs the scenario and writes
// "RESULT {json}". Progress and errors go to stderr. It exits on "EXIT", on stdin EOF, or
// by itself after the result plus a grace period.
//
// transport (centrifugo only): "websocket" (default), "http_stream" or "sse": subscribers
// then connect over HTTP-streaming (POST /connection/http_stream) or SSE (GET
// /connection/sse?cf_connect=...), each on a connection of its own, and send their
// subscribe (and pongs) as POST /emulation on a shared keep-alive pool; the publisher is
// a WebSocket connection whatever the transport. Fan-out and latency scenarios only.
//
// Subscribers speak, per proto:
//   raw        plain WebSocket; every message received is one publication
//   centrifugo {"connect":{},"id":1}, {"subscribe":{"channel":...},"id":2}; counts
//              {"push":...} messages (a frame may hold several, joined by "\n"); answers
//              server pings {} with {}
//   socketio   engine.io v4 / socket.io v5 spoken directly over ws (lean, so the loadgen is
//              not the bottleneck): "40" connect, 421["join","bench"] with ack, counts
//              42["msg",...]; answers engine.io pings "2" with "3"
// The publisher is one extra connection that is not subscribed:
//   raw        sends the payload as a text message; the server broadcasts it
//   centrifugo sends {"publish":{"channel":...,"data":payload},"id":n} (the server replies)
//   socketio   a socket.io-client socket emitting "pub" with the payload; the server emits
//              it to the room
// Every payload is {"i": sequence, "t": performance.now() at send, "p": padding}.
//
// scenario "rpc" (closed loop, no publisher): each of the C clients sends a request, waits
// for its answer, sends the next one, for `duration` seconds; then the requests in flight
// are answered and counted. Requests, per proto:
//   raw        the payload as a text message; the server echoes it (peers' echo mode)
//   centrifugo {"rpc":{"method":"echo","data":payload},"id":n}; answered
//              {"id":n,"rpc":{"data":payload}} by an on_rpc echo handler
//   socketio   42n["echo",payload] (an emit with a callback); answered 43n[payload]
// Every answer is checked to carry the request's sequence number ("i":n,).
//
// scenario "channels" (MANY CHANNELS): client k subscribes to a personal channel p<k> and
// to the group channel g<floor(k / group_size)>; the publisher sends `messages`
// publications to every group, interleaved (g0, g1, ..., g0, g1, ...), back to back.
//   raw        "join p<k>", "join g<j>" (each answered "joined <room>"); the publisher
//              sends "pub g<j> <payload>" (peers' rooms mode)
//   centrifugo subscribes to chat:p<k> and chat:g<j>; publishes to chat:g<j>
//   socketio   421["join","p<k>"], 422["join","g<j>"]; the publisher emits "pubto" with
//              the room and the payload
//
// scenario "fairness" (centrifugo only): C subscribers of the flood channel chat:flood, a
// canary subscriber of chat:canary and a canary publisher sending `rate` publications/s
// to it, each carrying its send time. Phase "quiet": the canary alone for `duration` s.
// Phase "flood": the same, while `flooders` connections each keep `window` publishes to
// chat:flood in flight (the next one sent as each reply comes) as fast as the server
// answers. The result has the canary's p50/p99 (send -> receive, one clock) per phase,
// the flood's publications and deliveries per second, and canary publications lost.

import http from 'node:http';
import { performance } from 'node:perf_hooks';
import readline from 'node:readline';
import WebSocket from 'ws';
import { io as ioClient } from 'socket.io-client';

const opts = {
  proto: 'raw', url: 'ws://127.0.0.1:8000/', clients: 10, scenario: 'fanout',
  messages: 100, rate: 20, payload: 64, timeout: 60, concurrency: 100,
  channel: 'chat:bench', room: 'bench',
  ...JSON.parse(process.argv[2] ?? '{}'),
};
const C = opts.clients;
const N = opts.messages; // channels: publications per group (= per client)
const LATENCY = opts.scenario === 'latency';
const RPC = opts.scenario === 'rpc';
const CHANNELS = opts.scenario === 'channels';
const FAIRNESS = opts.scenario === 'fairness';
const GROUP_SIZE = opts.group_size ?? 10;
const GROUPS = Math.ceil(C / GROUP_SIZE);
const NS = opts.channel.slice(0, opts.channel.indexOf(':') + 1); // "chat:"
const PADDING = 'x'.repeat(opts.payload);
const payload = (i) => `{"i":${i},"t":${performance.now()},"p":"${PADDING}"}`;

// DELTA bench (bench/delta.py): versions of one dashboard state, one value changed each.
const DASHBOARD = {
  title: 'Operations dashboard',
  updated_by: 'bench',
  widgets: Object.fromEntries(Array.from({ length: 22 }, (_, k) => [`w${k}`, {
    label: `Requests per second, service ${k}`, unit: 'req/s', value: 1000 + k, status: 'ok',
  }])),
};
const documentVersion = (i) => {
  DASHBOARD.widgets[`w${i % 22}`].value = (i * 7919) % 100000;
  return JSON.stringify(DASHBOARD);
};
const publication = opts.document ? documentVersion : payload;
const WS_OPTIONS = { perMessageDeflate: false, maxPayload: 16 * 1024 * 1024 };
const URLS = opts.urls ?? [opts.url];
const TRANSPORT = opts.transport ?? 'websocket';
const HTTP_BASE = opts.url.replace(/^ws/, 'http').replace(/\/connection\/.*$/, '');
let opened = 0;

const log = (msg) => process.stderr.write(`loadgen: ${msg}\n`);
const out = (tag, obj) => process.stdout.write(`${tag} ${JSON.stringify(obj)}\n`);

// ---- delivery accounting ---------------------------------------------------------------
let delivered = 0;
let bytesReceived = 0;
let clientsDone = 0;
let tFirstSend = 0;
let tLastDelivery = 0;
let onAllDelivered = null;
const latencies = LATENCY ? new Float64Array(C * N) : null;
let nLat = 0;

function deliveredTo(client, payloadText) {
  client.count++;
  delivered++;
  if (LATENCY) {
    const now = performance.now();
    let t;
    try { t = JSON.parse(payloadText).t; } catch { t = undefined; }
    if (typeof t === 'number' && nLat < latencies.length) latencies[nLat++] = now - t;
  }
  if (client.count === N) {
    clientsDone++;
    if (clientsDone === C) {
      tLastDelivery = performance.now();
      if (onAllDelivered) onAllDelivered();
    }
  }
}

// ---- subscribers -----------------------------------------------------------------------
// Opens a socket for client k; done() calls ready(client) once it is subscribed (or
// connected, RPC), or fail(err).
function openClient(ready, fail) {
  const client = { count: 0, ws: null, subscribed: false };
  const ws = new WebSocket(URLS[opened++ % URLS.length], WS_OPTIONS);
  client.ws = ws;
  const done = (err) => {
    if (client.subscribed) return;
    if (err) { fail(err); return; }
    client.subscribed = true;
    ready(client);
  };
  ws.on('error', (err) => { if (!client.subscribed) done(err); });
  ws.on('close', (code) => {
    if (!client.subscribed) done(new Error(`closed ${code} before subscribed`));
    else if (!closing) lostConnections++;
  });
  return { client, ws, done };
}

// FANOUT, LATENCY: every client subscribes to the one channel (room).
function subscriber(index, ready, fail) {
  const { client, ws, done } = openClient(ready, fail);
  if (opts.proto === 'raw') {
    ws.on('open', () => done());
    ws.on('message', (data) => deliveredTo(client, LATENCY ? data.toString() : null));
  } else if (opts.proto === 'centrifugo') {
    ws.on('open', () => ws.send('{"connect":{},"id":1}'));
    ws.on('message', (data) => {
      if (tFirstSend) bytesReceived += data.length;
      const text = data.toString();
      const parts = text.indexOf('\n') === -1 ? [text] : text.split('\n');
      for (const part of parts) {
        if (part.startsWith('{"push"')) {
          if (LATENCY) {
            const msg = JSON.parse(part);
            const pub = msg.push.pub;
            if (pub) deliveredTo(client, JSON.stringify(pub.data));
          } else {
            deliveredTo(client, null);
          }
        } else if (part === '{}') {
          ws.send('{}');
        } else if (part.length > 0) {
          const reply = JSON.parse(part);
          if (reply.error) done(new Error(`centrifugo error ${JSON.stringify(reply.error)}`));
          else if (reply.id === 1) {
            const request = { channel: opts.channel, ...(opts.subscribe ?? {}) };
            ws.send(JSON.stringify({ subscribe: request, id: 2 }));
          } else if (reply.id === 2) done();
        }
      }
    });
  } else if (opts.proto === 'socketio') {
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('42')) {
        // 42["msg",{...}]: the payload object starts after the event name.
        deliveredTo(client, LATENCY ? text.slice(text.indexOf(',') + 1, -1) : null);
      } else if (text === '2') {
        ws.send('3');
      } else if (text.startsWith('0')) {
        ws.send('40');
      } else if (text.startsWith('40')) {
        ws.send(`421${JSON.stringify(['join', opts.room])}`);
      } else if (text.startsWith('431')) {
        done();
      } else if (text.startsWith('44')) {
        done(new Error(`socket.io connect error ${text}`));
      }
    });
  } else {
    throw new Error(`unknown proto ${opts.proto}`);
  }
  return client;
}

// FANOUT, LATENCY over HTTP-streaming or SSE (centrifugo, emulation).
const emulationAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
let emulationErrors = 0;

function emulate(node, session, data) {
  const body = JSON.stringify({ node, session, data });
  const headers = { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) };
  const req = http.request(`${HTTP_BASE}/emulation`, { method: 'POST', agent: emulationAgent, headers }, (res) => {
    res.resume();
    if (res.statusCode !== 204 && ++emulationErrors <= 3) log(`emulation answered ${res.statusCode}`);
  });
  req.on('error', (err) => { if (!closing && ++emulationErrors <= 3) log(`emulation failed: ${err.message}`); });
  req.end(body);
}

function streamSubscriber(index, ready, fail) {
  const client = { count: 0, ws: null, subscribed: false };
  const done = (err) => {
    if (client.subscribed) return;
    if (err) { fail(err); return; }
    client.subscribed = true;
    ready(client);
  };
  const sse = TRANSPORT === 'sse';
  const connect = '{"connect":{},"id":1}';
  const url = sse
    ? `${HTTP_BASE}/connection/sse?cf_connect=${encodeURIComponent(connect)}`
    : `${HTTP_BASE}/connection/http_stream`;
  const headers = sse ? {} : { 'Content-Type': 'application/json', 'Content-Length': connect.length };
  const separator = sse ? '\n\n' : '\n';
  const skip = sse ? 6 : 0; // "data: "
  let route = null; // { node, session } from the connect reply
  const onMessage = (text, start, end) => {
    if (text.startsWith('{"push"', start)) {
      if (LATENCY) {
        const pub = JSON.parse(text.slice(start, end)).push.pub;
        if (pub) deliveredTo(client, JSON.stringify(pub.data));
      } else {
        deliveredTo(client, null);
      }
    } else if (end - start === 2 && text.startsWith('{}', start)) {
      if (route) emulate(route.node, route.session, '{}');
    } else {
      const reply = JSON.parse(text.slice(start, end));
      if (reply.error) done(new Error(`centrifugo error ${JSON.stringify(reply.error)}`));
      else if (reply.id === 1) {
        route = { node: reply.connect.node, session: reply.connect.session };
        emulate(route.node, route.session, JSON.stringify({ subscribe: { channel: opts.channel }, id: 2 }));
      } else if (reply.id === 2) done();
    }
  };
  const req = http.request(url, { method: sse ? 'GET' : 'POST', agent: false, headers }, (res) => {
    if (res.statusCode !== 200) { done(new Error(`stream answered ${res.statusCode}`)); res.resume(); return; }
    res.setEncoding('utf8');
    let rest = '';
    res.on('data', (chunk) => {
      const text = rest ? rest + chunk : chunk;
      let start = 0;
      let end;
      while ((end = text.indexOf(separator, start)) !== -1) {
        const from = text.charCodeAt(start) === 13 ? start + 2 : start; // SSE's opening \r\n
        if (end > from) onMessage(text, from + skip, end);
        start = end + separator.length;
      }
      rest = start < text.length ? text.slice(start) : '';
    });
    res.on('end', () => {
      if (!client.subscribed) done(new Error('stream ended before subscribed'));
      else if (!closing) lostConnections++;
    });
  });
  req.on('error', (err) => { if (!client.subscribed) done(err); else if (!closing) lostConnections++; });
  req.end(sse ? undefined : connect);
  client.ws = { terminate: () => req.destroy() };
  return client;
}

// MANY CHANNELS: client k subscribes to p<k> and to its group g<k / group_size>.
function channelsSubscriber(index, ready, fail) {
  const { client, ws, done } = openClient(ready, fail);
  const rooms = [`p${index}`, `g${Math.floor(index / GROUP_SIZE)}`];
  let acks = 0;
  const acked = () => { if (++acks === rooms.length) done(); };
  if (opts.proto === 'raw') {
    ws.on('open', () => { for (const room of rooms) ws.send(`join ${room}`); });
    ws.on('message', (data) => {
      if (client.subscribed) deliveredTo(client, null);
      else if (data.toString().startsWith('joined ')) acked();
    });
  } else if (opts.proto === 'centrifugo') {
    ws.on('open', () => ws.send('{"connect":{},"id":1}'));
    ws.on('message', (data) => {
      const text = data.toString();
      const parts = text.indexOf('\n') === -1 ? [text] : text.split('\n');
      for (const part of parts) {
        if (part.startsWith('{"push"')) deliveredTo(client, null);
        else if (part === '{}') ws.send('{}');
        else if (part.length > 0) {
          const reply = JSON.parse(part);
          if (reply.error) done(new Error(`centrifugo error ${JSON.stringify(reply.error)}`));
          else if (reply.id === 1) {
            rooms.forEach((room, k) => ws.send(
              `{"subscribe":{"channel":${JSON.stringify(NS + room)}},"id":${k + 2}}`));
          } else if (reply.id >= 2) acked();
        }
      }
    });
  } else if (opts.proto === 'socketio') {
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('42')) deliveredTo(client, null);
      else if (text === '2') ws.send('3');
      else if (text.startsWith('0')) ws.send('40');
      else if (text.startsWith('40')) {
        rooms.forEach((room, k) => ws.send(`42${k + 1}${JSON.stringify(['join', room])}`));
      } else if (text.startsWith('43')) acked();
      else if (text.startsWith('44')) done(new Error(`socket.io connect error ${text}`));
    });
  } else {
    throw new Error(`unknown proto ${opts.proto}`);
  }
  return client;
}

// RPC: closed loop; client.next() sends the next request once the answer came.
let rpcRunning = false;
let roundTrips = 0;
let rpcErrors = 0;
let rpcIdle = 0; // clients that got their last answer after the stop
let tLastAnswer = 0;
let onRpcIdle = null;
const rpcLatencies = RPC ? new Float64Array(1 << 22) : null;

function rpcClient(index, ready, fail) {
  const { client, ws, done } = openClient(ready, fail);
  client.seq = 0;
  client.sentAt = 0;
  client.expect = '';
  client.next = () => {
    const i = ++client.seq;
    client.expect = `"i":${i},`;
    client.sentAt = performance.now();
    const body = payload(i);
    if (opts.proto === 'centrifugo') ws.send(`{"rpc":{"method":"echo","data":${body}},"id":${i + 1}}`);
    else if (opts.proto === 'socketio') ws.send(`42${i}["echo",${body}]`);
    else ws.send(body);
  };
  const answered = (text) => {
    const now = performance.now();
    if (text.indexOf(client.expect) === -1) {
      if (++rpcErrors <= 3) log(`rpc: unexpected answer ${text.slice(0, 200)}`);
    } else {
      if (roundTrips < rpcLatencies.length) rpcLatencies[roundTrips] = now - client.sentAt;
      roundTrips++;
      tLastAnswer = now;
    }
    if (rpcRunning) client.next();
    else if (++rpcIdle === C && onRpcIdle) onRpcIdle();
  };
  if (opts.proto === 'raw') {
    ws.on('open', () => done());
    ws.on('message', (data) => answered(data.toString()));
  } else if (opts.proto === 'centrifugo') {
    ws.on('open', () => ws.send('{"connect":{},"id":1}'));
    ws.on('message', (data) => {
      const text = data.toString();
      const parts = text.indexOf('\n') === -1 ? [text] : text.split('\n');
      for (const part of parts) {
        if (part === '{}') ws.send('{}');
        else if (!client.subscribed) {
          const reply = JSON.parse(part);
          if (reply.error) done(new Error(`centrifugo error ${JSON.stringify(reply.error)}`));
          else if (reply.id === 1) done();
        } else if (part.length > 0) answered(part);
      }
    });
  } else if (opts.proto === 'socketio') {
    ws.on('message', (data) => {
      const text = data.toString();
      if (text.startsWith('43')) answered(text);
      else if (text === '2') ws.send('3');
      else if (text.startsWith('0')) ws.send('40');
      else if (text.startsWith('40')) done();
      else if (text.startsWith('44')) done(new Error(`socket.io connect error ${text}`));
    });
  } else {
    throw new Error(`unknown proto ${opts.proto}`);
  }
  return client;
}

let closing = false;
let lostConnections = 0;

function connectAll(factory) {
  return new Promise((resolve, reject) => {
    const clients = [];
    let started = 0;
    let inFlight = 0;
    let failed = 0;
    let lastReport = performance.now();
    const pump = () => {
      while (inFlight < opts.concurrency && started < C) {
        const index = started++;
        inFlight++;
        factory(index, (client) => {
          inFlight--;
          clients.push(client);
          const now = performance.now();
          if (now - lastReport > 2000) {
            lastReport = now;
            log(`${clients.length}/${C} subscribed`);
          }
          if (clients.length === C) resolve(clients);
          else pump();
        }, (err) => {
          inFlight--;
          failed++;
          if (failed <= 3) log(`connect failed: ${err.message ?? err}`);
          reject(new Error(`${failed} connection(s) failed: ${err.message ?? err}`));
        });
      }
    };
    pump();
  });
}

// ---- publisher -------------------------------------------------------------------------
// send(i): publication i to the one channel; sendTo(i, g): to group channel g<g>.
async function publisher() {
  if (opts.proto === 'socketio') {
    const httpUrl = opts.url.replace(/^ws/, 'http').replace(/\/socket\.io\/.*$/, '');
    const socket = ioClient(httpUrl, { transports: ['websocket'], reconnection: false });
    await new Promise((resolve, reject) => {
      socket.on('connect', resolve);
      socket.on('connect_error', reject);
    });
    return {
      send: (i) => socket.emit('pub', JSON.parse(payload(i))),
      sendTo: (i, g) => socket.emit('pubto', `g${g}`, JSON.parse(payload(i))),
      close: () => socket.close(),
    };
  }
  const ws = new WebSocket(opts.url, WS_OPTIONS);
  await new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); });
  if (opts.proto === 'centrifugo') {
    let publishErrors = 0;
    await new Promise((resolve, reject) => {
      ws.on('message', (data) => {
        for (const part of data.toString().split('\n')) {
          if (part === '{}') { ws.send('{}'); continue; }
          const reply = JSON.parse(part);
          if (reply.id === 1) { if (reply.error) reject(new Error(JSON.stringify(reply.error))); else resolve(); }
          else if (reply.error && ++publishErrors <= 3) log(`publish error ${JSON.stringify(reply.error)}`);
        }
      });
      ws.send('{"connect":{},"id":1}');
    });
    const channel = JSON.stringify(opts.channel);
    return {
      send: (i) => ws.send(`{"publish":{"channel":${channel},"data":${publication(i)}},"id":${i + 2}}`),
      sendTo: (i, g) => ws.send(`{"publish":{"channel":"${NS}g${g}","data":${payload(i)}},"id":${i + 2}}`),
      close: () => ws.close(),
    };
  }
  ws.on('message', () => {});
  return {
    send: (i) => ws.send(payload(i)),
    sendTo: (i, g) => ws.send(`pub g${g} ${payload(i)}`),
    close: () => ws.close(),
  };
}

// ---- fairness ----------------------------------------------------------------------------
// A plain centrifugo connection: connect, then hand every parsed reply/push to onMessage.
function centrifugoConnection(onMessage) {
  const ws = new WebSocket(opts.url, WS_OPTIONS);
  return new Promise((resolve, reject) => {
    ws.on('error', reject);
    ws.on('close', () => { if (!closing) lostConnections++; });
    ws.on('message', (data) => {
      for (const part of data.toString().split('\n')) {
        if (part === '{}') { ws.send('{}'); continue; }
        if (part.length === 0) continue;
        const msg = JSON.parse(part);
        if (msg.id === 1) { if (msg.error) reject(new Error(JSON.stringify(msg.error))); else resolve(ws); }
        else onMessage(msg, part);
      }
    });
    ws.on('open', () => ws.send('{"connect":{},"id":1}'));
  });
}

const canary = { sent: 0, received: 0, phase: 'quiet', quiet: [], flood: [] };

async function canaryPair() {
  let subscribed;
  const ready = new Promise((r) => { subscribed = r; });
  const sub = await centrifugoConnection((msg) => {
    if (msg.id === 2) { subscribed(); return; }
    const pub = msg.push && msg.push.pub;
    if (!pub) return;
    canary.received++;
    canary[pub.data.phase].push(performance.now() - pub.data.t);
  });
  sub.send('{"subscribe":{"channel":"chat:canary"},"id":2}');
  await ready;
  const pub = await centrifugoConnection(() => {});
  return {
    send: (i) => {
      canary.sent++;
      const data = `{"i":${i},"t":${performance.now()},"phase":"${canary.phase}"}`;
      pub.send(`{"publish":{"channel":"chat:canary","data":${data}},"id":${i + 2}}`);
    },
    close: () => { sub.close(); pub.close(); },
  };
}

const flood = { running: false, sent: 0, acked: 0, errors: 0, t0: 0, t1: 0 };

async function flooder() {
  let ws;
  const next = () => {
    flood.sent++;
    ws.send(`{"publish":{"channel":"chat:flood","data":${payload(flood.sent)}},"id":${flood.sent + 2}}`);
  };
  ws = await centrifugoConnection((msg) => {
    if (msg.id === undefined) return;
    if (msg.error) { if (++flood.errors <= 3) log(`flood error ${JSON.stringify(msg.error)}`); }
    else flood.acked++;
    if (flood.running) next();
  });
  return { start: () => { for (let w = 0; w < (opts.window ?? 50); w++) next(); }, close: () => ws.close() };
}

async function canaryPhase(pair, phase, first) {
  canary.phase = phase;
  const count = Math.max(1, Math.round(opts.rate * opts.duration));
  const interval = 1000 / opts.rate;
  const start = performance.now();
  for (let i = 0; i < count; i++) {
    const wait = start + i * interval - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pair.send(first + i);
  }
  return count;
}

async function runFairness(pair, flooders) {
  tFirstSend = performance.now();
  const quiet = await canaryPhase(pair, 'quiet', 0);
  flood.running = true;
  flood.t0 = performance.now();
  const delivered0 = delivered;
  for (const f of flooders) f.start();
  await canaryPhase(pair, 'flood', quiet);
  flood.running = false;
  flood.t1 = performance.now();
  flood.deliveries = delivered - delivered0;
  const deadline = performance.now() + Math.min(opts.timeout, 10) * 1000;
  while (canary.received < canary.sent && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 20));
  }
  tLastDelivery = performance.now();
  return canary.received === canary.sent;
}

function fairnessResult(result) {
  const stats = (values) => {
    const sorted = Float64Array.from(values).sort();
    return { p50: percentile(sorted, 0.5), p99: percentile(sorted, 0.99), max: percentile(sorted, 1), n: sorted.length };
  };
  const quiet = stats(canary.quiet);
  const flooded = stats(canary.flood);
  const seconds = (flood.t1 - flood.t0) / 1000;
  Object.assign(result, {
    complete: result.complete && lostConnections === 0,
    canary_sent: canary.sent, canary_lost: canary.sent - canary.received,
    quiet_p50_ms: quiet.p50, quiet_p99_ms: quiet.p99, quiet_max_ms: quiet.max,
    flood_p50_ms: flooded.p50, flood_p99_ms: flooded.p99, flood_max_ms: flooded.max,
    flood_publications_per_s: flood.acked / seconds, flood_errors: flood.errors,
    flood_deliveries_per_s: flood.deliveries / seconds,
    delivered: canary.received + flood.deliveries, expected: canary.sent + flood.deliveries,
  });
}

// ---- scenarios -------------------------------------------------------------------------
function waitAllDelivered(deadline) {
  return new Promise((resolve) => {
    if (clientsDone === C) { resolve(true); return; }
    const timer = setTimeout(() => resolve(false), Math.max(0, deadline - performance.now()));
    onAllDelivered = () => { clearTimeout(timer); resolve(true); };
  });
}

async function runFanout(pub) {
  tFirstSend = performance.now();
  for (let i = 0; i < N; i++) pub.send(i);
  return waitAllDelivered(tFirstSend + opts.timeout * 1000);
}

async function runLatency(pub) {
  const interval = 1000 / opts.rate;
  tFirstSend = performance.now();
  for (let i = 0; i < N; i++) {
    const due = tFirstSend + i * interval;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    pub.send(i);
  }
  return waitAllDelivered(performance.now() + Math.min(opts.timeout, 10) * 1000);
}

async function runChannels(pub) {
  tFirstSend = performance.now();
  for (let i = 0; i < GROUPS * N; i++) pub.sendTo(i, i % GROUPS);
  return waitAllDelivered(tFirstSend + opts.timeout * 1000);
}

async function runRpc(clients) {
  rpcRunning = true;
  tFirstSend = performance.now();
  for (const client of clients) client.next();
  await new Promise((r) => setTimeout(r, opts.duration * 1000));
  rpcRunning = false;
  // The requests in flight are answered and counted; then every client is idle.
  return new Promise((resolve) => {
    if (rpcIdle === C) { resolve(true); return; }
    const timer = setTimeout(() => resolve(false), Math.min(opts.timeout, 10) * 1000);
    onRpcIdle = () => { clearTimeout(timer); resolve(true); };
  });
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[idx];
}

function waitForLine(rl, expected) {
  return new Promise((resolve, reject) => {
    const onLine = (line) => {
      if (line.trim() === expected) { rl.off('line', onLine); resolve(); }
    };
    rl.on('line', onLine);
    rl.once('close', () => reject(new Error(`stdin closed before ${expected}`)));
  });
}

async function main() {
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('close', () => { if (!closing) process.exit(3); });
  const t0 = performance.now();
  if (TRANSPORT !== 'websocket' && (opts.proto !== 'centrifugo' || RPC || CHANNELS || FAIRNESS)) {
    throw new Error(`transport ${TRANSPORT}: centrifugo FANOUT and LATENCY only`);
  }
  const factory = RPC ? rpcClient : CHANNELS ? channelsSubscriber
    : TRANSPORT !== 'websocket' ? streamSubscriber : subscriber;
  const clients = await connectAll(factory);
  const connectSeconds = (performance.now() - t0) / 1000;
  const pub = RPC || FAIRNESS ? null : await publisher();
  const pair = FAIRNESS ? await canaryPair() : null;
  const flooders = [];
  for (let k = 0; FAIRNESS && k < (opts.flooders ?? 1); k++) flooders.push(await flooder());
  out('READY', { clients: clients.length, connect_s: connectSeconds });
  await waitForLine(rl, 'GO');

  const cpu0 = process.cpuUsage();
  const wall0 = performance.now();
  let complete;
  if (RPC) complete = await runRpc(clients);
  else if (FAIRNESS) complete = await runFairness(pair, flooders);
  else if (CHANNELS) complete = await runChannels(pub);
  else if (LATENCY) complete = await runLatency(pub);
  else complete = await runFanout(pub);
  const end = RPC ? tLastAnswer : complete ? tLastDelivery : performance.now();
  const cpu = process.cpuUsage(cpu0);
  const wall = (performance.now() - wall0) / 1000;
  const elapsed = (end - tFirstSend) / 1000;

  const result = {
    proto: opts.proto, scenario: opts.scenario, clients: C, messages: N,
    expected: C * N, delivered, complete, lost_connections: lostConnections,
    elapsed_s: elapsed, deliveries_per_s: delivered / elapsed, connect_s: connectSeconds,
    transport: TRANSPORT, emulation_errors: emulationErrors,
    loadgen_cpu_s: (cpu.user + cpu.system) / 1e6, loadgen_wall_s: wall,
    bytes_received: bytesReceived,
  };
  if (CHANNELS) {
    result.groups = GROUPS;
    result.publications = GROUPS * N;
  }
  if (RPC) {
    // delivered / expected: round trips answered (and checked) / requests sent.
    const sent = clients.reduce((sum, c) => sum + c.seq, 0);
    result.complete = complete && rpcErrors === 0 && lostConnections === 0;
    result.delivered = roundTrips;
    result.expected = sent;
    result.errors = rpcErrors;
    result.round_trips_per_s = roundTrips / elapsed;
    result.deliveries_per_s = result.round_trips_per_s;
    const sorted = rpcLatencies.slice(0, Math.min(roundTrips, rpcLatencies.length)).sort();
    result.latency_samples = sorted.length;
    result.p50_ms = percentile(sorted, 0.5);
    result.p99_ms = percentile(sorted, 0.99);
    result.max_ms = percentile(sorted, 1);
  }
  if (FAIRNESS) fairnessResult(result);
  if (LATENCY) {
    const sorted = latencies.slice(0, nLat).sort();
    result.latency_samples = nLat;
    result.p50_ms = percentile(sorted, 0.5);
    result.p99_ms = percentile(sorted, 0.99);
    result.max_ms = percentile(sorted, 1);
  }
  out('RESULT', result);

  closing = true;
  if (pub) pub.close();
  if (pair) pair.close();
  for (const f of flooders) f.close();
  for (const c of clients) c.ws.terminate();
  emulationAgent.destroy();
  // Give the orchestrator a moment to read the result, then leave regardless.
  setTimeout(() => process.exit(0), 2000).unref();
  waitForLine(rl, 'EXIT').then(() => process.exit(0), () => process.exit(0));
}

main().catch((err) => {
  log(`fatal: ${err.stack ?? err}`);
  process.exit(1);
});
