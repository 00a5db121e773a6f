// Drives centrifuge-js (unchanged) for tests/interop/test_protobuf.py: the protobuf build
// or the JSON one, over a `ws` WebSocket whose permessage-deflate offer can be set.
//
//   node client_wire.mjs '<options JSON>'
//
// Options: url (required); token; protobuf (default false: the JSON build, else
// `centrifuge/build/protobuf`); perMessageDeflate (handed to ws; by default ws offers
// permessage-deflate); subscribe (channels subscribed before connect()).
//
// Output: one JSON object per line on stdout, {"event": "<name>", ...}: ws_open (with the
// negotiated "protocol" and "extensions"), connected, disconnected, error, subscribed,
// unsubscribed, publication, sub_error, result. A publication carries "text": its data
// as UTF-8 text for the protobuf build (whose payloads are bytes), JSON.stringify(data)
// for the JSON build; and "binary": whether the SDK handed over bytes.
//
// Input: one JSON command per line on stdin, each answered by {"event": "result", "id":
// <id>, "ok": true|false, ...}:
//   {"op": "publish", "channel": "chat:1", "text": "{\"x\":1}", "id": 1}
// publishes the UTF-8 bytes of text (protobuf build) or JSON.parse(text) (JSON build).
// End of stdin disconnects and exits.

import WebSocket from 'ws';
import { emit, errorFields, serveCommands } from './driver.mjs';

const options = JSON.parse(process.argv[2] ?? '{}');
const { Centrifuge } = await import(options.protobuf ? 'centrifuge/build/protobuf' : 'centrifuge');

const wsOptions = {};
if (options.perMessageDeflate !== undefined) wsOptions.perMessageDeflate = options.perMessageDeflate;

// The SDK calls `new websocket(url[, subprotocol])`; the ws options go in third.
class ConfiguredWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, wsOptions);
    this.addEventListener('open', () =>
      emit('ws_open', { protocol: this.protocol, extensions: this.extensions }),
    );
  }
}

const config = { websocket: ConfiguredWebSocket, name: 'js-wire' };
if (options.token !== undefined) config.token = options.token;

const centrifuge = new Centrifuge(options.url, config);
centrifuge.on('connected', (ctx) => emit('connected', { client: ctx.client }));
centrifuge.on('disconnected', (ctx) => emit('disconnected', { code: ctx.code, reason: ctx.reason }));
centrifuge.on('error', (ctx) => emit('error', { type: ctx.type, ...errorFields(ctx.error) }));

const decoder = new TextDecoder();

function asText(data) {
  return data instanceof Uint8Array ? decoder.decode(data) : JSON.stringify(data);
}

for (const channel of options.subscribe ?? []) {
  const sub = centrifuge.newSubscription(channel);
  sub.on('subscribed', () => emit('subscribed', { channel }));
  sub.on('unsubscribed', (ctx) => emit('unsubscribed', { channel, code: ctx.code, reason: ctx.reason }));
  sub.on('publication', (ctx) =>
    emit('publication', {
      channel,
      text: asText(ctx.data),
      binary: ctx.data instanceof Uint8Array,
      client: ctx.info?.client ?? null,
    }),
  );
  sub.on('error', (ctx) => emit('sub_error', { channel, type: ctx.type, ...errorFields(ctx.error) }));
  sub.subscribe();
}

async function run(command) {
  if (command.op !== 'publish') throw new Error(`unknown op ${command.op}`);
  const data = options.protobuf ? new TextEncoder().encode(command.text) : JSON.parse(command.text);
  await centrifuge.publish(command.channel, data);
  return {};
}

serveCommands(centrifuge, run);

centrifuge.connect();
