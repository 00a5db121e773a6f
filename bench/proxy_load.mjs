// Load for bench/proxy.py: connects/s and RPC round trips/s over the Centrifugo protocol
// (JSON), raw WebSocket frames through `ws` (no SDK: its own costs are not measured).
//
//   node proxy_load.mjs '<options JSON>'
//
// Options: url; mode "connect" (C workers each open a connection with `headers`, send a
// connect command, wait for its reply, close; `count` connects in all) or "rpc" (C
// connections, each sends `count` RPCs "echo" one after another, each checked to come
// back with its own data); clients (C); headers (of the upgrade request: the session
// cookie).
//
// Protocol on stdio, as loadgen.mjs: "READY {}" once set up (rpc: once connected), then
// "GO" on stdin runs the measurement, "RESULT {ops, seconds, ops_per_s, failed}" ends it.

import readline from 'node:readline';
import WebSocket from 'ws';

const opts = JSON.parse(process.argv[2]);
const WS_OPTIONS = { headers: opts.headers ?? {}, perMessageDeflate: false };

function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(opts.url, WS_OPTIONS);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

// The reply with this id (JSON replies may come several per frame, one per line).
function reply(ws, id) {
  return new Promise((resolve, reject) => {
    const onClose = (code) => {
      ws.off('message', onMessage);
      reject(new Error(`closed with ${code}`));
    };
    const onMessage = (data) => {
      for (const line of data.toString().split('\n')) {
        if (!line) continue;
        const message = JSON.parse(line);
        if (message.id === id) {
          ws.off('message', onMessage);
          ws.off('close', onClose);
          resolve(message);
          return;
        }
      }
    };
    ws.on('message', onMessage);
    ws.once('close', onClose);
  });
}

async function connected() {
  const ws = await open();
  const answer = reply(ws, 1);
  ws.send('{"id":1,"connect":{"name":"bench"}}');
  const message = await answer;
  if (!message.connect) throw new Error(`connect refused: ${JSON.stringify(message)}`);
  return ws;
}

let failed = 0;

async function connectWorker(next) {
  while (next()) {
    try {
      (await connected()).close();
    } catch {
      failed += 1;
    }
  }
}

async function rpcWorker(ws) {
  for (let i = 2; i < opts.count + 2; i++) {
    const answer = reply(ws, i);
    ws.send(`{"id":${i},"rpc":{"method":"echo","data":{"i":${i}}}}`);
    const message = await answer;
    if (message.rpc?.data?.i !== i) failed += 1;
  }
}

async function main() {
  const sockets = opts.mode === 'rpc' ? await Promise.all(Array.from({ length: opts.clients }, connected)) : [];
  process.stdout.write('READY {}\n');
  const input = readline.createInterface({ input: process.stdin });
  for await (const line of input) {
    if (line.trim() === 'GO') break;
  }
  const start = performance.now();
  let ops = 0;
  if (opts.mode === 'rpc') {
    await Promise.all(sockets.map(rpcWorker));
    ops = opts.clients * opts.count;
  } else {
    let started = 0;
    const next = () => started++ < opts.count;
    await Promise.all(Array.from({ length: opts.clients }, () => connectWorker(next)));
    ops = opts.count;
  }
  const seconds = (performance.now() - start) / 1000;
  for (const ws of sockets) ws.close();
  process.stdout.write(`RESULT ${JSON.stringify({ ops, seconds, ops_per_s: ops / seconds, failed })}\n`);
  process.exit(0);
}

main().catch((error) => {
  process.stderr.write(`${error.stack ?? error}\n`);
  process.exit(1);
});
