// Peer: Node socket.io room emit. A client emits "join" (with an ack) to enter a room;
// a "pub" event is emitted to the room bench as "msg".
// Usage: node bench/peers/socketio_server.mjs PORT
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
});
http.listen(port, '127.0.0.1', () =>
  console.log(`socket.io peer listening on http://127.0.0.1:${port}/socket.io/`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
