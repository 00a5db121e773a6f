// Reference peer: Node `ws` broadcast, as in the ws README ("broadcast to all other
// clients"). Every text message a client sends is sent to every other open client.
// Usage: node bench/peers/ws_server.mjs PORT
import { WebSocketServer, WebSocket } from 'ws';

const port = Number(process.argv[2] ?? 8002);
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });

wss.on('connection', (ws) => {
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    wss.clients.forEach((client) => {
      if (client !== ws && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
});
wss.on('listening', () => console.log(`ws peer listening on ws://127.0.0.1:${port}/`));
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(0));
