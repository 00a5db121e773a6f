// centrifuge-js (unchanged) applying fossil deltas, as an oracle for
// tests/protocol/test_fossil.py: does the SDK reconstruct what wirehub's encoder meant?
//
//   node fossil_oracle.mjs < cases.json
//
// Input: a JSON list of {"source": base64, "delta": base64, "json": bool}. With "json"
// the delta goes through the SDK's JSON codec as the JSON protocol carries it (a string,
// turned back into bytes with a UTF-8 encoder); without, through the Protobuf build's
// codec, as bytes. Output: a JSON list, per case {"target": base64} or {"error": text}.

import { Centrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';

const URL = 'ws://127.0.0.1:1/connection/websocket'; // never connected
const jsonCodec = new Centrifuge(URL, {})._codec;
const protobufCodec = new ProtobufCentrifuge(URL, {})._codec;
const decoder = new TextDecoder('utf-8', { fatal: true });

const bytes = (text) => new Uint8Array(Buffer.from(text, 'base64'));
const base64 = (array) => Buffer.from(array).toString('base64');

let input = '';
for await (const chunk of process.stdin) input += chunk;

const results = JSON.parse(input).map((item) => {
  try {
    const source = bytes(item.source);
    const delta = bytes(item.delta);
    const result = item.json
      ? jsonCodec.applyDeltaIfNeeded({ delta: true, data: decoder.decode(delta) }, source)
      : protobufCodec.applyDeltaIfNeeded({ delta: true, data: delta }, source);
    return { target: base64(result.newPrevValue) };
  } catch (error) {
    return { error: String(error) };
  }
});
process.stdout.write(JSON.stringify(results));
