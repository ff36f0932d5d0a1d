#!/usr/bin/env node
// The web viewer's gos.v2 side in a real browser (Debian's chromium driven
// by playwright-core), with WebGL2 and with Canvas 2D, against the stand-in
// server mock_server.js (docs/protocol-v2.md; the real one is not needed):
// fitted out, the map is density tiles in the palette's hue; zoomed in, a
// region brings the tokens of the view, drawn in their colors, with their
// stream on hover; a tick's cell message adds a token, its removal takes one
// away; panning drops the tokens left behind; fitting again drops them all;
// a token far away changes the overview level, which the viewer asks for;
// a late joiner's first picture costs a small part of gos.v1's bytes.
//
// usage: node v2_viewer.test.js   (run by ctest as ws_browser_v2)
'use strict';

const mock = require('./mock_server.js');
const { launch, pixel, BG, EXPECT, near, benign, VIRIDIS_1, VIRIDIS_HALF } = require('./util.js');

let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) passed++;
  else { failed++; console.error('FAIL: ' + what); }
  return cond;
}
async function waitFor(page, fn, arg, what, timeout = 15000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    return check(true, what);
  } catch (e) {
    const st = await page.evaluate(() => window.gosViewer && window.gosViewer.stats()).catch(() => null);
    return check(false, `${what} (stats: ${JSON.stringify(st)})`);
  }
}
// Moves the camera, waits for the region that answers it (the server has
// seen the viewport and replied) and a frame drawn after.
async function view(page, s, x, y, zoom) {
  const before = s.viewers().reduce((n, v) => n + v.regions, 0);
  await page.evaluate(([x, y, zoom]) => window.gos.view(x, y, zoom), [x, y, zoom]);
  const t0 = Date.now();
  while (s.viewers().reduce((n, v) => n + v.regions, 0) === before && Date.now() - t0 < 5000)
    await new Promise(r => setTimeout(r, 20));
  await page.waitForTimeout(150);   // the answer arrives, is applied and drawn
  const f = await page.evaluate(() => window.gos.state().frames);
  await page.evaluate(() => window.gosViewer.redraw());
  await page.waitForFunction(f => window.gos.state().frames > f, f, { timeout: 10000, polling: 20 });
  await page.waitForTimeout(50);
}
// A pixel is the background blended toward rgb (0..1) with one alpha for
// every channel whose distance from the background is large.
function alphaOf(px, rgb) {
  const as = [];
  for (let i = 0; i < 3; i++) {
    const d = rgb[i] * 255 - BG[i];
    if (Math.abs(d) > 60) as.push((px[i] - BG[i]) / d);
  }
  const a = as.reduce((s, v) => s + v, 0) / as.length;
  const pred = rgb.map((c, i) => BG[i] + a * (c * 255 - BG[i]));
  return { a, fits: near(px, pred, 9) };
}

// The map: three tokens by the origin (as in viewer.test.js), block A of
// 4950 tokens of confidence 1 below them, block B of 4950 of confidence 0.5
// 400000 units away: fitted, a tile is far more than a token.
function blockTokens(prefix, x0, conf) {
  const out = [];
  for (let r = 0; r < 90; r++)
    for (let c = 0; c < 55; c++)
      out.push({ id: `${prefix}${r * 55 + c}`, text: 'tok', x: x0 + c * 54 + 22.5, y: 2000 + r * 22, w: 45,
        confidence: conf, stream: 'blocks', timestamp: 1 });
  return out;
}
const THREE = [
  { id: 'one', text: 'hello', x: 0, y: 0, w: 45, confidence: 1.0, stream: 's1', timestamp: 1 },
  { id: 'half', text: 'world', x: 200, y: 0, w: 45, confidence: 0.5, stream: 's1', timestamp: 2 },
  { id: 'unk', text: 'unsure', x: 400, y: 0, w: 54, confidence: null, stream: 's2', timestamp: 3 },
];

async function scenario(s, ctx, renderer, N) {
  const page = await ctx.newPage();
  const errors = [];
  page.on('console', m => { if (m.type() === 'error' || /gos:/.test(m.text())) errors.push(m.text()); });
  page.on('pageerror', e => errors.push('pageerror: ' + e.message));
  const W = what => `${renderer}: ${what}`;
  const stats = () => page.evaluate(() => window.gosViewer.stats());
  const at = (x, y) => page.evaluate(([x, y]) => window.gos.worldToScreen(x, y), [x, y]);
  const boxColor = async id => {
    const pts = await page.evaluate(id => {
      const t = window.gos.token(id);
      return [0.2, 0.5, 0.8].map(f => window.gos.worldToScreen(t.l + t.W * f, t.y));
    }, id);
    const px = [];
    for (const [x, y] of pts) px.push(await pixel(page, x, y));
    return [0, 1, 2].map(i => px.map(p => p[i]).sort((a, b) => a - b)[1]);
  };
  try {
    await page.goto(`http://127.0.0.1:${s.port}/?renderer=${renderer}`);
    await waitFor(page, () => window.gosViewer && window.gosViewer.stats().firstPictureMs !== null &&
      window.gosViewer.stats().held.viewLevel >= 0, null, W('the page takes the snapshot and the first region'));
    let st = await stats();
    check(st.protocol === 'gos.v2' && st.renderer === renderer, W(`speaks gos.v2, draws with ${renderer}: ${JSON.stringify(st)}`));
    check(st.liveTokens === N && st.tokens === 0 && st.tiles > 0 && st.held.cellRect === null,
      W(`fitted out: no tokens held, ${st.tiles} tiles, the map's ${N} tokens counted: ${JSON.stringify(st)}`));
    check((await page.textContent('#tokens')) === N.toLocaleString('en'), W('the HUD counts the map\'s tokens'));
    check(st.bytesReceived > 0 && st.firstPictureMs > 0 && st.frameMs > 0 && st.v2Errors === 0,
      W(`stats are sane: ${JSON.stringify(st)}`));
    await page.evaluate(() => window.gosViewer.redraw());
    await page.waitForTimeout(200);

    // Tiles: block A's in viridis(1)'s hue, B's in viridis(0.5)'s, nothing between.
    const a = alphaOf(await pixel(page, ...(await at(1500, 3000))), VIRIDIS_1);
    check(a.fits && a.a > 0.15 && a.a <= 1, W(`block A's tile is viridis(1) at alpha ${a.a.toFixed(3)}`));
    const b = alphaOf(await pixel(page, ...(await at(401000, 3000))), VIRIDIS_HALF);
    check(b.fits && b.a > 0.15 && b.a <= 1, W(`block B's tile is viridis(0.5) at alpha ${b.a.toFixed(3)}`));
    const gap = await pixel(page, ...(await at(150000, 3000)));
    check(near(gap, BG, 14), W(`between the blocks, background: ${gap}`));

    // Zoomed in: the region's tokens, in their colors.
    await view(page, s, 200, 0, 0.55);
    await waitFor(page, () => window.gos.token('one') && window.gos.token('half') && window.gos.token('unk'), null,
      W('zoomed in, the region brings the three tokens'));
    st = await stats();
    check(st.tokens > 3 && st.tokens < N / 2 && st.held.cellRect, W(`only the view's tokens are held: ${st.tokens}`));
    for (const [id, want] of [['one', EXPECT.one], ['half', EXPECT.half], ['unk', EXPECT.unknown]]) {
      const got = await boxColor(id);
      check(near(got, want, 10), W(`token '${id}' in its palette color: got ${got}, want ${want.map(Math.round)}`));
    }
    // Hover names the stream (gos.v2 sends its index).
    const [hx, hy] = await at(200, 0);
    await page.mouse.move(hx, hy);
    await waitFor(page, () => !document.getElementById('tip').hidden, null, W('hovering a token shows a tooltip'));
    const tip = await page.textContent('#tip');
    check(tip.includes('"world"') && tip.includes('confidence 0.500') && tip.includes('stream s1') && tip.includes('id half'),
      W(`the tooltip: ${JSON.stringify(tip)}`));
    await page.mouse.move(5, 590);

    // A tick adds a token in view (a cell message), then removes one.
    s.add([{ id: 'live1', text: 'new', x: 600, y: 0, w: 27, confidence: 1.0, stream: 's1', timestamp: 9 }]);
    s.tick();
    await waitFor(page, () => window.gos.token('live1') !== null, null, W('a token added live arrives'));
    await page.waitForTimeout(100);
    const live = await boxColor('live1');
    check(near(live, EXPECT.one, 10), W(`and is drawn: ${live}`));
    // More than 16 cells in a tick: messages per 8x8 cells; the viewer keeps
    // only the tokens inside its cell rect.
    const row = [];
    for (let i = -12; i <= 12; i++)
      row.push({ id: `row${i}`, text: 'r', x: i * 2048 + 100, y: 30, w: 9, confidence: 0.5, stream: 's1', timestamp: 20 });
    s.add(row);
    s.tick();
    await waitFor(page, () => window.gos.token('row0') !== null, null, W('a tick over 25 cells: the token in view arrives'));
    const kept = await page.evaluate(() => {
      const r = window.gosViewer.stats().held.cellRect, out = [];
      for (let i = -12; i <= 12; i++) {
        const t = window.gos.token(`row${i}`), cx = Math.floor((i * 2048 + 100) / 1024);
        if (!!t !== (cx >= r.x0 && cx <= r.x1)) out.push(i);
      }
      return out;
    });
    check(kept.length === 0, W(`exactly the row's tokens inside the cell rect are kept (wrong: ${kept})`));
    const [px, py] = await at(200, 0);
    s.remove(['half']);
    s.tick();
    await waitFor(page, () => window.gos.token('half') === null, null, W('a token removed live goes'));
    await page.waitForTimeout(100);
    const hole = await pixel(page, px, py);
    check(!near(hole, EXPECT.half, 20), W(`and is no longer drawn: ${hole}`));
    st = await stats();
    check(st.liveTokens === N + 25 && (await page.evaluate(() => window.gos.state().gaps)) === 0,
      W(`live_tokens follows the ticks, seq chains: ${JSON.stringify(st)}`));

    // Panning to block B drops what was left behind.
    await view(page, s, 401000, 3000, 0.55);
    await waitFor(page, () => window.gos.token('b2502') !== null && window.gos.token('one') === null &&
      window.gos.token('a0') === null, null, W('panned to block B: its tokens come, those of A and the origin go'));
    const bc = await boxColor('b2502');
    check(near(bc, EXPECT.half, 10), W(`block B's tokens are drawn: ${bc}`));

    // Time travel on a gos.v2 connection: the past comes as gos.v1 JSON
    // (the whole map, keyed by id), live brings binary gos.v2 back.
    s.timeline();
    await waitFor(page, () => !document.getElementById('timeline').hidden, null, W('a timeline shows the bar'));
    await page.mouse.move(5, 5);
    await page.keyboard.press('ArrowLeft');
    await waitFor(page, n => window.gos.state().mode === 'seek' && window.gos.state().tokens === n &&
      window.gos.token('a0') !== null && window.gosViewer.stats().tiles === 0, s.tokens(),
    W('seek: the whole map as gos.v1 JSON on the gos.v2 connection, by id, no tiles'));
    await page.keyboard.press('l');
    await waitFor(page, () => window.gos.state().mode === 'live' && window.gosViewer.stats().tiles > 0 &&
      window.gos.token('b2502') !== null && window.gosViewer.stats().tokens < 5000, null,
    W('live: a binary snapshot, then the region for the view (sent again)'));
    // Resync: the snapshot replaces all; the viewport goes again.
    const sent = (await stats()).viewportsSent;
    s.resync();
    await waitFor(page, n => window.gosViewer.stats().viewportsSent > n && window.gos.token('b2502') !== null, sent,
      W('resync: after the fresh snapshot the viewer sends its viewport again and gets its tokens back'));

    // Fit: no detail at all.
    await page.keyboard.press('0');
    await waitFor(page, () => window.gosViewer.stats().tokens === 0 && window.gosViewer.stats().held.cellRect === null,
      null, W('fitted again, no tokens held'));

    // A token far away: the overview level changes; the viewer asks again.
    const ov = (await stats()).held.overview;
    s.add([{ id: 'far', text: 'far', x: -3e6, y: 0, w: 27, confidence: 1.0, stream: 's1', timestamp: 10 }]);
    s.tick();
    await waitFor(page, o => window.gosViewer.stats().held.overview > o, ov,
      W(`a token 3e6 units away: the viewer holds the new overview level (was ${ov})`));
    const mine = s.viewers().filter(v => v.v2).map(v => v.overview);
    check(mine.includes((await stats()).held.overview), W(`the server agrees on it: ${JSON.stringify(mine)}`));
    check(errors.filter(e => !benign(e)).length === 0, W(`no console errors: ${JSON.stringify(errors)}`));
  } finally {
    await page.close().catch(() => {});
  }
}

// A late joiner: bytes before the first picture, gos.v2 against gos.v1.
async function lateJoin(s, ctx) {
  const bytes = {};
  for (const q of ['', '?protocol=v1']) {
    const page = await ctx.newPage();
    try {
      await page.goto(`http://127.0.0.1:${s.port}/${q}`);
      await page.waitForFunction(() => window.gosViewer && window.gosViewer.stats().firstPictureMs !== null,
        null, { timeout: 15000, polling: 20 });
      const st = await page.evaluate(() => window.gosViewer.stats());
      bytes[st.protocol] = st.bytesAtFirstPicture;
    } finally {
      await page.close().catch(() => {});
    }
  }
  console.log(`ws_browser_v2: bytes before the first picture: ${JSON.stringify(bytes)}`);
  check(bytes['gos.v2'] > 0 && bytes['gos.v1'] > 0 && bytes['gos.v2'] * 4 < bytes['gos.v1'],
    `late join: gos.v2 draws its first picture for a fraction of gos.v1's bytes: ${JSON.stringify(bytes)}`);
}

async function main() {
  // A fresh server for each (bounds only grow: the far token stays in them).
  const server = async () => {
    const s = await mock.start({});
    s.add(THREE.concat(blockTokens('a', 0, 1.0), blockTokens('b', 400000, 0.5)));
    s.tick();
    return s;
  };
  const gl = await launch();
  try {
    for (const r of ['webgl2', 'canvas']) {
      const s = await server();
      try { await scenario(s, gl.ctx, r, s.tokens()); } finally { await s.close(); }
    }
    const s = await server();
    try { await lateJoin(s, gl.ctx); } finally { await s.close(); }
  } finally {
    await gl.close();
  }
}

main().then(() => {
  console.log(`ws_browser_v2: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}, e => {
  console.error('ws_browser_v2: ' + (e && e.stack || e));
  console.log(`ws_browser_v2: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
