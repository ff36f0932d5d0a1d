#!/usr/bin/env node
// The peer of `gos-bench fanout`: the minimal Node broadcast server a user
// would otherwise write with npm `ws`. It reads the same JSON lines from a
// Unix socket, batches them per tick like gos does, serializes each batch
// once and sends the same bytes to every client. No backpressure: a slow
// client's backlog grows inside ws (that is what the minimal server does).
//
// usage: node fanout_peer.js --socket PATH [--port N] [--tick-ms 33]
'use strict';
const net = require('net');
const fs = require('fs');
const { WebSocketServer } = require('ws');

const args = process.argv.slice(2);
function arg(name, def) { const i = args.indexOf(name); return i >= 0 ? args[i + 1] : def; }
const sockPath = arg('--socket');
const port = Number(arg('--port', '0'));
const tickMs = Number(arg('--tick-ms', '33'));
if (!sockPath) { console.error('fanout_peer: --socket PATH is required'); process.exit(2); }

const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false });
wss.on('connection', ws => ws.send('{"type":"hello","server":"node-ws"}'));

let pending = [], seq = 0;
try { fs.unlinkSync(sockPath); } catch (e) { /* not there */ }
net.createServer(c => {
  let buf = '';
  c.setEncoding('utf8');
  c.on('data', d => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      let ev;
      try { ev = JSON.parse(line); } catch (e) { continue; }
      if (ev.type === 'sync') c.write('{"type":"sync"}\n');
      else pending.push(ev);
    }
  });
  c.on('error', () => {});
}).listen(sockPath);

setInterval(() => {
  if (!pending.length) return;
  seq++;
  const msg = Buffer.from(JSON.stringify({ type: 'token_visualization', seq, n: pending.length, tokens: pending }));
  pending = [];
  for (const c of wss.clients) if (c.readyState === 1) c.send(msg, { binary: false });
}, tickMs);

wss.on('listening', () => console.log('listening ' + wss.address().port));
process.on('SIGTERM', () => process.exit(0));
