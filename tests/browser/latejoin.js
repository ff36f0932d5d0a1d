#!/usr/bin/env node
// A late joiner's cost, for gos-bench: opens URL (a gos viewer page) in a
// fresh headless chromium speaking gos.v1 or gos.v2 and prints, as one
// JSON line on stdout, once the first picture after the snapshot is drawn:
//
//   {"firstPictureMs":..,"bytesBeforePicture":..,"jsHeapMB":..,...}
//
// firstPictureMs: from the page's start (performance.timeOrigin) to the
// end of that frame; bytesBeforePicture: the WebSocket bytes received until
// then; jsHeapMB: the page's JavaScript heap in use right after it, after
// a garbage collection (CDP HeapProfiler.collectGarbage, then
// Runtime.getHeapUsage). Exit 1 when the page did not get there, or got
// another protocol than asked.
//
// usage: node latejoin.js URL v1|v2 [--renderer webgl2|canvas] [--size WxH] [--timeout S]
'use strict';

const { launch } = require('./util.js');

const args = process.argv.slice(2);
function opt(name, def) { const i = args.indexOf(name); return i >= 0 && i + 1 < args.length ? args[i + 1] : def; }
const pos = args.filter((a, i) => !a.startsWith('--') && (i === 0 || !args[i - 1].startsWith('--')));
const [url, proto] = pos;
if (!url || !/^v[12]$/.test(proto || '')) {
  console.error('usage: node latejoin.js URL v1|v2 [--renderer webgl2|canvas] [--size WxH] [--timeout S]');
  process.exit(2);
}
const RENDERER = opt('--renderer', null);
const [WIDTH, HEIGHT] = opt('--size', '1280x720').split('x').map(Number);
const TIMEOUT = Number(opt('--timeout', '300')) * 1000;

(async () => {
  const u = new URL(url);
  if (proto === 'v1') u.searchParams.set('protocol', 'v1');
  if (RENDERER) u.searchParams.set('renderer', RENDERER);
  const b = await launch([], { width: WIDTH, height: HEIGHT });
  const out = { url: u.toString(), asked: 'gos.' + proto };
  let ok = false;
  try {
    const page = b.ctx.pages()[0] || await b.ctx.newPage();
    const errors = [];
    page.on('pageerror', e => errors.push(e.message));
    const t0 = Date.now();
    await page.goto(u.toString());
    await page.waitForFunction(() => window.gosViewer && window.gosViewer.stats().firstPictureMs !== null,
      null, { timeout: TIMEOUT, polling: 'raf' });
    const st = await page.evaluate(() => window.gosViewer.stats());
    const cdp = await b.ctx.newCDPSession(page);
    await cdp.send('HeapProfiler.enable');
    await cdp.send('HeapProfiler.collectGarbage');
    const heap = await cdp.send('Runtime.getHeapUsage');
    Object.assign(out, {
      firstPictureMs: st.firstPictureMs, bytesBeforePicture: st.bytesAtFirstPicture,
      jsHeapMB: Math.round(heap.usedSize / 1048576 * 10) / 10,
      protocol: st.protocol, renderer: st.renderer, tokens: st.tokens, liveTokens: st.liveTokens, tiles: st.tiles,
      wallMs: Date.now() - t0,
    });
    if (errors.length) out.errors = errors;
    ok = st.protocol === out.asked;
    if (!ok) out.error = `asked for ${out.asked}, the server speaks ${st.protocol}`;
  } catch (e) {
    out.error = String(e && e.message || e);
  } finally {
    await b.close();
  }
  console.log(JSON.stringify(out));
  process.exit(ok ? 0 : 1);
})();
