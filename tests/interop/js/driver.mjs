// What the interop drivers (client.mjs, client_wire.mjs, features.mjs) share: JSON
// events on stdout, and JSON commands on stdin answered by {"event": "result", ...}.

import readline from 'node:readline';

export function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
}

export function errorFields(error) {
  return { code: error?.code ?? null, message: error?.message ?? String(error) };
}

// Answer each stdin command with run(command)'s fields; end of stdin disconnects and exits.
export function serveCommands(centrifuge, run) {
  const input = readline.createInterface({ input: process.stdin });
  input.on('line', (line) => {
    if (!line.trim()) return;
    const command = JSON.parse(line);
    run(command).then(
      (fields) => emit('result', { id: command.id, ok: true, ...fields }),
      (error) => emit('result', { id: command.id, ok: false, ...errorFields(error) }),
    );
  });
  input.on('close', () => {
    centrifuge.disconnect();
    process.exit(0);
  });
  process.on('unhandledRejection', (reason) => emit('fatal', { message: String(reason?.stack ?? reason) }));
}
