// Drives centrifuge-js (unchanged) for tests/interop/test_features_js.py: recovery,
// presence and join/leave, RPC, token refresh, subscription tokens, server-side
// subscriptions, over JSON or Protobuf.
//
//   node features.mjs '<options JSON>'
//
// Options: url (required); protobuf (use the SDK's protobuf build, subprotocol
// centrifuge-protobuf); token; getTokens (a list: getToken returns them in order and
// keeps returning the last one); getTokenFails (getToken rejects, as when the app's
// token endpoint is down); minReconnectDelay, maxReconnectDelay, timeout (ms); subscribe
// (channels, or {"channel": ..., <subscription options>}, subscribed before connect());
// connect (default true).
// Emulation (HTTP-streaming or SSE instead of WebSocket): transport ("http_stream" or
// "sse"; url is then that endpoint's http:// URL), emulationEndpoint (absolute URL of
// POST /emulation), freshConnections (every emulation POST on a connection of its own,
// so that a round-robin balancer sends them to alternating nodes). SSE uses the
// `eventsource` package, as Node 20 has no EventSource. Emulation events:
// stream_open ({transport}: the stream request was made), emulation_post ({status}).
// Subscription options: token; getTokens (as above, per subscription); joinLeave,
// recoverable, positioned; minResubscribeDelay, maxResubscribeDelay; delta ("fossil");
// tagsFilter (a FilterNode object).
//
// Payloads: tests speak JSON values. With protobuf they travel as the bytes of their
// JSON text (the server's payloads are JSON), and received bytes are parsed back; such
// events also carry "binary": true.
//
// Output: one JSON object per line on stdout, {"event": "<name>", ...}. Client events:
// state, connecting, connected, disconnected, error, get_token, ws_created, ws_open
// ("protocol": the negotiated subprotocol), ws_close. Server-side subscriptions:
// server_subscribed, server_publication, server_join, server_leave, server_unsubscribed.
// Subscription events: sub_state, subscribing, subscribed (with recoverable, positioned,
// wasRecovering, recovered, hasRecoveredPublications, offset, epoch), unsubscribed,
// publication (data, offset when the channel has history, info, tags), join, leave
// (info: {user, client}), sub_error, sub_get_token. All of them with "channel".
//
// Input: one JSON command per line on stdin, each answered by {"event": "result", "id":
// <id>, "ok": true|false, ...} (on failure with the error's "code" and "message"):
//   {"op": "subscribe", "channel": "c", "options": {...}}
//   {"op": "unsubscribe", "channel": "c"}
//   {"op": "publish", "channel": "c", "data": <JSON>}
//   {"op": "history", "channel": "c", "limit": N, "since": {offset, epoch}, "reverse": b}
//        -> "publications" [{data, offset}], "offset", "epoch"
//   {"op": "presence", "channel": "c"}        -> "clients": {client id: user}
//   {"op": "presenceStats", "channel": "c"}   -> "numClients", "numUsers"
//   {"op": "rpc", "method": "m", "data": <JSON>} -> "data"
//   {"op": "snapshot"}   -> "state" and "subs" (channel -> state)
//   {"op": "deltaStats", "channel": "c"}      -> the subscription's deltaStats()
//   {"op": "disconnect"}
// End of stdin disconnects and exits.

import { Centrifuge as JsonCentrifuge } from 'centrifuge';
import { EventSource } from 'eventsource';
import http from 'node:http';
import WebSocket from 'ws';
import { emit, errorFields, serveCommands } from './driver.mjs';

const options = JSON.parse(process.argv[2] ?? '{}');
const protobuf = options.protobuf === true;
const { Centrifuge } = protobuf
  ? await import('centrifuge/build/protobuf')
  : { Centrifuge: JsonCentrifuge };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function encode(data) {
  return protobuf ? encoder.encode(JSON.stringify(data)) : data;
}

function decoded(data) {
  if (!(data instanceof Uint8Array)) return { data: data ?? null };
  const text = decoder.decode(data);
  if (text === '') return { data: null, binary: true };
  try {
    return { data: JSON.parse(text), binary: true };
  } catch {
    return { data: null, text, binary: true };
  }
}

function info(clientInfo) {
  return clientInfo ? { user: clientInfo.user, client: clientInfo.client } : null;
}

function publicationFields(ctx) {
  const fields = { ...decoded(ctx.data), info: info(ctx.info) };
  if (ctx.offset !== undefined) fields.offset = Number(ctx.offset);
  if (ctx.tags !== undefined) fields.tags = ctx.tags;
  return fields;
}

function subscribedFields(ctx) {
  return {
    channel: ctx.channel,
    recoverable: ctx.recoverable,
    positioned: ctx.positioned,
    wasRecovering: ctx.wasRecovering,
    recovered: ctx.recovered,
    hasRecoveredPublications: ctx.hasRecoveredPublications,
    offset: ctx.streamPosition ? Number(ctx.streamPosition.offset) : null,
    epoch: ctx.streamPosition ? ctx.streamPosition.epoch : null,
  };
}

// Returns the tokens in order, then keeps returning the last one.
function tokenSource(tokens, onCall) {
  const left = [...tokens];
  return async (ctx) => {
    onCall(ctx);
    return left.length > 1 ? left.shift() : left[0];
  };
}

class ObservedWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    emit('ws_created');
    this.addEventListener('open', () => emit('ws_open', { protocol: this.protocol }));
    this.addEventListener('close', (event) => emit('ws_close', { code: event.code, reason: event.reason }));
  }
}

const config = { websocket: ObservedWebSocket, name: 'js-features' };
for (const key of ['token', 'minReconnectDelay', 'maxReconnectDelay', 'timeout']) {
  if (options[key] !== undefined) config[key] = options[key];
}
if (options.getTokenFails) {
  config.getToken = async () => {
    emit('get_token');
    throw new Error('token endpoint unavailable');
  };
} else if (Array.isArray(options.getTokens)) {
  config.getToken = tokenSource(options.getTokens, () => emit('get_token'));
}

// POST /emulation on a TCP connection of its own (Connection: close); the SDK reads only
// the status of these responses.
function postAlone(url, init) {
  return new Promise((resolve, reject) => {
    const headers = { ...(init.headers ?? {}), Connection: 'close' };
    const body = init.body ?? '';
    const request = http.request(url, { method: 'POST', headers, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve({ status: response.statusCode, ok: response.statusCode < 300 }));
    });
    request.on('error', reject);
    if (init.signal) init.signal.addEventListener('abort', () => request.destroy(new Error('aborted')));
    request.end(typeof body === 'string' ? body : Buffer.from(body));
  });
}

function observedFetch(url, init = {}) {
  const target = String(url);
  if (target === options.emulationEndpoint) {
    const sent = options.freshConnections ? postAlone(target, init) : fetch(url, init);
    return sent.then((response) => {
      emit('emulation_post', { status: response.status });
      return response;
    });
  }
  emit('stream_open', { transport: 'http_stream' });
  return fetch(url, init);
}

class ObservedEventSource extends EventSource {
  constructor(...args) {
    super(...args);
    emit('stream_open', { transport: 'sse' });
  }
}

let endpoint = options.url;
if (options.transport) {
  endpoint = [{ transport: options.transport, endpoint: options.url }];
  config.emulationEndpoint = options.emulationEndpoint;
  config.fetch = observedFetch;
  config.eventsource = ObservedEventSource;
  delete config.websocket;
}

const centrifuge = new Centrifuge(endpoint, config);

centrifuge.on('state', (ctx) => emit('state', { old: ctx.oldState, new: ctx.newState }));
centrifuge.on('connecting', (ctx) => emit('connecting', { code: ctx.code, reason: ctx.reason }));
centrifuge.on('connected', (ctx) => emit('connected', { client: ctx.client, transport: ctx.transport }));
centrifuge.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));
centrifuge.on('error', (ctx) => emit('error', { type: ctx.type, ...errorFields(ctx.error) }));
centrifuge.on('subscribed', (ctx) => emit('server_subscribed', subscribedFields(ctx)));
centrifuge.on('unsubscribed', (ctx) => emit('server_unsubscribed', { channel: ctx.channel }));
centrifuge.on('publication', (ctx) =>
  emit('server_publication', { channel: ctx.channel, ...publicationFields(ctx) }));
centrifuge.on('join', (ctx) => emit('server_join', { channel: ctx.channel, info: info(ctx.info) }));
centrifuge.on('leave', (ctx) => emit('server_leave', { channel: ctx.channel, info: info(ctx.info) }));

const SUB_OPTIONS = [
  'token', 'joinLeave', 'recoverable', 'positioned', 'minResubscribeDelay', 'maxResubscribeDelay',
  'delta', 'tagsFilter',
];

function subscribe(channel, subOptions = {}) {
  const subConfig = {};
  for (const key of SUB_OPTIONS) {
    if (subOptions[key] !== undefined) subConfig[key] = subOptions[key];
  }
  if (Array.isArray(subOptions.getTokens)) {
    subConfig.getToken = tokenSource(subOptions.getTokens, () => emit('sub_get_token', { channel }));
  }
  const sub = centrifuge.newSubscription(channel, subConfig);
  sub.on('state', (ctx) => emit('sub_state', { channel, old: ctx.oldState, new: ctx.newState }));
  sub.on('subscribing', (ctx) => emit('subscribing', { channel, code: ctx.code, reason: ctx.reason }));
  sub.on('subscribed', (ctx) => emit('subscribed', subscribedFields(ctx)));
  sub.on('unsubscribed', (ctx) => emit('unsubscribed', { channel, code: ctx.code, reason: ctx.reason }));
  sub.on('publication', (ctx) => emit('publication', { channel, ...publicationFields(ctx) }));
  sub.on('join', (ctx) => emit('join', { channel, info: info(ctx.info) }));
  sub.on('leave', (ctx) => emit('leave', { channel, info: info(ctx.info) }));
  sub.on('error', (ctx) => emit('sub_error', { channel, type: ctx.type, ...errorFields(ctx.error) }));
  sub.subscribe();
  return sub;
}

for (const item of options.subscribe ?? []) {
  if (typeof item === 'string') subscribe(item);
  else subscribe(item.channel, item);
}

async function run(command) {
  switch (command.op) {
    case 'subscribe':
      subscribe(command.channel, command.options ?? {});
      return {};
    case 'unsubscribe': {
      const sub = centrifuge.getSubscription(command.channel);
      if (sub === null) throw new Error(`no subscription to ${command.channel}`);
      sub.unsubscribe();
      centrifuge.removeSubscription(sub);
      return {};
    }
    case 'publish':
      await centrifuge.publish(command.channel, encode(command.data));
      return {};
    case 'history': {
      const opts = {};
      for (const key of ['limit', 'since', 'reverse']) {
        if (command[key] !== undefined) opts[key] = command[key];
      }
      const result = await centrifuge.history(command.channel, opts);
      return {
        publications: result.publications.map((pub) => ({
          data: decoded(pub.data).data,
          offset: Number(pub.offset),
        })),
        offset: Number(result.offset),
        epoch: result.epoch,
      };
    }
    case 'presence': {
      const result = await centrifuge.presence(command.channel);
      const clients = {};
      for (const [client, clientInfo] of Object.entries(result.clients)) clients[client] = clientInfo.user;
      return { clients };
    }
    case 'presenceStats': {
      const result = await centrifuge.presenceStats(command.channel);
      return { numClients: result.numClients, numUsers: result.numUsers };
    }
    case 'rpc': {
      const result = await centrifuge.rpc(command.method, encode(command.data ?? {}));
      return decoded(result.data);
    }
    case 'deltaStats': {
      const sub = centrifuge.getSubscription(command.channel);
      if (sub === null) throw new Error(`no subscription to ${command.channel}`);
      return sub.deltaStats();
    }
    case 'snapshot': {
      const subs = {};
      for (const [channel, sub] of Object.entries(centrifuge.subscriptions())) subs[channel] = sub.state;
      return { state: centrifuge.state, subs };
    }
    case 'disconnect':
      centrifuge.disconnect();
      return {};
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

serveCommands(centrifuge, run);

if (options.connect !== false) centrifuge.connect();
