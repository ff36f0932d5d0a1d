// gos.v2 binary messages (docs/protocol-v2.md), decoded with typed-array
// views: no JSON on this path. Loaded before viewer.js (window.gosV2) and
// by node for tests/browser/v2_decode.test.js (module.exports).
//
// A message is a 112-byte little-endian header, then columns: every field
// of a section is its own array (n elements), each array starting at a
// multiple of 8 bytes, zero padding after the one before it. Sections in
// order: tokens, removed, streams, tiles, alts, then str_bytes of UTF-8.
'use strict';

(function (root) {
  const HEADER = 112;
  const KIND = { SNAPSHOT: 1, TICK: 2, TILES: 3, CELL: 4, REGION: 5 };
  // Geometry ("Geometry" in the doc): level k tiles are TILE0·2^k world
  // units; detail comes per CELL (= the tiles of level 3).
  const TILE0 = 128, CELL = 1024, LEVELS = 21;

  const LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
  let utf8 = null;   // TextDecoder, made on first use

  function tileSize(level) { return TILE0 * Math.pow(2, level); }
  // A tile's key in a Map: a number (level < 32, tx and ty 24-bit: 53 bits
  // in all), a string beyond that range.
  function tileKey(level, tx, ty) {
    if (level < 32 && tx >= -8388608 && tx < 8388608 && ty >= -8388608 && ty < 8388608)
      return (level * 16777216 + (tx + 8388608)) * 16777216 + (ty + 8388608);
    return level + ':' + tx + ':' + ty;
  }
  function rectHas(r, x, y) { return !!r && x >= r.x0 && x <= r.x1 && y >= r.y0 && y <= r.y1; }

  function fail(what) { throw new Error('gos.v2: ' + what); }

  // decode(ArrayBuffer | typed array) -> the message as plain objects:
  // {kind, version, flags, seq, since, liveTokens, bounds ([x0,y0,x1,y1] or
  // null), overviewLevel, viewLevel, cellRect, tileRect ({x0,y0,x1,y1} or
  // null when empty), level, tokens: [...], removed: Uint32Array,
  // streams: [...], tiles: {n, level, tx, ty, count, confidence} (typed
  // arrays), bytes}. Throws on a malformed message.
  function decode(data) {
    let buf, base = 0, len;
    if (data instanceof ArrayBuffer) { buf = data; len = buf.byteLength; }
    else if (ArrayBuffer.isView(data)) {
      if (data.byteOffset % 8) {   // views must be aligned: copy
        const c = new Uint8Array(data.byteLength);
        c.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
        buf = c.buffer;
      } else { buf = data.buffer; base = data.byteOffset; }
      len = data.byteLength;
    } else fail('not binary');
    if (len < HEADER) fail(`message of ${len} bytes is shorter than the ${HEADER}-byte header`);
    const dv = new DataView(buf, base, len);
    const u32 = o => dv.getUint32(o, true), i32 = o => dv.getInt32(o, true);
    const u64 = o => dv.getUint32(o, true) + dv.getUint32(o + 4, true) * 4294967296;
    const m = {
      kind: dv.getUint8(0), version: dv.getUint8(1), flags: dv.getUint16(2, true),
      seq: u64(8), since: u64(16), liveTokens: u32(44),
      bounds: null, overviewLevel: i32(64), viewLevel: i32(68),
      cellRect: null, tileRect: null, level: u32(104), newest: null,
      tokens: [], removed: null, streams: [], tiles: null, bytes: len,
    };
    if (m.version !== 2) fail(`version ${m.version}, not 2`);
    if (m.kind < 1 || m.kind > 5) fail(`unknown kind ${m.kind}`);
    const nTok = u32(4), nRem = u32(24), nStr = u32(28), nTile = u32(32), nAlt = u32(36),
      strBytes = u32(40);
    const b = [0, 1, 2, 3].map(i => dv.getFloat32(48 + 4 * i, true));
    if (!b.some(Number.isNaN)) m.bounds = b;
    const rect = o => {
      const r = { x0: i32(o), y0: i32(o + 4), x1: i32(o + 8), y1: i32(o + 12) };
      return r.x1 < r.x0 || r.y1 < r.y0 ? null : r;
    };
    m.cellRect = rect(72);
    m.tileRect = rect(88);
    if (m.kind === 2) {   // a tick: where its newest token is (NaN: none)
      m.level = 0;
      const nx = dv.getFloat32(104, true), ny = dv.getFloat32(108, true);
      if (!Number.isNaN(nx) && !Number.isNaN(ny)) m.newest = { x: nx, y: ny };
    }

    // Columns: each a view (or, on a big-endian machine, a copy).
    let off = HEADER;
    function col(T, n) {
      const size = T.BYTES_PER_ELEMENT, bytes = n * size;
      if (off + bytes > len) fail(`truncated: a column needs ${off + bytes} bytes, the message has ${len}`);
      let a;
      if (LE) a = new T(buf, base + off, n);
      else {
        a = new T(n);
        const get = { 1: 'getUint8', 4: T === Float32Array ? 'getFloat32' : T === Int32Array ? 'getInt32' : 'getUint32',
          8: 'getFloat64' }[size];
        for (let i = 0; i < n; i++) a[i] = dv[get](off + i * size, true);
      }
      off += (bytes + 7) & ~7;
      return a;
    }
    const t = {
      ts: col(Float64Array, nTok), slot: col(Uint32Array, nTok), stream: col(Uint32Array, nTok),
      x: col(Float32Array, nTok), y: col(Float32Array, nTok), w: col(Float32Array, nTok),
      conf: col(Float32Array, nTok), lp: col(Float32Array, nTok),
      idOff: col(Uint32Array, nTok), idLen: col(Uint32Array, nTok),
      textOff: col(Uint32Array, nTok), textLen: col(Uint32Array, nTok),
      altFirst: col(Uint32Array, nTok), altCount: col(Uint32Array, nTok),
    };
    // flags bit 1: the tokens' detail columns (and the streams' groups)
    const det = m.flags & 2 ? {
      index: col(Uint32Array, nTok), rank: col(Uint32Array, nTok), gap: col(Float32Array, nTok),
      ent: col(Float32Array, nTok), agree: col(Float32Array, nTok), tflags: col(Uint32Array, nTok),
    } : null;
    m.removed = col(Uint32Array, nRem);
    const s = {
      proc: col(Float64Array, nStr), total: col(Float64Array, nStr), elapsed: col(Float64Array, nStr),
      tokens: col(Float64Array, nStr), index: col(Uint32Array, nStr),
      nameOff: col(Uint32Array, nStr), nameLen: col(Uint32Array, nStr),
      stateOff: col(Uint32Array, nStr), stateLen: col(Uint32Array, nStr),
    };
    // flags bit 0: the streams' analytics columns (docs/protocol-v2.md)
    const an = m.flags & 1 ? {
      ttft: col(Float64Array, nStr), tps: col(Float64Array, nStr), meanC: col(Float64Array, nStr),
      minC: col(Float64Array, nStr), ppl: col(Float64Array, nStr), ent: col(Float64Array, nStr),
      finOff: col(Uint32Array, nStr), finLen: col(Uint32Array, nStr),
      msgOff: col(Uint32Array, nStr), msgLen: col(Uint32Array, nStr),
      modelOff: col(Uint32Array, nStr), modelLen: col(Uint32Array, nStr),
      hist: col(Uint32Array, nStr * 10),
    } : null;
    const grp = m.flags & 2 ? { group: col(Uint32Array, nStr), divergeAt: col(Int32Array, nStr) } : null;
    m.tiles = { n: nTile, level: col(Uint32Array, nTile), tx: col(Int32Array, nTile), ty: col(Int32Array, nTile),
      count: col(Uint32Array, nTile), confidence: col(Float32Array, nTile) };
    const a = { off: col(Uint32Array, nAlt), len: col(Uint32Array, nAlt), lp: col(Float32Array, nAlt) };
    if (off + strBytes > len) fail(`truncated: strings need ${off + strBytes} bytes, the message has ${len}`);
    const strs = new Uint8Array(buf, base + off, strBytes);

    // Strings: when the whole table is ASCII (one decode says so: as many
    // characters as bytes), slices of it; else each string on its own.
    let all = null, ascii = false;
    function str(o, n) {
      if (!n) return '';
      if (o + n > strBytes || o + n < o) fail(`a string (${o}+${n}) lies outside the ${strBytes}-byte table`);
      if (all === null) {
        if (!utf8) utf8 = new TextDecoder('utf-8');
        all = utf8.decode(strs);
        ascii = all.length === strBytes;
      }
      return ascii ? all.substr(o, n) : utf8.decode(strs.subarray(o, o + n));
    }
    const alts = new Array(nAlt);
    for (let i = 0; i < nAlt; i++) alts[i] = { token: str(a.off[i], a.len[i]), logprob: a.lp[i] };

    for (let i = 0; i < nTok; i++) {
      const c = t.conf[i], lp = t.lp[i], af = t.altFirst[i], ac = t.altCount[i];
      if (ac && (af + ac > nAlt || af + ac < af)) fail(`token ${i}'s alternatives (${af}+${ac}) are not among the ${nAlt}`);
      m.tokens.push({
        slot: t.slot[i], stream: t.stream[i], x: t.x[i], y: t.y[i], w: t.w[i],
        confidence: Number.isNaN(c) ? null : c, logprob: Number.isNaN(lp) ? null : lp,
        timestamp: t.ts[i], id: str(t.idOff[i], t.idLen[i]), text: str(t.textOff[i], t.textLen[i]),
        alts: ac ? alts.slice(af, af + ac) : null,
      });
      if (det) {   // as gos.v1 names them: absent (undefined) when unknown
        const tk = m.tokens[i], r = det.rank[i], g = det.gap[i], e = det.ent[i], ag = det.agree[i];
        tk.index = det.index[i];
        if (r) tk.rank = r === 0xFFFFFFFF ? -1 : r;
        if (!Number.isNaN(g)) tk.gap_ms = g;
        if (!Number.isNaN(e)) tk.entropy = e;
        if (!Number.isNaN(ag)) tk.agree = ag;
        if (det.tflags[i] & 1) tk.diverges = true;
      }
    }
    for (let i = 0; i < nStr; i++) {
      const el = s.elapsed[i];
      m.streams.push({
        index: s.index[i], stream: str(s.nameOff[i], s.nameLen[i]), state: str(s.stateOff[i], s.stateLen[i]),
        tokens_processed: s.proc[i], total_tokens: s.total[i], elapsed_ms: Number.isNaN(el) ? null : el,
        tokens: s.tokens[i],
      });
      if (an) {
        const num = v => Number.isNaN(v) ? null : v, st = m.streams[m.streams.length - 1];
        st.ttft_ms = num(an.ttft[i]); st.tokens_per_s = num(an.tps[i]);
        st.mean_confidence = num(an.meanC[i]); st.min_confidence = num(an.minC[i]);
        st.perplexity = num(an.ppl[i]); st.mean_entropy = num(an.ent[i]);
        st.finish_reason = str(an.finOff[i], an.finLen[i]); st.message = str(an.msgOff[i], an.msgLen[i]);
        st.model = str(an.modelOff[i], an.modelLen[i]);
        st.confidence_hist = Array.from(an.hist.subarray(i * 10, i * 10 + 10));
      }
      if (grp) {
        const st = m.streams[m.streams.length - 1];
        st.group_index = grp.group[i]; st.diverge_at = grp.divergeAt[i];
      }
    }
    return m;
  }

  const api = { decode, tileSize, tileKey, rectHas, KIND, HEADER, TILE0, CELL, LEVELS };
  if (typeof module === 'object' && module.exports) module.exports = api;
  else root.gosV2 = Object.freeze(api);
})(typeof self !== 'undefined' ? self : this);
