// Reference peer: Node `ws`. Usage: node bench/peers/ws_server.mjs PORT [MODE]
//
// MODE (default broadcast):
//   broadcast  as in the ws README ("broadcast to all other clients"): every text message a
//              client sends is sent to every other open client (FANOUT, LATENCY)
//   echo       every message is sent back to its sender (RPC)
//   rooms      a map room -> sockets (MANY CHANNELS): "join <room>" adds the sender to the
//              room and is answered "joined <room>"; "pub <room> <payload>" sends <payload>
//              to every open member of the room
import { WebSocketServer, WebSocket } from 'ws';

const port = Number(process.argv[2] ?? 8002);
const mode = process.argv[3] ?? 'broadcast';
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
const rooms = new Map(); // room -> Set<WebSocket>

function roomsMessage(ws, data) {
  // data is a Buffer; only the room name is decoded, the payload is sent as a slice.
  const space = data.indexOf(32, 4);
  if (data[0] === 0x70 /* p */) { // pub <room> <payload>
    const members = rooms.get(data.toString('latin1', 4, space));
    if (!members) return;
    const payload = data.subarray(space + 1);
    for (const client of members) {
      if (client.readyState === WebSocket.OPEN) client.send(payload, { binary: false });
    }
  } else { // join <room>
    const room = data.toString('latin1', 5);
    let members = rooms.get(room);
    if (!members) rooms.set(room, (members = new Set()));
    members.add(ws);
    (ws.rooms ??= []).push(room);
    ws.send(`joined ${room}`);
  }
}

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (mode === 'echo') {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  } else if (mode === 'rooms') {
    ws.on('message', (data) => roomsMessage(ws, data));
    ws.on('close', () => {
      for (const room of ws.rooms ?? []) {
        const members = rooms.get(room);
        members?.delete(ws);
        if (members?.size === 0) rooms.delete(room);
      }
    });
  } else {
    ws.on('message', (data, isBinary) => {
      wss.clients.forEach((client) => {
        if (client !== ws && client.readyState === WebSocket.OPEN) {
          client.send(data, { binary: isBinary });
        }
      });
    });
  }
});
wss.on('listening', () => console.log(`ws peer (${mode}) listening on ws://127.0.0.1:${port}/`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
