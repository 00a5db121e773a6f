// Peer: Node socket.io. Usage: node bench/peers/socketio_server.mjs PORT
//   "join" (with an ack): enter a room (FANOUT, LATENCY: room "bench"; MANY CHANNELS: a
//       personal and a group room)
//   "pub" data: emitted to the room "bench" as "msg" (FANOUT, LATENCY)
//   "pubto" room, data: emitted to that room as "msg" (MANY CHANNELS)
//   "echo" data, ack: acknowledged with the data (RPC: emit with a callback)
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2] ?? 8003);
const http = createServer();
const io = new Server(http, { transports: ['websocket'], serveClient: false });

io.on('connection', (socket) => {
  socket.on('join', (room, ack) => {
    socket.join(String(room));
    if (typeof ack === 'function') ack(true);
  });
  socket.on('pub', (data) => {
    io.to('bench').emit('msg', data);
  });
  socket.on('pubto', (room, data) => {
    io.to(String(room)).emit('msg', data);
  });
  socket.on('echo', (data, ack) => {
    if (typeof ack === 'function') ack(data);
  });
});
http.listen(port, '127.0.0.1', () =>
  console.log(`socket.io peer listening on http://127.0.0.1:${port}/socket.io/`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
