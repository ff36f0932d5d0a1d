#!/usr/bin/env node
// A stand-in gos server for the web viewer's tests, written from
// docs/protocol.md and docs/protocol-v2.md: it serves assets/web and
// speaks gos.v1 (JSON, the whole map) or gos.v2 (binary, viewport-scoped:
// snapshot with the overview tiles, region answers to viewports, ticks
// with tiles and cell messages), as the client asks. It is no reference
// for the real server (compositor/web, net/ws): it lets the viewer's gos.v2
// side run in a browser before and beside it, with maps of any size.
//
// As a module: const s = await require('./mock_server').start({port, v1Only});
//   s.add([{id, text, x, y, w, confidence, stream, timestamp}]), s.remove([id]),
//   s.tick() (sends what changed), s.resync(), s.timeline(), s.port, s.viewers(), s.close(),
//   s.searches() (the search requests received; each answered, see searchAnswer).
//   Tokens may carry index, rank (-1 beyond), gap_ms, entropy, agree, diverges.
// From the command line (for latejoin.js / frametime.js by hand):
//   node mock_server.js [--port N] [--tokens N] [--v1-only]
//   prints "mock gos at http://127.0.0.1:PORT/ (N tokens)".
'use strict';

const fs = require('fs');
const http = require('http');
const path = require('path');
const { WebSocketServer } = require('ws');
const { encode, KIND } = require('./v2_encode.js');

const WEB = path.join(__dirname, '../../assets/web');
const TILE0 = 128, CELL = 1024, LEVELS = 21, OVERVIEW = 64, TILE_PX = 8, DETAIL_MAX = 131072, PAGE = 16384;
const MIME = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css' };

const tileSize = k => TILE0 * 2 ** k;
const tileOf = (v, k) => Math.floor(v / tileSize(k));
const f32 = Math.fround;
const rectHas = (r, x, y) => !!r && x >= r.x0 && x <= r.x1 && y >= r.y0 && y <= r.y1;

function start(opts = {}) {
  // ---- the map: tokens by slot, per-cell slots, per-level tile sums.
  const bySlot = new Map(), byId = new Map(), freeSlots = [];
  let nextSlot = 0, seq = 0;
  const streamIdx = new Map([['', 0]]), streamList = [{ stream: '', tokens: 0 }];
  let bounds = null;                                  // centres, f32, only grows
  const cells = new Map();                            // "cx,cy" -> Set of slots
  const levels = [];                                  // k -> Map "tx,ty" -> {count, sum, n}
  const changed = { slots: new Set(), removed: new Set(), tiles: new Map(), streams: new Set() };

  function tileAdd(t, sign) {
    for (let k = 0; k < LEVELS; k++) {
      const L = levels[k];
      if (!L) continue;
      const key = tileOf(t.x, k) + ',' + tileOf(t.y, k);
      let e = L.get(key);
      if (!e) L.set(key, e = { count: 0, sum: 0, n: 0 });
      e.count += sign;
      if (t.confidence !== null) { e.sum += sign * t.confidence; e.n += sign; }
      if (!e.count) L.delete(key);
      let set = changed.tiles.get(k);
      if (!set) changed.tiles.set(k, set = new Set());
      set.add(key);
    }
  }
  function level(k) {       // built on first use, kept up to date after
    if (!levels[k]) {
      const L = levels[k] = new Map();
      for (const t of bySlot.values()) {
        const key = tileOf(t.x, k) + ',' + tileOf(t.y, k);
        let e = L.get(key);
        if (!e) L.set(key, e = { count: 0, sum: 0, n: 0 });
        e.count++;
        if (t.confidence !== null) { e.sum += t.confidence; e.n++; }
      }
    }
    return levels[k];
  }
  const cellKey = t => Math.floor(t.x / CELL) + ',' + Math.floor(t.y / CELL);

  function add(list) {
    for (const m of list) {
      const x = f32(m.x), y = f32(m.y);
      let t = byId.get(m.id), moved = false;
      if (t) {
        const before = cellKey(t);
        tileAdd(t, -1);
        cells.get(before).delete(t.slot);
        Object.assign(t, { x, y });
        moved = cellKey(t) !== before;
      } else {
        const slot = freeSlots.length ? freeSlots.pop() : nextSlot++;
        t = { slot, id: m.id, x, y };
        bySlot.set(slot, t);
        byId.set(m.id, t);
      }
      if (!streamIdx.has(m.stream || '')) { streamIdx.set(m.stream, streamList.length); streamList.push({ stream: m.stream, tokens: 0 }); }
      t.stream = streamIdx.get(m.stream || '');
      streamList[t.stream].tokens++;
      changed.streams.add(t.stream);
      t.text = m.text || ''; t.w = m.w || t.text.length * 9;
      t.confidence = typeof m.confidence === 'number' ? m.confidence : null;
      t.timestamp = m.timestamp || 0; t.logprob = m.logprob === undefined ? null : m.logprob; t.alts = m.alts || [];
      // issue 13's fields, as given (undefined: unknown)
      for (const k of ['index', 'rank', 'gap_ms', 'entropy', 'agree', 'diverges']) t[k] = m[k];
      if (t.index === undefined) t.index = streamList[t.stream].tokens - 1;
      const ck = cellKey(t);
      if (!cells.has(ck)) cells.set(ck, new Set());
      cells.get(ck).add(t.slot);
      tileAdd(t, 1);
      if (moved) changed.removed.add(t.slot);
      changed.slots.add(t.slot);
      if (!bounds) bounds = [x, y, x, y];
      else bounds = [Math.min(bounds[0], x), Math.min(bounds[1], y), Math.max(bounds[2], x), Math.max(bounds[3], y)];
      seq++;
    }
  }
  function remove(ids) {
    for (const id of ids) {
      const t = byId.get(id);
      if (!t) continue;
      tileAdd(t, -1);
      cells.get(cellKey(t)).delete(t.slot);
      bySlot.delete(t.slot); byId.delete(id);
      freeSlots.push(t.slot);
      changed.removed.add(t.slot);
      changed.slots.delete(t.slot);
      v1Removed.add(id);
      seq++;
    }
  }
  const v1Removed = new Set();

  function overviewLevel() {
    if (!bounds) return 0;
    for (let k = 0; k < LEVELS; k++)
      if (tileOf(bounds[2], k) - tileOf(bounds[0], k) < OVERVIEW && tileOf(bounds[3], k) - tileOf(bounds[1], k) < OVERVIEW) return k;
    return LEVELS - 1;
  }
  // The viewport grown by half its size each side (not clipped to the map).
  function grownRect(vp, k, size) {
    const x0 = vp.x - vp.w / 2, x1 = vp.x + vp.w * 1.5, y0 = vp.y - vp.h / 2, y1 = vp.y + vp.h * 1.5;
    const s = size || tileSize(k);
    return { x0: Math.floor(x0 / s), y0: Math.floor(y0 / s), x1: Math.floor(x1 / s), y1: Math.floor(y1 / s) };
  }
  function viewLevel(zoom) {
    for (let k = 0; k < LEVELS; k++) if (tileSize(k) * zoom >= TILE_PX) return k;
    return LEVELS - 1;
  }
  function cellRect(vp) {
    if (!(vp.zoom * 22 >= 4)) return null;
    const r = grownRect(vp, 3, CELL);
    if (!r) return null;
    let n = 0;
    const L = level(3);
    for (let cx = r.x0; cx <= r.x1; cx++)
      for (let cy = r.y0; cy <= r.y1; cy++) { const e = L.get(cx + ',' + cy); if (e) n += e.count; }
    return n > DETAIL_MAX ? null : r;
  }

  const tokenRec = t => ({ slot: t.slot, stream: t.stream, x: t.x, y: t.y, w: t.w, confidence: t.confidence,
    logprob: t.logprob, timestamp: t.timestamp, id: t.id, text: t.text, alts: t.alts, index: t.index, rank: t.rank,
    gap_ms: t.gap_ms, entropy: t.entropy, agree: t.agree, diverges: t.diverges });
  const tileRec = (k, key) => {
    const [tx, ty] = key.split(',').map(Number), e = level(k).get(key);
    return { level: k, tx, ty, count: e ? e.count : 0, confidence: e && e.n ? e.sum / e.n : null };
  };
  const streamRecs = idx => idx.map(i => ({ index: i, stream: streamList[i].stream, state: '', tokens_processed: 0,
    total_tokens: -1, elapsed_ms: null, tokens: streamList[i].tokens, group_index: i, diverge_at: -1 }));
  const head = () => ({ seq, liveTokens: bySlot.size, bounds, overviewLevel: overviewLevel() });
  const v1Token = t => {
    const o = { id: t.id, text: t.text, x: t.x, y: t.y, w: t.w, confidence: t.confidence,
      stream: streamList[t.stream].stream, timestamp: t.timestamp, index: t.index };
    for (const k of ['rank', 'gap_ms', 'entropy', 'agree']) if (typeof t[k] === 'number') o[k] = t[k];
    if (t.diverges) o.diverges = true;
    return o;
  };

  // search (docs/protocol.md): each stream's text (its tokens in order,
  // joined), lower-cased, every occurrence of q; a match's ids are the
  // tokens it covers, x and y its first token's centre. opts.searchAnswer
  // (request) -> message replaces the answer (errors, for tests).
  const searches = [];
  function searchAnswer(m) {
    if (opts.searchAnswer) { const a = opts.searchAnswer(m); if (a) return a; }
    if (typeof m.q !== 'string' || !m.q)
      return { type: 'error', code: 'bad_request', message: 'search needs a non-empty "q"' };
    const q = m.q.toLowerCase(), limit = m.limit || 1000, matches = [];
    let count = 0;
    const per = new Map();
    for (const t of [...bySlot.values()].sort((a, b) => a.index - b.index)) {
      const name = streamList[t.stream].stream;
      if (Array.isArray(m.streams) && !m.streams.includes(name)) continue;
      if ((typeof m.min_p === 'number' || typeof m.max_p === 'number') &&
        (t.confidence === null || t.confidence < (m.min_p || 0) || t.confidence > (m.max_p === undefined ? 1 : m.max_p))) continue;
      if (!per.has(name)) per.set(name, []);
      per.get(name).push(t);
    }
    for (const [name, list] of per) {
      let text = '';
      const starts = list.map(t => { const at = text.length; text += t.text.toLowerCase(); return at; });
      for (let i = text.indexOf(q); i >= 0; i = text.indexOf(q, i + 1)) {
        count++;
        if (matches.length >= limit) continue;
        const ids = list.filter((t, k) => starts[k] < i + q.length && starts[k] + t.text.length > i);
        matches.push({ stream: name, ids: ids.map(t => t.id), x: ids[0].x, y: ids[0].y });
      }
    }
    return { type: 'search_result', q: m.q, count, matches, truncated: count > matches.length };
  }

  // ---- viewers
  const viewers = new Set();
  const server = http.createServer((req, res) => {
    const u = new URL(req.url, 'http://x');
    const file = u.pathname === '/' ? 'index.html' : u.pathname.slice(1);
    if (!/^[\w.-]+$/.test(file) || !fs.existsSync(path.join(WEB, file))) { res.writeHead(404); res.end(); return; }
    res.writeHead(200, { 'content-type': MIME[path.extname(file)] || 'application/octet-stream' });
    res.end(fs.readFileSync(path.join(WEB, file)));
  });
  const wss = new WebSocketServer({
    server, path: '/ws', perMessageDeflate: false,
    handleProtocols: ps => (!opts.v1Only && ps.has('gos.v2') ? 'gos.v2' : ps.has('gos.v1') ? 'gos.v1' : false),
  });
  wss.on('connection', ws => {
    const v = { ws, v2: ws.protocol === 'gos.v2', overview: -1, viewLevel: -1, tileRect: null, cellRect: null,
      sent: 0, regions: 0 };
    viewers.add(v);
    ws.on('close', () => viewers.delete(v));
    const send = d => { v.sent += d.length; ws.send(d); };
    v.send = send;
    send(JSON.stringify({ type: 'hello', protocol: v.v2 ? 'gos.v2' : 'gos.v1', protocol_version: v.v2 ? 2 : 1,
      server: 'mock' }));
    snapshot(v, 'live');
    ws.on('message', (data, isBinary) => {
      let m;
      try { m = JSON.parse(String(data)); } catch (e) { return; }
      if (m.type === 'ping') send(JSON.stringify({ type: 'pong', t: m.t }));
      if (m.type === 'search') { searches.push(m); send(JSON.stringify(searchAnswer(m))); }
      if (m.type === 'viewport' && v.v2 && !v.past && [m.x, m.y, m.w, m.h, m.zoom].every(Number.isFinite)) region(v, m);
      // Time travel, roughly: "the past" is the map now, as gos.v1 JSON on
      // either protocol, and no deltas until live.
      if (m.type === 'seek') { v.past = true; snapshot(v, 'seek'); }
      if (m.type === 'live') { v.past = false; snapshot(v, 'live'); }
    });
  });

  // A snapshot: gos.v2 binary (live on gos.v2), else gos.v1 JSON.
  function snapshot(v, mode) {
    if (v.v2 && mode === 'live') {
      const k = overviewLevel();
      v.overview = k; v.viewLevel = -1; v.tileRect = v.cellRect = null;
      v.send(encode(Object.assign({ kind: KIND.SNAPSHOT, flags: 3, streams: streamRecs(streamList.map((s, i) => i)),
        tiles: [...level(k).keys()].map(key => tileRec(k, key)) }, head(), { seq: tickSeq })));
    } else {
      v.send(JSON.stringify({ type: 'snapshot', seq: tickSeq, tokens: [...bySlot.values()].map(v1Token),
        streams: streamList.map(s => ({ stream: s.stream, state: '', tokens_processed: 0, total_tokens: -1,
          elapsed_ms: null, tokens: s.tokens, group: s.stream, diverge_at: -1 })), live_tokens: bySlot.size, mode,
        time: mode === 'live' ? undefined : 1 }));
    }
  }

  // The answer to a viewport: what the viewer did not hold yet, paged.
  function region(v, vp) {
    v.regions++;
    const ov = overviewLevel(), vl = viewLevel(vp.zoom), tr = grownRect(vp, vl), cr = cellRect(vp);
    const tiles = [];
    if (ov !== v.overview) for (const key of level(ov).keys()) tiles.push(tileRec(ov, key));
    if (tr && vl !== ov)
      for (const [key] of level(vl)) {
        const [tx, ty] = key.split(',').map(Number);
        if (rectHas(tr, tx, ty) && (vl !== v.viewLevel || !rectHas(v.tileRect, tx, ty))) tiles.push(tileRec(vl, key));
      }
    const toks = [];
    if (cr)
      for (let cx = cr.x0; cx <= cr.x1; cx++)
        for (let cy = cr.y0; cy <= cr.y1; cy++) {
          if (rectHas(v.cellRect, cx, cy)) continue;
          const s = cells.get(cx + ',' + cy);
          if (s) for (const slot of s) toks.push(tokenRec(bySlot.get(slot)));
        }
    v.overview = ov; v.viewLevel = vl; v.tileRect = tr; v.cellRect = cr;
    const base = Object.assign({ kind: KIND.REGION, flags: 3, viewLevel: vl, tileRect: tr, cellRect: cr }, head());
    for (let i = 0; i === 0 || i < toks.length; i += PAGE)
      v.send(encode(Object.assign({}, base, { tokens: toks.slice(i, i + PAGE), tiles: i ? [] : tiles })));
  }

  // A tick: what changed since the last one, to every viewer.
  function tick() {
    if (!changed.slots.size && !changed.removed.size && !changed.tiles.size) return;
    const since = tickSeq;
    tickSeq = seq;
    const streams = streamRecs([...changed.streams]);
    // Cell messages: one per cell, or, when more than 16 cells changed, one
    // per block of 8x8 cells (the viewer keeps the tokens in its rect).
    let byCell = new Map();
    const group = (span) => {
      const m = new Map();
      for (const slot of changed.slots) {
        const t = bySlot.get(slot);
        const bx = Math.floor(Math.floor(t.x / CELL) / span), by = Math.floor(Math.floor(t.y / CELL) / span);
        const k = bx + ',' + by;
        if (!m.has(k)) m.set(k, { rect: { x0: bx * span, y0: by * span, x1: bx * span + span - 1, y1: by * span + span - 1 },
          toks: [] });
        m.get(k).toks.push(tokenRec(t));
      }
      return m;
    };
    byCell = group(1);
    if (byCell.size > 16) byCell = group(8);
    const v1 = JSON.stringify({ type: 'token_visualization', since, seq, live_tokens: bySlot.size,
      tokens: [...changed.slots].map(s => v1Token(bySlot.get(s))).concat([...v1Removed].map(id => ({ id, removed: true }))) });
    for (const v of viewers) {
      if (v.past) continue;
      if (!v.v2) { v.send(v1); continue; }
      v.send(encode(Object.assign({ kind: KIND.TICK, flags: 3, since, removed: [...changed.removed], streams }, head())));
      for (const k of new Set([v.overview, overviewLevel(), v.viewLevel])) {
        const keys = changed.tiles.get(k);
        if (k < 0 || !keys) continue;
        const list = [...keys].map(key => tileRec(k, key)).filter(t => k === v.overview || k === overviewLevel() ||
          rectHas(v.tileRect, t.tx, t.ty));
        if (list.length) v.send(encode({ kind: KIND.TILES, seq, level: k, tiles: list }));
      }
      const r = v.cellRect;
      for (const c of byCell.values())
        if (r && c.rect.x0 <= r.x1 && c.rect.x1 >= r.x0 && c.rect.y0 <= r.y1 && c.rect.y1 >= r.y0)
          v.send(encode({ kind: KIND.CELL, flags: 3, seq, cellRect: c.rect, tokens: c.toks }));
    }
    changed.slots.clear(); changed.removed.clear(); changed.tiles.clear(); changed.streams.clear(); v1Removed.clear();
  }
  let tickSeq = 0;

  return new Promise(resolve => {
    server.listen(opts.port || 0, '127.0.0.1', () => {
      tickSeq = seq;
      changed.slots.clear(); changed.removed.clear(); changed.tiles.clear(); changed.streams.clear();
      resolve({
        port: server.address().port, add, remove, tick,
        viewers: () => [...viewers].map(v => ({ v2: v.v2, sent: v.sent, regions: v.regions, overview: v.overview,
          viewLevel: v.viewLevel, cellRect: v.cellRect, tileRect: v.tileRect })),
        tokens: () => bySlot.size,
        searches: () => searches.slice(),
        // Every viewer: a timeline (the bar appears; seeks get the map now).
        timeline: () => { for (const v of viewers) v.send(JSON.stringify({ type: 'timeline', first_seq: 0,
          last_seq: tickSeq, first_time: 1, last_time: 2, points: [] })); },
        // Every viewer: resync, then a fresh snapshot (it fell behind).
        resync: () => { for (const v of viewers) { v.send('{"type":"resync"}'); snapshot(v, 'live'); } },
        close: () => new Promise(r => { for (const v of viewers) v.ws.terminate(); wss.close(); server.close(() => r()); }),
      });
    });
  });
}

// A synthetic map of n tokens: lines of text in a square block, as a
// flow layout would put them.
function synthetic(n) {
  const words = ['the', 'model', 'token', 'of', 'a', 'generation', 'with', 'confidence', 'and', 'map', 'is', 'gpu'];
  const width = Math.sqrt(n * 6 * 9 * 22);
  const out = [];
  let x = 0, y = 0;
  for (let i = 0; i < n; i++) {
    const text = words[(i * 7 + (i >> 3)) % words.length], w = text.length * 9;
    if (x + w > width) { x = 0; y += 22; }
    out.push({ id: 's' + i, text, x: x + w / 2, y, w, confidence: ((i * 37) % 101) / 100, stream: 'gen-' + (i % 4),
      timestamp: i });
    x += w + 9;
  }
  return out;
}

if (require.main === module) {
  const a = process.argv.slice(2);
  const arg = (n, d) => { const i = a.indexOf(n); return i >= 0 ? a[i + 1] : d; };
  start({ port: Number(arg('--port', '0')), v1Only: a.includes('--v1-only') }).then(s => {
    const n = Number(arg('--tokens', '0'));
    if (n) s.add(synthetic(n));
    s.tick();
    setInterval(s.tick, 33);
    console.log(`mock gos at http://127.0.0.1:${s.port}/ (${s.tokens()} tokens)`);
  });
}

module.exports = { start, synthetic };
