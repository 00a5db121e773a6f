// Drives centrifuge-js (unchanged) for tests/examples/test_proxy_backend.py: a client of
// `wirehub serve` whose decisions are taken by an HTTP proxy backend (examples/proxy).
//
//   node proxy_backend.mjs '<options JSON>'
//
// Options: url (required); headers (HTTP headers of the WebSocket upgrade request, e.g.
// {"Cookie": "session=..."}: what a browser sends with its cookies); minReconnectDelay,
// maxReconnectDelay (ms); connect (default true).
//
// Output: one JSON object per line on stdout, {"event": "<name>", ...}. Client events:
// connecting, connected (client, data), disconnected, error (code, message). Subscription
// events, with "channel": subscribed (data), unsubscribed, sub_error, join (info),
// publication (data, info). "info" is {user, client, connInfo, chanInfo}.
//
// Input: one JSON command per line on stdin, each answered by {"event": "result", "id":
// <id>, "ok": true|false, ...} (on failure with the error's "code" and "message"):
//   {"op": "subscribe", "channel": "c"}        (the outcome comes as events)
//   {"op": "publish", "channel": "c", "data": <JSON>}
//   {"op": "rpc", "method": "m", "data": <JSON>} -> "data"
// End of stdin disconnects and exits.

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';
import { emit, errorFields, serveCommands } from './driver.mjs';

const options = JSON.parse(process.argv[2] ?? '{}');

// Node's `ws` takes request headers as an option; the SDK constructs its WebSocket with
// the URL (and a subprotocol) only.
class WebSocketWithHeaders extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, { headers: options.headers ?? {} });
  }
}

const config = { websocket: WebSocketWithHeaders, name: 'js' };
for (const key of ['minReconnectDelay', 'maxReconnectDelay']) {
  if (options[key] !== undefined) config[key] = options[key];
}
const centrifuge = new Centrifuge(options.url, config);

function info(value) {
  if (!value) return null;
  return { user: value.user, client: value.client, connInfo: value.connInfo ?? null, chanInfo: value.chanInfo ?? null };
}

centrifuge.on('connecting', (ctx) => emit('connecting', { code: ctx.code, reason: ctx.reason }));
centrifuge.on('connected', (ctx) => emit('connected', { client: ctx.client, data: ctx.data ?? null }));
centrifuge.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));
centrifuge.on('error', (ctx) => emit('error', { type: ctx.type, ...errorFields(ctx.error) }));

function subscribe(channel) {
  const sub = centrifuge.newSubscription(channel);
  sub.on('subscribed', (ctx) => emit('subscribed', { channel, data: ctx.data ?? null }));
  sub.on('unsubscribed', (ctx) => emit('unsubscribed', { channel, code: ctx.code, reason: ctx.reason }));
  sub.on('error', (ctx) => emit('sub_error', { channel, type: ctx.type, ...errorFields(ctx.error) }));
  sub.on('join', (ctx) => emit('join', { channel, info: info(ctx.info) }));
  sub.on('publication', (ctx) => emit('publication', { channel, data: ctx.data, info: info(ctx.info) }));
  sub.subscribe();
}

async function run(command) {
  switch (command.op) {
    case 'subscribe':
      subscribe(command.channel);
      return {};
    case 'publish':
      await centrifuge.publish(command.channel, command.data);
      return {};
    case 'rpc': {
      const result = await centrifuge.rpc(command.method, command.data ?? {});
      return { data: result.data ?? null };
    }
    default:
      throw new Error(`unknown op ${command.op}`);
  }
}

serveCommands(centrifuge, run);

if (options.connect !== false) centrifuge.connect();
