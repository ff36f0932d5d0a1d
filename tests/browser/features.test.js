#!/usr/bin/env node
// The web viewer's color modes, filters, shareable URL and search (issue 13)
// in chromium. Against a real gos-compositor (gos.v2 with WebGL2, gos.v1
// with Canvas 2D): rank mode puts a top-1 token and a "beyond" token at the
// palette's ends, agreement mode draws a group's first divergence in the
// highlight, hiding a stream and narrowing the probability range leave
// background where their tokens were, and the page's URL opens the same
// mode and filters. Search, against a real compositor's search worker and
// against tests/browser/mock_server.js (which also shows the requests the
// page sends): "/" and Enter send the request, matches draw in the
// highlight and the rest dimmed, "k of N",
// Enter / n / N move the camera from match to match, Esc clears, "only
// shown tokens" sends the filter, errors show in the box, and a URL with a
// query searches again on load.
//
// usage: node features.test.js GOS_COMPOSITOR   (run by ctest as ws_browser_features)
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const util = require('./util.js');
const { launch, pixel, BG, blend, EXPECT, near, benign, VIRIDIS_1 } = util;
const mock = require('./mock_server.js');

const COMPOSITOR = process.argv[2];
let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) passed++;
  else { failed++; console.error('FAIL: ' + what); }
  return cond;
}
const VIRIDIS_0 = [0.267004, 0.004874, 0.329415];
const HIGHLIGHT = [255, 64, 217];    // HIGHLIGHT_RGBA (1, 0.25, 0.85) at alpha 1
const RANK_TOP = blend(VIRIDIS_1, 1.0), RANK_BEYOND = blend(VIRIDIS_0, 0.35);
const TOL = 8;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gos-features-'));
const SOCK = path.join(tmp, 'gos.sock'), SEARCH_SOCK = path.join(tmp, 'search.sock');

function startCompositor(sock) {
  return util.startCompositor(COMPOSITOR, ['--headless', '--no-journal', '--socket', sock, '--log-interval', '0',
    '--listen', '127.0.0.1:0', '--tick-ms', '20']);
}
const feed = (lines, sock = SOCK) => util.feedSocket(sock, lines);

async function waitFor(page, fn, arg, what, timeout = 10000) {
  try {
    await page.waitForFunction(fn, arg, { timeout, polling: 50 });
    return check(true, what);
  } catch (e) {
    const st = await page.evaluate(() => window.gos && [window.gos.state(), window.gos.searchState()]).catch(() => null);
    return check(false, `${what} (state: ${JSON.stringify(st)})`);
  }
}
// Until a frame after now is drawn (and composited).
async function settle(page) {
  const f = await page.evaluate(() => { window.gos.redraw(); return window.gos.state().frames; });
  await page.waitForFunction(f => window.gos.state().frames > f, f, { timeout: 10000, polling: 20 });
  await page.waitForTimeout(60);
}
// The median color of three points across a token's box.
async function tokenColor(page, id) {
  const pts = await page.evaluate(id => {
    const t = window.gos.token(id);
    return t ? [0.25, 0.5, 0.75].map(f => window.gos.worldToScreen(t.l + t.W * f, t.y)) : null;
  }, id);
  if (!pts) return [-1, -1, -1];
  const px = [];
  for (const [x, y] of pts) px.push(await pixel(page, x, y));
  return [0, 1, 2].map(i => px.map(p => p[i]).sort((a, b) => a - b)[1]);
}
const show = c => JSON.stringify(c.map(Math.round));

// ---- against the real compositor (zoom 0.5: grid lines every 500 units,
// no text drawn over the boxes)
const tok = (id, text, stream, x, y, conf, ts, alts) => Object.assign({ type: 'token_activation', token_id: id,
  token_text: text, timestamp: ts, stream, position: [x, y], confidence: conf },
alts ? { top_logprobs: alts.map(([token, logprob]) => ({ token, logprob })) } : {});
const MAP = [
  tok('a0', 'alpha', 'a', 1050, 1050, 0.5, 1, [['alpha', -0.1], ['x', -2]]),   // rank 1
  tok('a1', 'bravo', 'a', 1200, 1050, 1.0, 2, [['x', -0.1], ['y', -2]]),       // beyond
  tok('b0', 'charlie', 'b', 1050, 1110, 1.0, 3),                                 // no alternatives
  tok('g10', 'same', 'g:1', 1050, 1170, 0.9, 4), tok('g11', 'left', 'g:1', 1200, 1170, 0.9, 5),
  tok('g20', 'same', 'g:2', 1050, 1230, 0.9, 6), tok('g21', 'right', 'g:2', 1200, 1230, 0.9, 7),
];

async function realTest(ctx, port, label, query) {
  const W = s => `${label}: ${s}`;
  const page = await ctx.newPage();
  const errors = [];
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', e => errors.push('pageerror: ' + e.message));
  try {
    await page.goto(`http://127.0.0.1:${port}/${query}`);
    await waitFor(page, () => window.gos && window.gos.state().conn === 'live', null, W('the page connects'));
    await page.evaluate(() => window.gos.view(1125, 1150, 0.5));   // no text over the boxes
    await waitFor(page, () => ['a0', 'a1', 'b0', 'g11', 'g21'].every(id => window.gos.token(id)), null,
      W('the page holds the tokens'));
    const t = await page.evaluate(() => ['a0', 'a1', 'b0', 'g11'].map(window.gos.token));
    check(t[0].rank === 1 && t[1].rank === -1 && t[2].rank === null && t[3].div === true && t[3].agree === 0.5 &&
      t[0].index === 0 && t[1].index === 1, W(`the tokens carry rank, index, agreement, divergence: ${JSON.stringify(
      t.map(x => [x.rank, x.index, x.agree, x.div]))}`));
    await settle(page);
    let c = await tokenColor(page, 'a0');
    check(near(c, EXPECT.half, TOL), W(`confidence mode: a0 (p 0.5) is viridis(0.5): ${show(c)}`));

    // C cycles: confidence -> logprob -> rank
    await page.keyboard.press('c');
    await page.keyboard.press('c');
    check(await page.evaluate(() => window.gos.colorMode()) === 'rank' &&
      await page.inputValue('#color-mode') === 'rank', W('C C: rank mode, the select says so'));
    await settle(page);
    c = await tokenColor(page, 'a0');
    check(near(c, RANK_TOP, TOL), W(`rank mode: the top-1 token is the palette's top end ${show(c)} ~ ${show(RANK_TOP)}`));
    c = await tokenColor(page, 'a1');
    check(near(c, RANK_BEYOND, TOL), W(`rank mode: the beyond token is the palette's bottom end ${show(c)} ~ ${show(RANK_BEYOND)}`));
    c = await tokenColor(page, 'b0');
    check(near(c, EXPECT.unknown, TOL), W(`rank mode: a token without alternatives is the unknown gray ${show(c)}`));

    await page.selectOption('#color-mode', 'agreement');
    await settle(page);
    c = await tokenColor(page, 'g11');
    check(near(c, HIGHLIGHT, TOL), W(`agreement mode: a group's first divergence is the highlight ${show(c)}`));
    c = await tokenColor(page, 'g10');
    check(near(c, RANK_TOP, TOL), W(`agreement mode: a token all agree on is the top end ${show(c)}`));
    const panel = await page.textContent('#streams');
    check(/group g:1 \(2\)/.test(panel) && /diverges at 1/.test(panel),
      W(`the stream panel shows the group and "diverges at 1": ${panel}`));
    check(/zoomed-out tiles: mean confidence/.test(await page.textContent('#legend')), W('the legend says tiles keep confidence'));

    // filters: hide stream b with its checkbox; narrow the range past a0
    await page.selectOption('#color-mode', 'rank');
    await page.click('#streams input.show[data-stream="b"]');
    await settle(page);
    c = await tokenColor(page, 'b0');
    check(near(c, BG, 4), W(`stream b hidden: its token's pixels are background ${show(c)}`));
    c = await tokenColor(page, 'a1');
    check(near(c, RANK_BEYOND, TOL), W(`stream a still drawn ${show(c)}`));
    await page.evaluate(() => window.gos.setRange(0.6, 1));
    await settle(page);
    c = await tokenColor(page, 'a0');
    check(near(c, BG, 4), W(`p in [0.6, 1]: a0 (p 0.5) is background ${show(c)}`));
    c = await tokenColor(page, 'g10');
    check(!near(c, BG, 4), W(`p in [0.6, 1]: g10 (p 0.9) is drawn ${show(c)}`));
    await page.click('#streams button.solo[data-stream="g:1"]');
    await settle(page);
    c = await tokenColor(page, 'g20');
    check(near(c, BG, 4), W(`solo g:1: g:2's token is background ${show(c)}`));
    await page.click('#streams button.solo[data-stream="g:1"]');   // solo off again
    await settle(page);
    check(!near(await tokenColor(page, 'g20'), BG, 4), W('solo again: every stream shown but the hidden one'));
    const href = await page.evaluate(() => window.gos.exportHref('csv'));
    await page.check('#export-filtered');
    const fhref = await page.getAttribute('#export-csv', 'href');
    check(href === 'export?format=csv' && /min_p=0.6&max_p=1/.test(fhref),
      W(`export links: ${href}, filtered ${fhref}`));

    // the URL opens the same view
    await page.waitForTimeout(400);
    const url = page.url();
    check(/mode=rank/.test(url) && /hide=b/.test(url) && /pmin=0.6/.test(url), W(`the URL carries mode and filters: ${url}`));
    const p2 = await ctx.newPage();
    p2.on('pageerror', e => errors.push('pageerror: ' + e.message));
    await p2.goto(url);
    await waitFor(p2, () => window.gos && window.gos.token('a1') && window.gos.token('b0'), null, W('the link loads'));
    const f = await p2.evaluate(() => [window.gos.colorMode(), window.gos.filters()]);
    check(f[0] === 'rank' && f[1].hidden.join() === 'b' && f[1].pMin === 0.6 && f[1].pMax === 1,
      W(`the link restores mode and filters: ${JSON.stringify(f)}`));
    await settle(p2);
    c = await tokenColor(p2, 'a1');
    check(near(c, RANK_BEYOND, TOL), W(`the link draws in rank mode ${show(c)}`));
    c = await tokenColor(p2, 'b0');
    check(near(c, BG, 4), W(`the link hides stream b ${show(c)}`));
    await p2.close();
    check(errors.filter(e => !benign(e)).length === 0, W(`no console errors: ${JSON.stringify(errors)}`));
  } finally {
    await page.close();
  }
}

// ---- search, against the stand-in server
function words(stream, list, y, conf) {
  let x = 900;
  return list.map((w, i) => {
    const t = { id: `${stream}${i}`, text: w, x: x + w.length * 4.5, y, w: w.length * 9, confidence: conf,
      stream, timestamp: i };
    x += w.length * 9 + 400;
    return t;
  });
}

// s: the mock server, or {port} of a real compositor fed the same words
// (real: the requests the page sends are not seen, an error comes from a
// query over the server's 256-byte limit).
async function searchTest(ctx, s, label, query, real = false) {
  const W = m => `${label}: ${m}`;
  const page = await ctx.newPage();
  const errors = [];
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', e => errors.push('pageerror: ' + e.message));
  const st = () => page.evaluate(() => window.gos.searchState());
  const before = real ? 0 : s.searches().length;
  try {
    await page.goto(`http://127.0.0.1:${s.port}/${query}`);
    await waitFor(page, () => window.gos && window.gos.state().conn === 'live', null, W('the page connects'));
    await page.evaluate(() => window.gos.view(1300, 1100, 0.5));
    await waitFor(page, () => window.gos.token('a0') && window.gos.token('b0'), null, W('the page holds the tokens'));
    await page.keyboard.press('/');
    check(await page.evaluate(() => !document.getElementById('search-box').hidden &&
      document.activeElement.id === 'search'), W('/ opens the search box, focused'));
    await page.keyboard.type('THE');
    await page.keyboard.press('Enter');
    await waitFor(page, () => window.gos.searchState().count === 4, null, W('Enter: 4 matches (case folded)'));
    if (!real) {
      const req = s.searches()[before];
      check(req && req.q === 'THE' && req.limit === 1000 && !('streams' in req) && !('min_p' in req),
        W(`the request: ${JSON.stringify(req)}`));
    }
    let ss = await st();
    check(ss.label === '1 of 4' && ss.i === 0 && ss.highlighted === 4, W(`"1 of 4", four tokens highlighted: ${JSON.stringify(ss)}`));
    let cam = await page.evaluate(() => window.gos.camera());
    const a0 = await page.evaluate(() => window.gos.token('a0'));
    check(Math.abs(cam.x - a0.x) < 1 && Math.abs(cam.y - a0.y) < 1, W(`the camera is on the first match ${JSON.stringify(cam)}`));
    check(cam.zoom >= 1, W(`a jump makes the text legible (zoom ${cam.zoom})`));
    await page.evaluate(() => window.gos.view(1300, 1100, 0.5));
    await settle(page);
    let c = await tokenColor(page, 'a0');
    check(near(c, HIGHLIGHT, TOL), W(`a match draws in the highlight ${show(c)}`));
    const dim = await page.evaluate(() => { const k = window.gos.color(0.8); return [k[0], k[1], k[2], k[3] * 0.25]; });
    c = await tokenColor(page, 'a1');
    check(near(c, blend(dim.slice(0, 3), dim[3]), TOL), W(`the rest is dimmed ${show(c)} ~ ${show(blend(dim.slice(0, 3), dim[3]))}`));

    await page.keyboard.press('Enter');   // next, from the box
    ss = await st();
    cam = await page.evaluate(() => window.gos.camera());
    const a4 = await page.evaluate(() => window.gos.token('a4'));
    check(ss.i === 1 && ss.label === '2 of 4' && Math.abs(cam.x - a4.x) < 1, W(`Enter again: the second match ${JSON.stringify([ss, cam])}`));
    await page.evaluate(() => document.activeElement.blur());
    await page.keyboard.press('n');
    ss = await st();
    check(ss.i === 2, W(`n: the third match (${ss.i})`));
    await page.keyboard.press('Shift+N');
    await page.keyboard.press('Shift+N');
    ss = await st();
    cam = await page.evaluate(() => window.gos.camera());
    check(ss.i === 0 && Math.abs(cam.x - a0.x) < 1, W(`N N: back to the first (${ss.i})`));
    await page.waitForTimeout(400);
    const url = page.url();
    check(/q=THE/.test(url), W(`the URL carries the query: ${url}`));

    await page.keyboard.press('Escape');
    ss = await st();
    check(ss.q === '' && ss.highlighted === 0 && await page.evaluate(() => document.getElementById('search-box').hidden),
      W(`Esc clears the search and closes the box: ${JSON.stringify(ss)}`));
    await settle(page);
    c = await tokenColor(page, 'a0');
    check(!near(c, HIGHLIGHT, 30), W(`cleared: no highlight ${show(c)}`));

    // only shown tokens: stream b hidden
    await page.evaluate(() => window.gos.setShown('b', false));
    await page.keyboard.press('Control+f');
    await page.check('#search-filtered');
    await page.focus('#search');
    await page.keyboard.type('the');
    await page.keyboard.press('Enter');
    await waitFor(page, () => window.gos.searchState().count === 3, null, W('filtered: 3 matches'));
    if (!real) {
      const freq = s.searches()[s.searches().length - 1];
      check(freq.q === 'the' && freq.streams.includes('a') && !freq.streams.includes('b') && freq.min_p === 0 &&
        freq.max_p === 1,
        W(`the filtered request names the shown streams and the range: ${JSON.stringify(freq)}`));
    }

    // an error shows in the box
    await page.fill('#search', real ? 'x'.repeat(300) : 'boom');
    await page.focus('#search');
    await page.keyboard.press('Enter');
    await waitFor(page, real => (real ? /256/ : /too busy/).test(window.gos.searchState().error), real,
      W('an error answer shows in the box'));

    // a link with a query searches on load
    await page.fill('#search', 'cat');
    await page.keyboard.press('Enter');
    await waitFor(page, () => window.gos.searchState().count === 1, null, W('"cat": 1 match'));
    await page.waitForTimeout(400);
    const link = page.url();
    const p2 = await ctx.newPage();
    p2.on('pageerror', e => errors.push('pageerror: ' + e.message));
    const n = real ? 0 : s.searches().length;
    await p2.goto(link);
    await waitFor(p2, () => window.gos && window.gos.searchState().count === 1 && window.gos.searchState().highlighted === 1,
      null, W('the link searches again on load'));
    if (!real) {
      const last = s.searches()[n];
      check(last && last.q === 'cat' && last.streams && last.streams.includes('a') && !last.streams.includes('b'),
        W(`the link's request: ${JSON.stringify(last)}`));
    }
    check(await p2.inputValue('#search') === 'cat', W('the link fills the box'));
    await p2.close();
    check(errors.filter(e => !benign(e)).length === 0, W(`no console errors: ${JSON.stringify(errors)}`));
  } finally {
    await page.close();
  }
}

async function main() {
  const c = await startCompositor(SOCK);
  const cs = await startCompositor(SEARCH_SOCK);
  const browser = await launch();
  const s = await mock.start({
    searchAnswer: m => m.q === 'boom' ? { type: 'error', code: 'busy', message: 'the search worker is too busy' } : null,
  });
  try {
    const r = await feed(MAP);
    check(r.applied === MAP.length && r.rejected === 0, `the map is fed: ${JSON.stringify(r)}`);
    await realTest(browser.ctx, c.port, 'gos.v2 webgl2', '');
    await realTest(browser.ctx, c.port, 'gos.v1 canvas', '?protocol=v1&renderer=canvas');
    const A = words('a', ['the ', 'cat ', 'sat ', 'on ', 'the ', 'mat. ', 'The ', 'end'], 1050, 0.8);
    const B = words('b', ['the ', 'dog'], 1150, 0.8);
    s.add(A);
    s.add(B);
    const asEvents = ws => ws.map(t => ({ type: 'token_activation', token_id: t.id, token_text: t.text,
      stream: t.stream, position: [t.x, t.y], confidence: t.confidence, timestamp: t.timestamp }));
    const fr = await feed(asEvents(A.concat(B)), SEARCH_SOCK);
    check(fr.applied === A.length + B.length && fr.rejected === 0, `the search map is fed: ${JSON.stringify(fr)}`);
    await searchTest(browser.ctx, { port: cs.port }, 'real search gos.v2 webgl2', '', true);
    await searchTest(browser.ctx, { port: cs.port }, 'real search gos.v1 canvas', '?protocol=v1&renderer=canvas', true);
    s.tick();
    const tick = setInterval(s.tick, 30);
    try {
      await searchTest(browser.ctx, s, 'search gos.v2 webgl2', '');
      await searchTest(browser.ctx, s, 'search gos.v1 canvas', '?protocol=v1&renderer=canvas');
    } finally {
      clearInterval(tick);
    }
  } finally {
    await browser.close();
    await s.close();
    for (const x of [c, cs]) {
      x.p.removeAllListeners('exit');
      x.p.kill('SIGTERM');
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`ws_browser_features: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main().catch(e => {
  console.error('ws_browser_features: ' + (e && e.stack || e));
  console.log(`ws_browser_features: ${passed} passed, ${failed + 1} failed`);
  process.exit(1);
});
