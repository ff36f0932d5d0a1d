#!/usr/bin/env node
// A gos.v1 viewer on npm `ws` (an implementation independent of gos's
// Python tests), for tests/ws_deflate.py: connects with permessage-deflate
// offered the way `ws` offers it by default (or with the options given),
// reads hello and the snapshot, sends a ping padded to 20 KB (compressed by
// `ws`) and waits for its pong. Prints one JSON line: the negotiated
// extensions, the snapshot's seq, length and sha256, the pong's t.
//
// usage: node ws_deflate_client.js URL [PERMESSAGE_DEFLATE_JSON]
//   PERMESSAGE_DEFLATE_JSON: `ws`'s perMessageDeflate option (default true),
//   e.g. '{"serverMaxWindowBits":10}' or 'false'.
'use strict';
const crypto = require('crypto');
const WebSocket = require('ws');

const url = process.argv[2];
const pmd = process.argv[3] ? JSON.parse(process.argv[3]) : true;
const out = { extensions: null, hello: null, snapshot_seq: null, snapshot_len: 0,
              snapshot_sha256: null, pong_t: null, error: null };
const ws = new WebSocket(url, 'gos.v1', { perMessageDeflate: pmd, maxPayload: 0 });
const timer = setTimeout(() => { out.error = 'timeout'; done(); }, 20000);

function done() {
  clearTimeout(timer);
  process.stdout.write(JSON.stringify(out) + '\n');
  ws.terminate();
  process.exit(out.error ? 1 : 0);
}

ws.on('open', () => { out.extensions = ws.extensions; });
ws.on('message', (data, isBinary) => {
  const text = data.toString('utf8');
  const m = JSON.parse(text);
  if (isBinary) { out.error = 'binary message'; done(); return; }
  if (m.type === 'hello') {
    out.hello = m.protocol;
  } else if (m.type === 'snapshot' && out.snapshot_seq === null) {
    out.snapshot_seq = m.seq;
    out.snapshot_len = Buffer.byteLength(text);
    out.snapshot_sha256 = crypto.createHash('sha256').update(text).digest('hex');
    ws.send(JSON.stringify({ type: 'ping', t: 77, pad: 'p'.repeat(20000) }));
  } else if (m.type === 'pong') {
    out.pong_t = m.t;
    done();
  }
});
ws.on('error', e => { out.error = String(e); done(); });
ws.on('close', (code, reason) => {
  if (out.pong_t === null) { out.error = `closed ${code} ${reason}`; done(); }
});
