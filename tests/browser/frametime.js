#!/usr/bin/env node
// Frame time of the web viewer's two renderers on one map, for gos-bench:
// opens URL (a gos viewer page) with renderer=webgl2, then renderer=canvas,
// waits until the map is loaded, fits it all on screen, then pans by a
// pixel every frame for N frames (every frame redraws everything) and
// prints, as one JSON line on stdout:
//
//   {"webgl2":{"frameMs":..,"intervalMs":..,...},"canvas":{"frameMs":..,...},...}
//
// frameMs: the mean time of the viewer's draw function (what
// gosViewer.stats() reports; with WebGL2 the GPU's work is not in it);
// intervalMs: the mean time between frames while redrawing every frame,
// GPU work included (chromium paces frames by it; at least the display's
// 16.7 ms). Chromium runs headless with --disable-gpu (WebGL2 from
// SwiftShader, on the CPU) unless GOS_CHROMIUM_GPU=1.
//
// usage: node frametime.js URL [--frames N] [--size WxH] [--protocol v1|v2]
//                              [--timeout S] [--renderers webgl2,canvas] [--zoom Z]
//   --zoom Z: after fitting, zoom to Z (pixels per world unit) at the
//   map's centre (default: stay fitted, every token on screen).
//   --protocol v1 (default): the whole map comes as tokens, every one drawn;
//   v2: as the page asks (gos.v2 when the server speaks it: tiles far out).
//   --styles: then frames that each change the color mode, the stream
//   filter or the probability range (and change it back the next frame):
//   out[renderer].styles = {NAME: {medianMs, maxMs}} of the frame interval,
//   beside the pan's (every frame redrawn, nothing changed) as "baseline".
'use strict';

const { launch } = require('./util.js');

const args = process.argv.slice(2);
function opt(name, def) { const i = args.indexOf(name); return i >= 0 && i + 1 < args.length ? args[i + 1] : def; }
const url = args.find((a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1].startsWith('--')));
if (!url) {
  console.error('usage: node frametime.js URL [--frames N] [--size WxH] [--protocol v1|v2] [--timeout S] ' +
    '[--renderers webgl2,canvas] [--zoom Z]');
  process.exit(2);
}
const FRAMES = Number(opt('--frames', '30'));
const [WIDTH, HEIGHT] = opt('--size', '1280x720').split('x').map(Number);
const PROTOCOL = opt('--protocol', 'v1');
const TIMEOUT = Number(opt('--timeout', '300')) * 1000;
const RENDERERS = opt('--renderers', 'webgl2,canvas').split(',');
const ZOOM = opt('--zoom', null) === null ? null : Number(opt('--zoom', null));
const STYLES = args.includes('--styles');

async function measure(ctx, renderer) {
  const u = new URL(url);
  u.searchParams.set('renderer', renderer);
  if (PROTOCOL === 'v1') u.searchParams.set('protocol', 'v1');
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', e => errors.push(e.message));
  try {
    const t0 = Date.now();
    await page.goto(u.toString());
    // Loaded: a first picture, and the number of tokens held steady for 1 s.
    await page.waitForFunction(() => window.gosViewer && window.gosViewer.stats().firstPictureMs !== null,
      null, { timeout: TIMEOUT, polling: 100 });
    let last = -1, same = 0;
    while (Date.now() - t0 < TIMEOUT) {
      const n = await page.evaluate(() => window.gosViewer.stats().tokens);
      same = n === last ? same + 1 : 0;
      last = n;
      if (same >= 4) break;
      await page.waitForTimeout(250);
    }
    const loadMs = Date.now() - t0;
    await page.mouse.move(1, 1);
    await page.keyboard.press('0');   // fit
    if (ZOOM) await page.evaluate(z => { const c = window.gos.camera(); window.gos.view(c.x, c.y, z); }, ZOOM);
    await page.waitForTimeout(500);
    const r = await page.evaluate(async frames => {
      const g = window.gos, raf = () => new Promise(res => requestAnimationFrame(res));
      const cam = g.camera();
      await raf();
      const draws = [];
      let prev = performance.now(), span = 0, drawn = 0;
      for (let i = 0; i < frames; i++) {
        g.view(cam.x + (i % 2 ? 0 : 1) / cam.zoom, cam.y, cam.zoom);   // a pixel right, then back
        await raf();
        const s = g.state();
        draws.push(s.drawMs);
        drawn = s.drawn;
        const now = performance.now();
        span += now - prev;
        prev = now;
      }
      const stats = window.gosViewer.stats();
      return { frameMs: draws.reduce((a, b) => a + b, 0) / draws.length, intervalMs: span / frames,
        frames, drawn, tokens: stats.tokens, liveTokens: stats.liveTokens, tiles: stats.tiles,
        renderer: stats.renderer, protocol: stats.protocol, firstPictureMs: stats.firstPictureMs,
        statsFrameMs: stats.frameMs };
    }, FRAMES);
    if (STYLES) {
      r.styles = await page.evaluate(async frames => {
        const g = window.gos, raf = () => new Promise(res => requestAnimationFrame(res));
        const cam = g.camera();
        const stream = g.token(g.tokenIds()[0]).stream;
        const med = a => a.slice().sort((x, y) => x - y)[a.length >> 1];
        const rows = {
          baseline: i => g.view(cam.x + (i % 2 ? 0 : 1) / cam.zoom, cam.y, cam.zoom),
          rank: i => g.setColorMode(i % 2 ? 'confidence' : 'rank'),
          logprob: i => g.setColorMode(i % 2 ? 'confidence' : 'logprob'),
          'hide a stream': i => g.setShown(stream, i % 2 === 1),
          'p < 0.1': i => g.setRange(0, i % 2 ? 1 : 0.1),
        };
        const out = {};
        for (const [name, step] of Object.entries(rows)) {
          await raf();
          let prev = performance.now();
          const iv = [];
          for (let i = 0; i < frames; i++) {
            step(i);
            await raf();
            const now = performance.now();
            iv.push(now - prev);
            prev = now;
          }
          out[name] = { medianMs: med(iv), maxMs: Math.max(...iv) };
        }
        g.setColorMode('confidence');
        g.setShown(stream, true);
        g.setRange(0, 1);
        return out;
      }, FRAMES);
    }
    r.loadMs = loadMs;
    if (errors.length) r.errors = errors;
    return r;
  } finally {
    await page.close().catch(() => {});
  }
}

(async () => {
  const out = { url, frames: FRAMES, size: `${WIDTH}x${HEIGHT}`, protocol: PROTOCOL, zoom: ZOOM || 'fit',
    gpu: process.env.GOS_CHROMIUM_GPU === '1' };
  for (const r of RENDERERS) {
    // A browser of its own for each: no heap or GPU state carried over.
    const b = await launch([], { width: WIDTH, height: HEIGHT });
    try { out[r] = await measure(b.ctx, r); } catch (e) { out[r] = { error: String(e && e.message || e) }; }
    finally { await b.close(); }
  }
  console.log(JSON.stringify(out));
  process.exit(RENDERERS.every(r => out[r] && !out[r].error) ? 0 : 1);
})();
