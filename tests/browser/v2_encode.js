// gos.v2 binary messages written from docs/protocol-v2.md, for tests: the
// decoder's unit test (v2_decode.test.js) and the mock server
// (mock_server.js). Written apart from assets/web/v2.js on purpose (Buffer
// writes, not typed-array views) so that the two check each other.
'use strict';

// msg: {kind, seq, since, liveTokens, bounds: [x0,y0,x1,y1] | null,
//   overviewLevel, viewLevel, cellRect / tileRect: {x0,y0,x1,y1} | null,
//   level, tokens: [{slot, stream, x, y, w, confidence, logprob, timestamp,
//   id, text, alts: [{token, logprob}]}], removed: [slot], streams: [{index,
//   stream, state, tokens_processed, total_tokens, elapsed_ms, tokens}],
//   tiles: [{level, tx, ty, count, confidence}], flags} -> Buffer
// flags (default 0): bit 0 adds the streams' analytics columns (ttft_ms, ...,
// confidence_hist), bit 1 the tokens' detail (index, rank (-1 beyond),
// gap_ms, entropy, agree, diverges) and the streams' group_index, diverge_at.
function encode(msg) {
  const toks = msg.tokens || [], removed = msg.removed || [], streams = msg.streams || [],
    tiles = msg.tiles || [];
  // The string table: every string appended as it comes.
  const strParts = [];
  let strLen = 0;
  function addStr(s) {
    const b = Buffer.from(s == null ? '' : String(s), 'utf8');
    const at = strLen;
    strParts.push(b);
    strLen += b.length;
    return [at, b.length];
  }
  const nan = v => (v === null || v === undefined ? NaN : v);
  const altRows = [];
  const tokRows = toks.map(t => {
    const id = addStr(t.id), text = addStr(t.text);
    const first = altRows.length;
    for (const a of t.alts || []) altRows.push({ s: addStr(a.token), lp: a.logprob });
    return { t, id, text, first, count: (t.alts || []).length };
  });
  const strRows = streams.map(s => ({ s, name: addStr(s.stream), state: addStr(s.state) }));

  // Column writers: one Buffer each, padded to 8 bytes.
  const cols = [];
  function column(size, n, put) {
    const b = Buffer.alloc(Math.ceil(n * size / 8) * 8);
    for (let i = 0; i < n; i++) put(b, i * size, i);
    cols.push(b);
  }
  const f64 = (rows, f) => column(8, rows.length, (b, o, i) => b.writeDoubleLE(f(rows[i]), o));
  const f32 = (rows, f) => column(4, rows.length, (b, o, i) => b.writeFloatLE(f(rows[i]), o));
  const u32 = (rows, f) => column(4, rows.length, (b, o, i) => b.writeUInt32LE(f(rows[i]), o));
  const i32 = (rows, f) => column(4, rows.length, (b, o, i) => b.writeInt32LE(f(rows[i]), o));

  f64(tokRows, r => r.t.timestamp || 0);
  u32(tokRows, r => r.t.slot);
  u32(tokRows, r => r.t.stream || 0);
  f32(tokRows, r => r.t.x);
  f32(tokRows, r => r.t.y);
  f32(tokRows, r => r.t.w);
  f32(tokRows, r => nan(r.t.confidence));
  f32(tokRows, r => nan(r.t.logprob));
  u32(tokRows, r => r.id[0]);
  u32(tokRows, r => r.id[1]);
  u32(tokRows, r => r.text[0]);
  u32(tokRows, r => r.text[1]);
  u32(tokRows, r => r.first);
  u32(tokRows, r => r.count);
  const flags = msg.flags || 0;
  if (flags & 2) {   // the tokens' detail columns: rank -1 is beyond, absent unknown
    u32(tokRows, r => r.t.index || 0);
    u32(tokRows, r => (r.t.rank === -1 ? 0xFFFFFFFF : r.t.rank || 0));
    f32(tokRows, r => nan(r.t.gap_ms));
    f32(tokRows, r => nan(r.t.entropy));
    f32(tokRows, r => nan(r.t.agree));
    u32(tokRows, r => (r.t.diverges ? 1 : 0));
  }
  u32(removed, r => r);
  f64(strRows, r => r.s.tokens_processed || 0);
  f64(strRows, r => (r.s.total_tokens === undefined ? -1 : r.s.total_tokens));
  f64(strRows, r => nan(r.s.elapsed_ms));
  f64(strRows, r => r.s.tokens || 0);
  u32(strRows, r => r.s.index);
  u32(strRows, r => r.name[0]);
  u32(strRows, r => r.name[1]);
  u32(strRows, r => r.state[0]);
  u32(strRows, r => r.state[1]);
  if (flags & 1) {   // the streams' analytics columns
    const an = strRows.map(r => ({ fin: addStr(r.s.finish_reason), msg: addStr(r.s.message),
      model: addStr(r.s.model) }));
    for (const k of ['ttft_ms', 'tokens_per_s', 'mean_confidence', 'min_confidence', 'perplexity',
      'mean_entropy']) f64(strRows, r => nan(r.s[k]));
    for (const k of ['fin', 'msg', 'model'])
      for (const j of [0, 1]) u32(an, a => a[k][j]);
    const hist = [];
    for (const r of strRows) for (let j = 0; j < 10; j++) hist.push((r.s.confidence_hist || [])[j] || 0);
    u32(hist, v => v);
  }
  if (flags & 2) {   // the streams' groups (index of the group's first stream)
    u32(strRows, r => (r.s.group_index === undefined ? r.s.index : r.s.group_index));
    i32(strRows, r => (r.s.diverge_at === undefined ? -1 : r.s.diverge_at));
  }
  u32(tiles, r => r.level);
  i32(tiles, r => r.tx);
  i32(tiles, r => r.ty);
  u32(tiles, r => r.count);
  f32(tiles, r => nan(r.confidence));
  u32(altRows, r => r.s[0]);
  u32(altRows, r => r.s[1]);
  f32(altRows, r => r.lp);
  const strs = Buffer.concat(strParts);
  cols.push(Buffer.concat([strs, Buffer.alloc((8 - strs.length % 8) % 8)]));

  const h = Buffer.alloc(112);
  h.writeUInt8(msg.kind, 0);
  h.writeUInt8(msg.version === undefined ? 2 : msg.version, 1);
  h.writeUInt16LE(flags, 2);
  h.writeUInt32LE(toks.length, 4);
  h.writeBigUInt64LE(BigInt(msg.seq || 0), 8);
  h.writeBigUInt64LE(BigInt(msg.since || 0), 16);
  h.writeUInt32LE(removed.length, 24);
  h.writeUInt32LE(streams.length, 28);
  h.writeUInt32LE(tiles.length, 32);
  h.writeUInt32LE(altRows.length, 36);
  h.writeUInt32LE(strLen, 40);
  h.writeUInt32LE(msg.liveTokens || 0, 44);
  const b = msg.bounds || [NaN, NaN, NaN, NaN];
  for (let i = 0; i < 4; i++) h.writeFloatLE(b[i], 48 + 4 * i);
  h.writeInt32LE(msg.overviewLevel || 0, 64);
  h.writeInt32LE(msg.viewLevel === undefined ? -1 : msg.viewLevel, 68);
  const none = { x0: 0, y0: 0, x1: -1, y1: -1 };
  [msg.cellRect || none, msg.tileRect || none].forEach((r, k) => {
    h.writeInt32LE(r.x0, 72 + 16 * k);
    h.writeInt32LE(r.y0, 76 + 16 * k);
    h.writeInt32LE(r.x1, 80 + 16 * k);
    h.writeInt32LE(r.y1, 84 + 16 * k);
  });
  if (msg.kind === 2) {   // a tick: its newest token's place, NaN when none
    h.writeFloatLE(msg.newest ? msg.newest.x : NaN, 104);
    h.writeFloatLE(msg.newest ? msg.newest.y : NaN, 108);
  } else {
    h.writeUInt32LE(msg.level || 0, 104);
  }
  return Buffer.concat([h, ...cols]);
}

module.exports = { encode, KIND: { SNAPSHOT: 1, TICK: 2, TILES: 3, CELL: 4, REGION: 5 } };
