#!/usr/bin/env node
// The web viewer in a real browser (Debian's chromium, driven by
// playwright-core) against a real gos-compositor: the page loads without
// console errors, tokens fed into the Unix socket appear on screen in the
// palette's colors (pixels read back from screenshots), hovering a token
// shows its text, and after the compositor restarts the page reconnects by
// itself and shows the new map. Without a journal the timeline bar stays
// hidden; with one (a second compositor with --state-dir), the timeline:
// scrubbing to between two bursts shows the first burst only, live shows
// all again, the arrow keys and L step and return, and a replay at 16x
// ends in live (see timelineTest).
// The page draws with WebGL2 (chromium's SwiftShader here); rendererTest
// checks the same pixels with WebGL off (the Canvas 2D fallback), with
// ?renderer=canvas and with ?protocol=v1, and what gosViewer.stats() says.
// The gos.v2 side against a stand-in server: v2_viewer.test.js.
//
// usage: node viewer.test.js GOS_COMPOSITOR   (run by ctest)
'use strict';

const { spawn } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');
const util = require('./util.js');

let chromium;
try {
  ({ chromium } = require('playwright-core'));
} catch (e) {
  console.error('viewer.test: playwright-core is missing: run tools/setup.sh ' +
    '(npm install in tests/browser)');
  process.exit(1);
}

const COMPOSITOR = process.argv[2];
let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) passed++;
  else { failed++; console.error('FAIL: ' + what); }
  return cond;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gos-browser-'));
const sock = path.join(tmp, 'gos.sock');

// stateDir: journal there (--state-dir); without it --no-journal.
function startCompositor(port, stateDir, socket = sock) {
  return new Promise((resolve, reject) => {
    const journal = stateDir ? ['--state-dir', stateDir] : ['--no-journal'];
    const p = spawn(COMPOSITOR, ['--headless', ...journal, '--socket', socket, '--log-interval', '0',
      '--listen', `127.0.0.1:${port}`, '--tick-ms', '20'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => reject(new Error('compositor did not start: ' + err)), 15000);
    p.stderr.on('data', d => {
      err += d;
      const m = /web viewer at http:\/\/127\.0\.0\.1:(\d+)\//.exec(err);
      if (m) { clearTimeout(timer); resolve({ p, port: Number(m[1]) }); }
    });
    p.on('exit', code => reject(new Error(`compositor exited ${code}: ${err}`)));
  });
}

function stopCompositor(c) {
  return new Promise(resolve => {
    if (c.p.exitCode !== null) return resolve(c.p.exitCode);
    c.p.removeAllListeners('exit');
    c.p.on('exit', code => resolve(code));
    c.p.kill('SIGTERM');
  });
}

// Sends JSON lines and a sync barrier; resolves with the sync reply.
const feed = (lines, socket = sock) => util.feedSocket(socket, lines);

// One screen pixel, from a 1x1 PNG screenshot (a single pixel needs no
// PNG filter reconstruction: every filter predicts 0 for it).
async function pixel(page, x, y) {
  const png = await page.screenshot({ clip: { x: Math.round(x), y: Math.round(y), width: 1, height: 1 } });
  let off = 8, idat = [], ctype = 2;
  while (off < png.length) {
    const len = png.readUInt32BE(off), type = png.toString('ascii', off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') ctype = data[9];
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat));
  check(ctype === 2 || ctype === 6, `screenshot is RGB(A) 8-bit (color type ${ctype})`);
  return [raw[1], raw[2], raw[3]];
}

// A screenshot's pixels: tests/browser/util.js.
const { decodePNG } = util;

// The palette (shaders/gos_palette.h): viridis entries and the unknown gray,
// blended over the page background #101014 with the confidence's alpha.
const BG = [16, 16, 20];
function blend(rgb, a) { return rgb.map((c, i) => c * 255 * a + BG[i] * (1 - a)); }
const EXPECT = {
  one: blend([0.993248, 0.906157, 0.143936], 0.35 + 0.65 * 1.0),
  half: blend([0.128283, 0.565109, 0.550773], 0.35 + 0.65 * 0.5),
  unknown: blend([0.6, 0.6, 0.6], 0.6),
};
function near(got, want, tol) { return got.every((c, i) => Math.abs(c - want[i]) <= tol); }

async function waitFor(page, fn, arg, what, timeout = 15000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    return check(true, what);
  } catch (e) {
    const st = await page.evaluate(() => window.gos && window.gos.state()).catch(() => null);
    return check(false, `${what} (state: ${JSON.stringify(st)})`);
  }
}

// Moves the camera and waits until a frame with the new view is drawn.
async function view(page, x, y, zoom) {
  const before = await page.evaluate(([x, y, zoom]) => {
    const f = window.gos.state().frames;
    window.gos.view(x, y, zoom);
    return f;
  }, [x, y, zoom]);
  await page.waitForFunction(f => window.gos.state().frames > f, before, { timeout: 10000, polling: 20 });
  await page.waitForTimeout(50);   // and composited
}

// The median colour of a few pixels inside a token's box (grid lines under
// the translucent box shift single pixels a little).
async function tokenColor(page, id) {
  const pts = await page.evaluate(id => {
    const t = window.gos.token(id);
    const out = [];
    for (const f of [0.2, 0.5, 0.8]) out.push(window.gos.worldToScreen(t.l + t.W * f, t.y));
    return out;
  }, id);
  const px = [];
  for (const [x, y] of pts) px.push(await pixel(page, x, y));
  return [0, 1, 2].map(i => px.map(p => p[i]).sort((a, b) => a - b)[1]);
}

// Time travel (issue 11, docs/journal.md "Time travel") against a second
// compositor that keeps a journal. A server that sends a `timeline` gets
// the whole test; one that sends none (time travel not built in) must
// leave the bar hidden, unless docs/protocol.md documents `timeline`: then
// its absence fails.
async function timelineTest(ctx) {
  const stateDir = path.join(tmp, 'state');
  const socket = path.join(tmp, 'journal.sock');
  const c = await startCompositor(0, stateDir, socket);
  const page = await ctx.newPage();
  const errors = [];
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', e => errors.push('pageerror: ' + e.message));
  const st = () => page.evaluate(() => window.gos.state());
  try {
    await page.goto(`http://127.0.0.1:${c.port}/`);
    await waitFor(page, () => window.gos && window.gos.state().conn === 'live', null,
      'timeline: the page connects to a compositor with a journal');

    // Two bursts apart in time: the gap is part of the data (the scrubber
    // goes into it), not a wait for something.
    const N1 = 4, N2 = 6, GAP_MS = 1500;
    const tok = i => ({ type: 'token_activation', token_id: `b${i}`, token_text: `w${i}`, timestamp: i,
      position: [i * 60, 0], confidence: (i % 5) / 4 });
    const burst1 = [...Array(N1).keys()].map(tok), burst2 = [...Array(N2).keys()].map(i => tok(N1 + i));
    const r1 = await feed(burst1, socket);
    check(r1.tokens === N1, `timeline: first burst applied (${JSON.stringify(r1)})`);
    const end1 = Date.now() / 1000;
    await new Promise(r => setTimeout(r, GAP_MS));
    const start2 = Date.now() / 1000;
    const r2 = await feed(burst2, socket);
    check(r2.tokens === N1 + N2, `timeline: second burst applied (${JSON.stringify(r2)})`);
    await waitFor(page, n => window.gos.state().tokens === n, N1 + N2, 'timeline: the live page holds both bursts');
    const all = await st();

    const documented = fs.readFileSync(path.join(__dirname, '../../docs/protocol.md'), 'utf8')
      .includes('"type":"timeline"');
    const got = await page.waitForFunction(s => {
      const t = window.gos.state().timeline;
      return t && t.last_seq >= s;
    }, all.seq, { timeout: 5000, polling: 50 }).then(() => true, () => false);
    if (!got) {
      const s = await st();
      check(!documented, `timeline: docs/protocol.md documents "timeline" but within 5 s the server sent none ` +
        `reaching seq ${all.seq}: ${JSON.stringify(s.timeline)}`);
      const hidden = await page.evaluate(() => document.getElementById('timeline').hidden);
      check(hidden && s.timeline === null, 'timeline: no timeline from the server, so the bar stays hidden');
      console.log('ws_browser: this compositor sends no timeline (time travel not built in): ' +
        'checked that the bar stays hidden, skipped the rest of the timeline test');
      return;
    }
    check(await page.evaluate(() => !document.getElementById('timeline').hidden), 'timeline: the bar is shown');
    check(await page.textContent('#tl-time') === 'LIVE', 'timeline: it says LIVE');
    check(await page.evaluate(() => document.getElementById('tl-live').classList.contains('on')),
      'timeline: the live button is highlighted');

    // Drag the marker from the live end into the gap between the bursts.
    const tl = (await st()).timeline;
    const box = await page.locator('#tl-track').boundingBox();
    const frac = ((end1 + start2) / 2 - tl.first_time) / (tl.last_time - tl.first_time);
    check(frac > 0 && frac < 1, `timeline: the gap lies inside the session (${frac}, ${JSON.stringify(tl)})`);
    const y = box.y + box.height / 2;
    await page.mouse.move(box.x + box.width - 1, y);
    await page.mouse.down();
    await page.mouse.move(box.x + frac * box.width, y, { steps: 12 });
    const tip = await page.evaluate(() => {
      const t = document.getElementById('tl-tip');
      return t.hidden ? null : t.textContent;
    });
    check(tip !== null && /\d\d:\d\d:\d\d\.\d/.test(tip) && /seq \d+/.test(tip),
      `timeline: while scrubbing the tooltip shows time and seq: ${JSON.stringify(tip)}`);
    await page.mouse.up();
    await waitFor(page, n => {
      const s = window.gos.state();
      return s.mode === 'seek' && !s.seekInFlight && s.tokens === n;
    }, N1, `timeline: scrubbed into the gap, the viewer holds the first burst's ${N1} tokens`);
    const seek = await st();
    check(seek.seeksSent >= 1 && seek.seeksSent < 14,
      `timeline: the drag's seeks were coalesced (${seek.seeksSent} seeks for 14 pointer events)`);
    check(await page.evaluate(() => window.gos.token('b0') !== null && window.gos.token('b4') === null),
      'timeline: the first burst is there, the second is not');
    const label = await page.textContent('#tl-time');
    check(label !== 'LIVE' && /\d\d:\d\d:\d\d\.\d/.test(label), `timeline: it shows the time viewed: ${label}`);
    check(/viewing the past/.test(await page.textContent('#conn')), 'timeline: the HUD says it is not live');

    await page.click('#tl-live');
    await waitFor(page, n => {
      const s = window.gos.state();
      return s.mode === 'live' && s.tokens === n;
    }, N1 + N2, 'timeline: live brings back every token');
    await waitFor(page, () => document.getElementById('tl-time').textContent === 'LIVE' &&
      document.getElementById('tl-live').classList.contains('on'), null, 'timeline: LIVE again, button highlighted');

    // Keys: Left steps back into the past, L returns.
    await page.mouse.move(5, 5);
    await page.keyboard.press('ArrowLeft');
    await waitFor(page, () => window.gos.state().mode === 'seek', null, 'timeline: Left seeks back 1%');
    await page.keyboard.press('l');
    await waitFor(page, n => window.gos.state().mode === 'live' && window.gos.state().tokens === n, N1 + N2,
      'timeline: L goes live');

    // Space plays (from the start, when live) and pauses; 0.5x stretches
    // the gap to 3 s, plenty to pause in.
    await page.selectOption('#tl-speed', '0.5');
    await page.keyboard.press(' ');
    await waitFor(page, () => window.gos.state().mode === 'play', null, 'timeline: Space plays');
    await page.keyboard.press(' ');
    await waitFor(page, () => window.gos.state().mode === 'paused', null, 'timeline: Space pauses');
    await waitFor(page, () => /^❚❚ /.test(document.getElementById('tl-time').textContent), null,
      'timeline: the label says paused');
    await page.keyboard.press('L');
    await waitFor(page, n => window.gos.state().mode === 'live' && window.gos.state().tokens === n, N1 + N2,
      'timeline: live after the pause');

    // A replay at 16x runs through the second burst as deltas and ends live.
    await page.selectOption('#tl-speed', '16');
    const before = await st();
    await page.click('#tl-play');
    await waitFor(page, ([b, n]) => {
      const s = window.gos.state();
      return s.snapshotsByMode.play > b.snapshotsByMode.play && s.deltasByMode.play > b.deltasByMode.play &&
        s.snapshotsByMode.live > b.snapshotsByMode.live && s.mode === 'live' && s.tokens === n;
    }, [before, N1 + N2], 'timeline: play at 16x replays by deltas and ends live with every token');

    // save: a plain link to /recording with the download attribute.
    const save = await page.evaluate(() => {
      const a = document.getElementById('tl-save');
      return { href: a.href, download: a.hasAttribute('download') };
    });
    check(save.download && new URL(save.href).pathname === '/recording', `timeline: save links /recording: ${JSON.stringify(save)}`);
    const res = await fetch(save.href);
    if (res.status === 404) {
      console.log('ws_browser: this compositor has no /recording yet: the save link was not followed');
    } else {
      const lines = (await res.text()).split('\n').filter(l => l.includes('"token_activation"'));
      check(res.status === 200 && lines.length === N1 + N2 && lines.every(l => l.includes('"_t":')),
        `timeline: /recording holds the ${N1 + N2} events with their times (${res.status}, ${lines.length} lines)`);
    }
    check(errors.length === 0, `timeline: no console errors: ${JSON.stringify(errors)}`);
  } finally {
    await page.close().catch(() => {});
    const rc = await stopCompositor(c).catch(e => e);
    check(rc === 0, `timeline: the compositor with a journal stops cleanly (${rc})`);
  }
}

// No GPU here: WebGL2 comes from SwiftShader (software), which chromium
// wants named (else a deprecation warning) once --disable-gpu is given.
const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-gpu', '--enable-unsafe-swiftshader', '--disable-quic',
  '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Playwright's screenshots read the WebGL canvas back, which chromium
// reports as a driver performance warning: not an error, not ours.
const benign = t => /GPU stall due to ReadPixels/.test(t);

// The three tokens of the first part, on whatever compositor is running,
// seen through other ways of drawing: WebGL off (a browser launched with
// --disable-webgl: Canvas 2D fallback), ?renderer=canvas, ?protocol=v1.
async function rendererTest(port) {
  const stats = page => page.evaluate(() => window.gosViewer.stats());
  async function look(ctx, query, what, want) {
    const page = await ctx.newPage();
    const errors = [];
    page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', e => errors.push('pageerror: ' + e.message));
    try {
      await page.goto(`http://127.0.0.1:${port}/${query}`);
      await waitFor(page, () => window.gosViewer && window.gosViewer.stats().tokens === 4 &&
        window.gosViewer.stats().firstPictureMs !== null, null, `${what}: the page takes the map's 4 tokens`);
      const st = await stats(page);
      check(st.renderer === want.renderer && (want.protocol ? st.protocol === want.protocol : /^gos\.v[12]$/.test(st.protocol)),
        `${what}: draws with ${want.renderer}, speaks ${want.protocol}: ${JSON.stringify(st)}`);
      await view(page, 200, 0, 0.55);
      for (const id of ['one', 'half', 'unk']) {
        const got = await tokenColor(page, id), wantc = EXPECT[id === 'unk' ? 'unknown' : id];
        check(near(got, wantc, 10), `${what}: token '${id}' in its palette color: got ${got}, want ${wantc.map(Math.round)}`);
      }
      const empty = await pixel(page, 450, 500);
      check(near(empty, BG, 14), `${what}: empty map is background: ${empty}`);
      await view(page, 200, 0, 0.2);
      const dot = await pixel(page, ...(await page.evaluate(() => window.gos.worldToScreen(0, 0))));
      check(near(dot, EXPECT.one, 10), `${what}: zoomed far out, token 'one' is a dot of its color: ${dot}`);
      // Text at a legible zoom: the box holds light pixels (white glyphs on
      // the dark 'unk' gray, 0.6 alpha) beyond its fill color.
      await view(page, 400, 0, 3);
      const [x0, y0] = await page.evaluate(() => { const t = window.gos.token('unk'); return window.gos.worldToScreen(t.l, t.t); });
      const img = decodePNG(await page.screenshot({ clip: { x: Math.round(x0), y: Math.round(y0),
        width: 6 * 9 * 3, height: 18 * 3 } }));
      let light = 0, fill = 0;
      for (let y = 0; y < img.h; y++)
        for (let x = 0; x < img.w; x++) {
          const px = img.at(x, y);
          if (px.every(c => c > 200)) light++;
          else if (near(px, EXPECT.unknown, 12)) fill++;
        }
      check(light > 40 && fill > img.w * img.h / 3,
        `${what}: zoomed in, the gray box holds white text (${light} light pixels, ${fill} of the fill, of ${img.w * img.h})`);
      const s2 = await stats(page);
      check(s2.tokens === 4 && s2.bytesReceived > 200 && s2.firstPictureMs > 0 && s2.firstPictureMs < 15000 &&
        s2.frameMs > 0 && s2.frameMs < 1000, `${what}: stats() are sane: ${JSON.stringify(s2)}`);
      check(errors.filter(e => !benign(e)).length === 0, `${what}: no console errors: ${JSON.stringify(errors)}`);
    } finally {
      await page.close().catch(() => {});
    }
  }
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gos-chromium-nogl-'));
  const noGL = await chromium.launchPersistentContext(userDir, {
    executablePath: '/usr/bin/chromium', headless: true,
    args: CHROMIUM_ARGS.concat(['--disable-webgl', '--disable-3d-apis']),
    viewport: { width: 900, height: 600 },
  });
  try {
    const p = noGL.pages()[0] || await noGL.newPage();
    check(await p.evaluate(() => document.createElement('canvas').getContext('webgl2') === null),
      'a browser with --disable-webgl has no WebGL2');
    await look(noGL, '', 'WebGL off', { renderer: 'canvas', protocol: null });
  } finally {
    await noGL.close().catch(() => {});
    fs.rmSync(userDir, { recursive: true, force: true });
  }
  return look;
}

// gos.v2 against gos.v1 on one real compositor: the page's default
// (gos.v2 when the server speaks it) and ?protocol=v1 look at the same
// place while tokens are added and moved; the gos.v2 page must hold
// exactly the gos.v1 page's tokens that lie in its cell rect, with the same
// fields, and draw the same pixels. Skipped when the server speaks gos.v1
// only.
async function v2Test(ctx, port) {
  const tok = (id, x, y, c, text) => ({ type: 'token_activation', token_id: id, token_text: text || `w${id}`,
    timestamp: 100, position: [x, y], confidence: c, stream: 'grid' });
  const grid = [];
  for (let i = 0; i < 1500; i++)
    grid.push(tok(`g${i}`, -3000 + (i % 60) * 100, -1500 + Math.floor(i / 60) * 120, i % 7 ? (i % 11) / 10 : undefined));
  await feed(grid);
  const pages = {};
  try {
    for (const [name, q] of [['v2', ''], ['v1', '?protocol=v1']]) {
      const page = pages[name] = await ctx.newPage();
      page.errors = [];
      page.on('console', m => { if (m.type() === 'error' || /gos:/.test(m.text())) page.errors.push(m.text()); });
      page.on('pageerror', e => page.errors.push('pageerror: ' + e.message));
      await page.goto(`http://127.0.0.1:${port}/${q}`);
      await waitFor(page, () => window.gosViewer && window.gosViewer.stats().firstPictureMs !== null, null,
        `v2/v1: the ${name} page draws its first picture`);
    }
    const proto = await pages.v2.evaluate(() => window.gosViewer.stats().protocol);
    if (proto !== 'gos.v2') {
      console.log('ws_browser: this compositor speaks gos.v1 only: skipped the gos.v2 against gos.v1 comparison');
      return;
    }
    const health = async () => (await (await fetch(`http://127.0.0.1:${port}/health`)).json()).seq;
    async function same(x, y, zoom, what) {
      for (const p of Object.values(pages)) await view(p, x, y, zoom);
      const seq = await health();
      for (const [name, p] of Object.entries(pages))
        await waitFor(p, s => window.gos.state().seq >= s, seq, `${what}: the ${name} page is at seq ${seq}`);
      await waitFor(pages.v2, () => window.gosViewer.stats().held.cellRect !== null, null, `${what}: gos.v2 holds detail`);
      await pages.v2.waitForTimeout(300);   // the region answering the last viewport
      const held = p => p.evaluate(() => [window.gosViewer.stats().held.cellRect,
        window.gos.tokenIds().map(id => { const t = window.gos.token(id); return [id, t.x, t.y, t.text, t.c, t.stream]; })]);
      const [rect, a] = await held(pages.v2), [, b] = await held(pages.v1);
      const f = v => (v === null ? null : Math.fround(v));
      const key = t => JSON.stringify([t[0], f(t[1]), f(t[2]), t[3], f(t[4]), t[5]]);
      const inRect = t => { const cx = Math.floor(t[1] / 1024), cy = Math.floor(t[2] / 1024);
        return cx >= rect.x0 && cx <= rect.x1 && cy >= rect.y0 && cy <= rect.y1; };
      const want = new Set(b.filter(inRect).map(key)), got = new Set(a.map(key));
      const missing = [...want].filter(k => !got.has(k)), extra = [...got].filter(k => !want.has(k));
      check(want.size > 100 && !missing.length && !extra.length,
        `${what}: gos.v2 holds exactly gos.v1's ${want.size} tokens in its cell rect ${JSON.stringify(rect)} ` +
        `(missing ${missing.slice(0, 3)}, extra ${extra.slice(0, 3)})`);
      // Same picture (right of the HUD).
      for (const p of Object.values(pages)) { await p.evaluate(() => window.gosViewer.redraw()); await p.mouse.move(1, 599); }
      await pages.v2.waitForTimeout(200);
      const clip = { x: 300, y: 0, width: 600, height: 560 };
      const ia = decodePNG(await pages.v2.screenshot({ clip })), ib = decodePNG(await pages.v1.screenshot({ clip }));
      let diff = 0;
      for (let y = 0; y < ia.h; y++) for (let x = 0; x < ia.w; x++) if (!near(ia.at(x, y), ib.at(x, y), 12)) diff++;
      check(diff < ia.w * ia.h / 200, `${what}: both pages draw the same pixels (${diff} of ${ia.w * ia.h} differ)`);
    }
    await same(0, 0, 0.5, 'v2/v1 at the origin');
    // Live: new tokens in view and far away, a token moved out of view, one into it.
    const live = [];
    for (let i = 0; i < 200; i++) live.push(tok(`l${i}`, -800 + (i % 20) * 80, -400 + Math.floor(i / 20) * 70, 0.9));
    live.push(tok('far1', 90000, 0, 0.5), tok('g700', 80000, 500, 0.2), tok('g0', 100, 100, 1.0, 'moved'));
    await feed(live);
    await same(0, 0, 0.5, 'v2/v1 after live changes');
    await same(2500, 1000, 0.5, 'v2/v1 panned');
    for (const [name, p] of Object.entries(pages)) {
      check((await p.evaluate(() => window.gos.state().gaps)) === 0 && (await p.evaluate(() => window.gosViewer.stats().v2Errors)) === 0,
        `v2/v1: the ${name} page saw no gaps and no malformed message`);
      check(p.errors.filter(e => !benign(e)).length === 0, `v2/v1: no console errors on the ${name} page: ${JSON.stringify(p.errors)}`);
    }
  } finally {
    for (const p of Object.values(pages)) await p.close().catch(() => {});
  }
}

async function main() {
  let c = await startCompositor(0);
  const port = c.port;
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gos-chromium-'));
  const ctx = await chromium.launchPersistentContext(userDir, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 900, height: 600 },
  });
  const errors = [];
  try {
    const page = ctx.pages()[0] || await ctx.newPage();
    page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', e => errors.push('pageerror: ' + e.message));
    page.on('requestfailed', r => errors.push('request failed: ' + r.url()));

    const resp = await page.goto(`http://127.0.0.1:${port}/`);
    check(resp && resp.status() === 200, 'the page loads (200)');
    await waitFor(page, () => window.gos && window.gos.state().conn === 'live', null,
      'the page connects and takes its snapshot');
    const first = await page.evaluate(() => window.gosViewer.stats());
    check(first.renderer === 'webgl2', `the page draws with WebGL2 (SwiftShader): ${JSON.stringify(first)}`);

    const reply = await feed([
      { type: 'token_activation', token_id: 'one', token_text: 'hello', timestamp: 1, position: [0, 0], confidence: 1.0, stream: 's1' },
      { type: 'token_activation', token_id: 'half', token_text: 'world', timestamp: 2, position: [200, 0], confidence: 0.5, stream: 's1',
        logprob: -0.69, top_logprobs: [{ token: 'world', logprob: -0.69 }, { token: 'planet', logprob: -1.2 }] },
      { type: 'token_activation', token_id: 'unk', token_text: 'unsure', timestamp: 3, position: [400, 0], stream: 's2' },
      { type: 'neural_state', stream: 's1', state: 'processing', tokens_processed: 2, total_tokens: 10, elapsed_ms: 50 },
    ]);
    check(reply.tokens === 3, `three tokens on the map (${JSON.stringify(reply)})`);
    await waitFor(page, () => window.gos.state().tokens === 3, null, 'the page receives the three tokens');

    // Pixels: zoomed out far enough that no text covers the boxes.
    await view(page, 200, 0, 0.55);
    for (const id of ['one', 'half', 'unknown'].map(k => k === 'unknown' ? 'unk' : k)) {
      const got = await tokenColor(page, id);
      const want = EXPECT[id === 'unk' ? 'unknown' : id];
      check(near(got, want, 10), `token '${id}' is drawn in its palette color: got ${got}, want ${want.map(Math.round)}`);
    }
    // Far out the boxes are a few pixels, written straight into an ImageData:
    // same colors.
    await view(page, 200, 0, 0.2);
    const dot = await pixel(page, ...(await page.evaluate(() => window.gos.worldToScreen(0, 0))));
    check(near(dot, EXPECT.one, 10), `zoomed far out, token 'one' is a dot of its color: ${dot}`);
    await view(page, 200, 0, 0.55);
    const empty = await pixel(page, 450, 500);
    check(near(empty, BG, 14), `empty map is background: ${empty}`);

    // Hover: the tooltip shows the token's text, confidence, stream, alternatives.
    await view(page, 200, 0, 2);
    const [hx, hy] = await page.evaluate(() => window.gos.worldToScreen(200, 0));
    await page.mouse.move(hx, hy);
    await waitFor(page, () => !document.getElementById('tip').hidden, null, 'hovering a token shows a tooltip');
    const tip = await page.textContent('#tip');
    check(tip.includes('"world"') && tip.includes('confidence 0.500') && tip.includes('stream s1') &&
      tip.includes('planet'), `the tooltip has text, confidence, stream, alternatives: ${JSON.stringify(tip)}`);
    const hud = await page.textContent('#hud');
    check(/live/.test(hud) && /3 tokens/.test(hud) && /s1/.test(hud) && /processing 2\/10/.test(hud),
      `the HUD shows state, token count and neural_state: ${JSON.stringify(hud)}`);
    await page.mouse.move(5, 590);
    await waitFor(page, () => document.getElementById('tip').hidden, null, 'the tooltip goes away off the tokens');

    // A failed generation's analytics and error text reach the stream panel.
    await feed([
      { type: 'neural_state', stream: 's2', state: 'error', tokens_processed: 1, ttft_ms: 87,
        model: 'tiny-q4', message: 'upstream: the model crashed (out of memory)' },
    ]);
    await waitFor(page, () => {
      const d = document.querySelector('#streams [data-stream="s2"] .stream-error');
      return d && d.textContent.includes('out of memory');
    }, null, 'the error message of a failed generation shows in the stream panel');
    const panel = await page.textContent('#streams [data-stream="s2"]');
    check(panel.includes('tiny-q4') && panel.includes('ttft 87 ms'),
      `the stream panel shows the model and the time to first token: ${JSON.stringify(panel)}`);
    const s1 = await page.textContent('#streams [data-stream="s1"]');
    check(/p̄ 0\.75 \(min 0\.50\)/.test(s1) && /ppl 1\.99/.test(s1) && /H 0\.6\d/.test(s1),
      `s1's mean/min confidence, perplexity (exp 0.69) and entropy: ${JSON.stringify(s1)}`);
    const bars = await page.$$eval('#streams [data-stream="s1"] .hist i', l => l.length);
    check(bars === 10, `a confidence histogram of ten bars (${bars})`);

    // A shareable view: the URL's fragment carries camera, follow, palette.
    await view(page, 123, 45, 2.5);
    await page.waitForFunction(() => /#x=123\.0&y=45\.0&z=2\.5&follow=0/.test(location.hash), null,
      { timeout: 5000, polling: 50 }).catch(() => {});
    const hash = await page.evaluate(() => location.hash);
    check(/#x=123\.0&y=45\.0&z=2\.5&follow=0&palette=viridis/.test(hash), `the URL carries the view: ${hash}`);
    const shared = await ctx.newPage();
    await shared.goto(`http://127.0.0.1:${port}/#x=200&y=0&z=2&follow=0&palette=red-green`);
    await waitFor(shared, () => window.gos && window.gos.state().conn === 'live', null, 'a shared link connects');
    await shared.waitForTimeout(300);
    const sv = await shared.evaluate(() => Object.assign(window.gos.camera(), { follow: window.gos.state().follow,
      palette: window.gos.state().palette }));
    check(sv.x === 200 && sv.y === 0 && sv.zoom === 2 && sv.follow === false && sv.palette === 'red-green',
      `a link opens the same view: ${JSON.stringify(sv)}`);
    await shared.close();
    // --no-journal: the server never sends a timeline (it would have come
    // right after the snapshot, long before these tokens), so no bar.
    const bar = await page.evaluate(() => ({ hidden: document.getElementById('timeline').hidden,
      timeline: window.gos.state().timeline, mode: window.gos.state().mode }));
    check(bar.hidden && bar.timeline === null && bar.mode === 'live',
      `without a journal the timeline bar stays hidden: ${JSON.stringify(bar)}`);

    check(errors.filter(e => !benign(e)).length === 0, `no console errors while loading and running: ${JSON.stringify(errors)}`);

    // Restart: the page notices, retries with backoff, and shows the new map.
    const rc = await stopCompositor(c);
    check(rc === 0, `compositor stops cleanly (${rc})`);
    await waitFor(page, () => window.gos.state().conn === 'down', null, 'the page notices the server is gone');
    c = await startCompositor(port);
    check(c.port === port, 'the compositor comes back on the same port');
    await feed([{ type: 'token_activation', token_id: 'again', token_text: 'back', timestamp: 4,
      position: [0, 100], confidence: 1.0 }]);
    await waitFor(page, () => window.gos.state().conn === 'live' && window.gos.state().tokens === 1 &&
      window.gos.token('again') !== null, null, 'the page reconnects and shows the new map', 20000);
    await view(page, 0, 100, 0.55);
    const again = await tokenColor(page, 'again');
    check(near(again, EXPECT.one, 10), `the new token is on screen: ${again}`);
    const gone = await page.evaluate(() => window.gos.token('one'));
    check(gone === null, 'tokens of the old map are gone after the fresh snapshot');
    const other = errors.filter(e => !/WebSocket connection to .* failed/.test(e) && !benign(e));
    check(other.length === 0, `only failed reconnect attempts were logged: ${JSON.stringify(other)}`);

    // The first map again, drawn other ways.
    await feed([
      { type: 'token_activation', token_id: 'one', token_text: 'hello', timestamp: 1, position: [0, 0], confidence: 1.0, stream: 's1' },
      { type: 'token_activation', token_id: 'half', token_text: 'world', timestamp: 2, position: [200, 0], confidence: 0.5, stream: 's1' },
      { type: 'token_activation', token_id: 'unk', token_text: 'unsure', timestamp: 3, position: [400, 0], stream: 's2' },
    ]);
    const look = await rendererTest(port);
    await look(ctx, '?renderer=canvas', '?renderer=canvas', { renderer: 'canvas', protocol: null });
    await look(ctx, '?protocol=v1', '?protocol=v1', { renderer: 'webgl2', protocol: 'gos.v1' });
    await look(ctx, '', 'WebGL2 again', { renderer: 'webgl2', protocol: null });
    await v2Test(ctx, port);

    await timelineTest(ctx);
  } finally {
    await ctx.close().catch(() => {});
    await stopCompositor(c).catch(() => {});
    fs.rmSync(userDir, { recursive: true, force: true });
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

main().then(() => {
  console.log(`ws_browser: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}, e => {
  console.error('ws_browser: ' + (e && e.stack || e));
  console.log(`ws_browser: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
