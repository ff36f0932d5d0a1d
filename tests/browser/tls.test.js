#!/usr/bin/env node
// The web viewer over TLS in chromium: a gos-compositor started with
// --tls-cert/--tls-key (a certificate made here by openssl; the browser
// is told to accept it), the page loaded from https://, its WebSocket
// opened on wss:// (the page builds the URL from location), and every
// token fed reaching the viewer, with gos.v2 (WebGL2) and gos.v1.
//
// usage: node tls.test.js GOS_COMPOSITOR   (run by ctest as ws_browser_tls)
'use strict';

const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');
const util = require('./util.js');
const { launch } = util;

const COMPOSITOR = process.argv[2];
let passed = 0, failed = 0;
function check(cond, what) {
  if (cond) passed++;
  else { failed++; console.error('FAIL: ' + what); }
  return cond;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gos-tls-browser-'));
const SOCK = path.join(tmp, 'gos.sock'), CERT = path.join(tmp, 'c.pem'), KEY = path.join(tmp, 'k.pem');
execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
  '-nodes', '-days', '2', '-subj', '/CN=localhost',
  '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1', '-keyout', KEY, '-out', CERT],
{ stdio: 'ignore' });

function startCompositor() {
  return util.startCompositor(COMPOSITOR, ['--headless', '--no-journal', '--socket', SOCK, '--log-interval', '0',
    '--listen', '127.0.0.1:0', '--tick-ms', '20', '--tls-cert', CERT, '--tls-key', KEY]);
}
const feed = lines => util.feedSocket(SOCK, lines);
const tok = i => ({ type: 'token_activation', token_id: 't' + i, token_text: 'w' + i,
  timestamp: 1700000000 + i, stream: 's' + (i % 3), confidence: (i % 10) / 10 });

async function viewerTest(ctx, port, label, query, total) {
  const page = await ctx.newPage();
  const errors = [], sockets = [];
  page.on('console', m => { if (m.type() === 'error') errors.push(m.text()); });
  page.on('pageerror', e => errors.push('pageerror: ' + e.message));
  page.on('websocket', ws => sockets.push(ws.url()));
  try {
    const resp = await page.goto(`https://127.0.0.1:${port}/${query}`);
    check(resp && resp.status() === 200, `${label}: the page loads over https (${resp && resp.status()})`);
    try {
      await page.waitForFunction(n => window.gos && window.gos.state().conn === 'live' &&
        window.gos.state().tokens === n, total, { timeout: 20000, polling: 50 });
      check(true, `${label}: the viewer is live with all ${total} tokens`);
    } catch (e) {
      const st = await page.evaluate(() => window.gos && window.gos.state()).catch(() => null);
      check(false, `${label}: the viewer is live with all ${total} tokens (state ${JSON.stringify(st)})`);
    }
    check(sockets.length >= 1 && sockets.every(u => u.startsWith(`wss://127.0.0.1:${port}/ws`)),
      `${label}: the page's WebSocket is wss:// (${sockets})`);
    check(errors.length === 0, `${label}: no console errors (${errors.join(' | ')})`);
  } finally {
    await page.close();
  }
}

(async () => {
  let comp = null, browser = null;
  try {
    comp = await startCompositor();
    await feed(Array.from({ length: 200 }, (_, i) => tok(i)));
    browser = await launch([], { width: 900, height: 600 }, { ignoreHTTPSErrors: true });
    await viewerTest(browser.ctx, comp.port, 'gos.v2', '', 200);
    await feed(Array.from({ length: 50 }, (_, i) => tok(200 + i)));
    await viewerTest(browser.ctx, comp.port, 'gos.v1', '?protocol=v1', 250);
  } catch (e) {
    check(false, 'the test ran: ' + (e.stack || e));
  } finally {
    if (browser) await browser.close();
    if (comp) {
      const exited = new Promise(r => comp.p.on('exit', code => r(code)));
      comp.p.kill('SIGTERM');
      check(await exited === 0, 'the compositor exits 0 on SIGTERM');
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  console.log(`ws_browser_tls: ${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})();
