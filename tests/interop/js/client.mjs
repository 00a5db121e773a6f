// Drives centrifuge-js (unchanged) for tests/interop/test_js_sdk.py.
//
//   node client.mjs '<options JSON>'
//
// Options: url (required); token; getTokens (a list: getToken returns them in order and
// keeps returning the last one); subscribe (channels subscribed before connect(), so
// their subscribe commands share the connect frame); minReconnectDelay,
// maxReconnectDelay, timeout (ms); connect (default true).
//
// Output: one JSON object per line on stdout, {"event": "<name>", ...}. Client events:
// state, connecting, connected, disconnected, error, get_token. Subscription events:
// sub_state, subscribing, subscribed, unsubscribed, publication, sub_error (all with
// "channel"). Transport observations from the WebSocket class handed to the SDK:
// ws_created, ws_open, ws_close, server_ping (a `{}` reply received) and pong_sent (a
// `{}` command sent).
//
// Input: one JSON command per line on stdin, each answered by {"event": "result", "id":
// <id>, "ok": true|false, ...}:
//   {"op": "subscribe", "channel": "chat:1", "id": 1}
//   {"op": "publish", "channel": "chat:1", "data": {...}, "id": 2}  (client publish)
//   {"op": "snapshot", "id": 3}    -> "state", "client" and "subs" (channel -> state)
//   {"op": "disconnect", "id": 4}
// End of stdin disconnects and exits.

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { emit, errorFields, serveCommands } from './driver.mjs';

const options = JSON.parse(process.argv[2] ?? '{}');

function isEmptyMessage(line) {
  return line.trim() === '{}';
}

// The SDK's own WebSocket, observed: the protocol-level ping is an empty reply `{}` and
// the pong an empty command `{}`, and the SDK reports neither.
class ObservedWebSocket extends WebSocket {
  constructor(...args) {
    super(...args);
    emit('ws_created');
    this.addEventListener('open', () => emit('ws_open'));
    this.addEventListener('close', (event) => emit('ws_close', { code: event.code, reason: event.reason }));
    this.addEventListener('message', (event) => {
      if (typeof event.data !== 'string') return;
      for (const line of event.data.split('\n')) {
        if (isEmptyMessage(line)) emit('server_ping');
      }
    });
  }

  send(data, ...rest) {
    if (typeof data === 'string') {
      for (const line of data.split('\n')) {
        if (isEmptyMessage(line)) emit('pong_sent');
      }
    }
    return super.send(data, ...rest);
  }
}

const config = { websocket: ObservedWebSocket, name: 'js' };
for (const key of ['token', 'minReconnectDelay', 'maxReconnectDelay', 'timeout']) {
  if (options[key] !== undefined) config[key] = options[key];
}
if (Array.isArray(options.getTokens)) {
  const tokens = [...options.getTokens];
  config.getToken = async () => {
    emit('get_token');
    return tokens.length > 1 ? tokens.shift() : tokens[0];
  };
}

const centrifuge = new Centrifuge(options.url, config);

centrifuge.on('state', (ctx) => emit('state', { old: ctx.oldState, new: ctx.newState }));
centrifuge.on('connecting', (ctx) => emit('connecting', { code: ctx.code, reason: ctx.reason }));
centrifuge.on('connected', (ctx) => emit('connected', { client: ctx.client, transport: ctx.transport }));
centrifuge.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));
centrifuge.on('error', (ctx) => emit('error', { type: ctx.type, ...errorFields(ctx.error) }));

function subscribe(channel) {
  const sub = centrifuge.newSubscription(channel);
  sub.on('state', (ctx) => emit('sub_state', { channel, old: ctx.oldState, new: ctx.newState }));
  sub.on('subscribing', (ctx) => emit('subscribing', { channel, code: ctx.code, reason: ctx.reason }));
  sub.on('subscribed', () => emit('subscribed', { channel }));
  sub.on('unsubscribed', (ctx) => emit('unsubscribed', { channel, code: ctx.code, reason: ctx.reason }));
  sub.on('publication', (ctx) => emit('publication', { channel, data: ctx.data, info: ctx.info ?? null }));
  sub.on('error', (ctx) => emit('sub_error', { channel, type: ctx.type, ...errorFields(ctx.error) }));
  sub.subscribe();
  return sub;
}

for (const channel of options.subscribe ?? []) subscribe(channel);

async function run(command) {
  switch (command.op) {
    case 'subscribe':
      subscribe(command.channel);
      return {};
    case 'publish':
      await centrifuge.publish(command.channel, command.data);
      return {};
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
