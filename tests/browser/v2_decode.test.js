#!/usr/bin/env node
// The web viewer's gos.v2 decoder (assets/web/v2.js) in plain node: messages
// built per docs/protocol-v2.md by v2_encode.js (written apart from the
// decoder), and a few bytes laid out by hand, decode to what was put in;
// malformed messages throw.
//
// usage: node v2_decode.test.js   (run by ctest as ws_v2_decode)
'use strict';

const path = require('path');
const v2 = require(path.join(__dirname, '../../assets/web/v2.js'));
const { encode, KIND } = require('./v2_encode.js');

let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) passed++;
  else { failed++; console.error('FAIL: ' + what); }
  return cond;
}
function throws(fn, re, what) {
  try { fn(); } catch (e) { return check(re.test(e.message), `${what}: ${e.message}`); }
  return check(false, `${what}: no exception`);
}
const f32 = v => Math.fround(v);
const ab = buf => buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length);

// ---- the layout itself, by hand: one token, one removed slot, no strings
// but the id "a". Header 112 bytes; columns padded to 8.
{
  const b = encode({ kind: KIND.CELL, seq: 7, since: 0, tokens: [{ slot: 5, stream: 2, x: 1.5, y: -2, w: 9,
    confidence: 0.25, logprob: null, timestamp: 3.5, id: 'a', text: '' }], removed: [9],
    cellRect: { x0: 3, y0: -4, x1: 3, y1: -4 } });
  check(b.length === 112 + 8 /*ts*/ + 13 * 8 /*13 u32/f32 columns of 1, padded*/ + 8 /*removed*/ + 8 /*"a"*/,
    `the encoder pads every column to 8 bytes (${b.length})`);
  check(b.readDoubleLE(112) === 3.5 && b.readUInt32LE(120) === 5 && b.readUInt32LE(128) === 2 &&
    b.readFloatLE(136) === 1.5 && b.readFloatLE(144) === -2 && b.readFloatLE(152) === 9 &&
    b.readFloatLE(160) === 0.25 && Number.isNaN(b.readFloatLE(168)) && b.readUInt32LE(176) === 0 &&
    b.readUInt32LE(184) === 1 && b.readUInt32LE(224) === 9 && b.toString('utf8', 232, 233) === 'a',
    'the encoder puts each column where the spec says');
  const m = v2.decode(ab(b));
  check(m.kind === 4 && m.version === 2 && m.seq === 7 && m.tokens.length === 1, 'a cell message decodes');
  const t = m.tokens[0];
  check(t.slot === 5 && t.stream === 2 && t.x === 1.5 && t.y === -2 && t.w === 9 && t.confidence === 0.25 &&
    t.logprob === null && t.timestamp === 3.5 && t.id === 'a' && t.text === '' && t.alts === null,
    `its token: ${JSON.stringify(t)}`);
  check(m.removed.length === 1 && m.removed[0] === 9, 'its removed slot');
  check(m.cellRect && m.cellRect.x0 === 3 && m.cellRect.y0 === -4 && m.tileRect === null && m.bounds === null,
    `its rects and bounds: ${JSON.stringify([m.cellRect, m.tileRect, m.bounds])}`);
}

// ---- a tick names its newest token's place (NaN: none), not a level.
{
  const m = v2.decode(encode({ kind: 2, seq: 5, since: 4, newest: { x: -12.5, y: 300.25 } }));
  check(m.newest && m.newest.x === -12.5 && m.newest.y === 300.25 && m.level === 0,
        'a tick carries the newest token place at 104/108');
  const n = v2.decode(encode({ kind: 2, seq: 6, since: 5 }));
  check(n.newest === null, 'a tick without tokens has no newest place');
}

// ---- a snapshot: streams, tiles, bounds, levels; no tokens.
{
  const streams = [
    { index: 0, stream: '', state: '', tokens_processed: 0, total_tokens: -1, elapsed_ms: null, tokens: 3 },
    { index: 4, stream: 'gen-1', state: 'processing', tokens_processed: 150, total_tokens: 264, elapsed_ms: 1234.5,
      tokens: 150 },
  ];
  const tiles = [];
  for (let i = 0; i < 37; i++)
    tiles.push({ level: 6, tx: i - 18, ty: -(i % 5), count: i * 1000 + 1, confidence: i % 7 ? i / 40 : null });
  const b = encode({ kind: KIND.SNAPSHOT, seq: 2 ** 40 + 3, liveTokens: 123456, bounds: [-100.5, -20, 5e6, 3e5],
    overviewLevel: 6, viewLevel: -1, streams, tiles });
  const m = v2.decode(ab(b));
  check(m.kind === v2.KIND.SNAPSHOT && m.seq === 2 ** 40 + 3 && m.since === 0 && m.liveTokens === 123456,
    `snapshot header: kind ${m.kind} seq ${m.seq} live ${m.liveTokens}`);
  check(JSON.stringify(m.bounds) === JSON.stringify([-100.5, -20, 5e6, 3e5].map(f32)), `bounds ${m.bounds}`);
  check(m.overviewLevel === 6 && m.viewLevel === -1 && m.cellRect === null && m.tileRect === null,
    'levels and no rects');
  check(m.streams.length === 2 && JSON.stringify(m.streams) === JSON.stringify(streams),
    `streams: ${JSON.stringify(m.streams)}`);
  let ok = m.tiles.n === 37;
  for (let i = 0; i < 37 && ok; i++) {
    const w = tiles[i], c = m.tiles.confidence[i];
    ok = m.tiles.level[i] === 6 && m.tiles.tx[i] === w.tx && m.tiles.ty[i] === w.ty && m.tiles.count[i] === w.count &&
      (w.confidence === null ? Number.isNaN(c) : c === f32(w.confidence));
  }
  check(ok, 'all 37 tiles: level, tx, ty (negative too), count, confidence (NaN: none)');
}

// ---- a region: tokens with alternatives, unicode text (the string table
// is not ASCII), NaN confidence, both rects.
{
  const toks = [];
  for (let i = 0; i < 300; i++) {
    toks.push({ slot: 1000 + i, stream: i % 3, x: i * 45.5, y: -i * 22, w: 9 * (1 + i % 6),
      confidence: i % 4 ? (i % 100) / 100 : null, logprob: i % 2 ? -i / 50 : null, timestamp: 1.7e9 + i / 8,
      id: `tok-${i}`, text: i % 9 === 0 ? 'héllo→世界' : `w${i}`,
      alts: i % 3 ? [{ token: `a${i}`, logprob: -0.5 }, { token: 'ü', logprob: -2.25 }] : [] });
  }
  const b = encode({ kind: KIND.REGION, seq: 99, liveTokens: 300, bounds: [0, -6578, 13600, 0], overviewLevel: 2,
    viewLevel: 1, cellRect: { x0: -1, y0: -7, x1: 13, y1: 0 }, tileRect: { x0: -2, y0: -26, x1: 53, y1: 0 },
    tokens: toks });
  const m = v2.decode(ab(b));
  check(m.kind === 5 && m.viewLevel === 1 && m.overviewLevel === 2, 'region header');
  check(JSON.stringify(m.cellRect) === '{"x0":-1,"y0":-7,"x1":13,"y1":0}' &&
    JSON.stringify(m.tileRect) === '{"x0":-2,"y0":-26,"x1":53,"y1":0}', 'region rects');
  let bad = null;
  m.tokens.forEach((t, i) => {
    const w = toks[i];
    const want = { slot: w.slot, stream: w.stream, x: f32(w.x), y: f32(w.y), w: f32(w.w),
      confidence: w.confidence === null ? null : f32(w.confidence), logprob: w.logprob === null ? null : f32(w.logprob),
      timestamp: w.timestamp, id: w.id, text: w.text, alts: w.alts.length ? w.alts : null };
    if (!bad && JSON.stringify(t) !== JSON.stringify(want)) bad = [t, want];
  });
  check(m.tokens.length === 300 && !bad, `300 tokens with unicode text and alternatives: ${JSON.stringify(bad)}`);

  // The same with an ASCII-only table (the fast path), from an unaligned Buffer.
  const ascii = toks.map(t => Object.assign({}, t, { text: t.text.replace(/[^\x00-\x7f]/g, '?'),
    alts: t.alts.map(a => ({ token: a.token.replace(/[^\x00-\x7f]/g, '?'), logprob: a.logprob })) }));
  const b2 = encode({ kind: KIND.REGION, seq: 99, tokens: ascii });
  const odd = Buffer.alloc(b2.length + 3);
  b2.copy(odd, 3);
  const m2 = v2.decode(odd.subarray(3));
  check(m2.tokens.every((t, i) => t.text === ascii[i].text && t.id === ascii[i].id &&
    (t.alts || []).map(a => a.token).join() === ascii[i].alts.map(a => a.token).join()),
  'ASCII strings, and a message in an unaligned Buffer');
}

// ---- a tick: since/seq beyond 32 bits, removals, streams.
{
  const removed = [];
  for (let i = 0; i < 1001; i++) removed.push(i * 7);
  const b = encode({ kind: KIND.TICK, since: 2 ** 33 + 1, seq: 2 ** 33 + 9, liveTokens: 5, bounds: [0, 0, 1, 1],
    overviewLevel: 0, removed,
    streams: [{ index: 1, stream: 's', state: 'done', tokens_processed: 3, total_tokens: 3, elapsed_ms: 0, tokens: 3 }] });
  const m = v2.decode(ab(b));
  check(m.kind === 2 && m.since === 2 ** 33 + 1 && m.seq === 2 ** 33 + 9, `tick since ${m.since} seq ${m.seq}`);
  check(m.removed.length === 1001 && m.removed.every((s, i) => s === i * 7), 'tick removals');
  check(m.streams.length === 1 && m.streams[0].state === 'done' && m.streams[0].elapsed_ms === 0, 'tick stream');
}

// ---- flags 3: the streams' analytics and groups, the tokens' detail
// (index, rank with beyond and unknown, gap, entropy, agreement, diverges).
{
  const toks = [
    { slot: 1, stream: 0, x: 0, y: 0, w: 9, confidence: 0.5, id: 'a', text: 'x', index: 0, rank: 1, entropy: 0.25,
      agree: 1 },
    { slot: 2, stream: 2, x: 9, y: 0, w: 9, confidence: null, id: 'b', text: 'y', index: 7, rank: -1, gap_ms: 12.5,
      agree: 0.5, diverges: true },
    { slot: 3, stream: 2, x: 18, y: 0, w: 9, confidence: 0.1, id: 'c', text: 'z', index: 4000000000 },
  ];
  const streams = [
    { index: 0, stream: 'p:1', state: 'done', tokens_processed: 1, total_tokens: 1, elapsed_ms: 5, tokens: 1,
      ttft_ms: 20, tokens_per_s: null, mean_confidence: 0.5, min_confidence: 0.5, perplexity: 2, mean_entropy: null,
      finish_reason: 'stop', message: '', model: 'm', confidence_hist: [0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
      group_index: 0, diverge_at: -1 },
    { index: 2, stream: 'p:2', state: '', tokens_processed: 0, total_tokens: -1, elapsed_ms: null, tokens: 8,
      ttft_ms: null, tokens_per_s: 3, mean_confidence: null, min_confidence: null, perplexity: null,
      mean_entropy: 0.5, finish_reason: '', message: 'oops', model: '', confidence_hist: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
      group_index: 0, diverge_at: 7 },
  ];
  const m = v2.decode(ab(encode({ kind: KIND.REGION, seq: 3, flags: 3, tokens: toks, streams })));
  check(m.flags === 3, `flags ${m.flags}`);
  const pick = t => [t.index, t.rank, t.gap_ms, t.entropy, t.agree, t.diverges];
  check(JSON.stringify(m.tokens.map(pick)) === JSON.stringify(toks.map(t => [t.index, t.rank, t.gap_ms,
    t.entropy, t.agree, t.diverges])), `token detail: ${JSON.stringify(m.tokens.map(pick))}`);
  check(m.tokens[2].rank === undefined && m.tokens[0].gap_ms === undefined && !('diverges' in m.tokens[0]),
    'unknown detail is absent, as in gos.v1');
  check(JSON.stringify(m.streams) === JSON.stringify(streams), `streams with analytics and groups: ${JSON.stringify(m.streams)}`);
}

// ---- tiles (kind 3): its level in the header.
{
  const m = v2.decode(ab(encode({ kind: KIND.TILES, seq: 4, level: 12,
    tiles: [{ level: 12, tx: -1, ty: 2, count: 0, confidence: null }] })));
  check(m.kind === 3 && m.level === 12 && m.tiles.n === 1 && m.tiles.count[0] === 0, 'a tiles message, count 0');
}

// ---- malformed messages throw, naming the problem.
{
  const good = encode({ kind: KIND.REGION, tokens: [{ slot: 1, x: 0, y: 0, w: 9, id: 'x', text: 'yz',
    alts: [{ token: 'q', logprob: -1 }] }] });
  throws(() => v2.decode(ab(good.subarray(0, 50))), /shorter than the 112-byte header/, 'a short header');
  throws(() => v2.decode(ab(good.subarray(0, good.length - 8))), /truncated/, 'a truncated message');
  const v1 = Buffer.from(good); v1[1] = 1;
  throws(() => v2.decode(ab(v1)), /version 1/, 'version 1');
  const k9 = Buffer.from(good); k9[0] = 9;
  throws(() => v2.decode(ab(k9)), /unknown kind 9/, 'kind 9');
  const far = Buffer.from(good); far.writeUInt32LE(1000, 112 + 8 + 9 * 8);   // text_off
  throws(() => v2.decode(ab(far)), /outside the/, 'a string outside the table');
  const alt = Buffer.from(good); alt.writeUInt32LE(5, 112 + 8 + 11 * 8);     // alt_first
  throws(() => v2.decode(ab(alt)), /alternatives/, 'alternatives outside the table');
  throws(() => v2.decode('{"type":"hello"}'), /not binary/, 'a string');
}

// ---- geometry helpers.
{
  check(v2.tileSize(0) === v2.TILE0 && v2.tileSize(3) === v2.CELL && v2.tileSize(20) === v2.TILE0 * 2 ** 20,
    'tile sizes: TILE0·2^k, level 3 is a cell');
  const keys = new Set();
  for (const l of [0, 1, 20]) for (const x of [-8388608, -1, 0, 1, 8388607, 9e6]) for (const y of [-3, 0, 3, -9e6])
    keys.add(v2.tileKey(l, x, y));
  check(keys.size === 3 * 6 * 4, `tile keys are distinct (${keys.size})`);
  check(v2.rectHas({ x0: -1, y0: -1, x1: 1, y1: 1 }, 1, -1) && !v2.rectHas({ x0: -1, y0: -1, x1: 1, y1: 1 }, 2, 0) &&
    !v2.rectHas(null, 0, 0), 'rectHas: inclusive; null holds nothing');
}

console.log(`ws_v2_decode: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
