// Helpers of the browser tests and tools (v2_viewer.test.js, frametime.js,
// latejoin.js): how chromium is launched here, screenshot pixels, palette
// colors. (viewer.test.js keeps its own copies.)
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const zlib = require('zlib');

function playwright() {
  try {
    return require('playwright-core');
  } catch (e) {
    console.error('playwright-core is missing: run tools/setup.sh (npm install in tests/browser)');
    process.exit(1);
  }
}

// No GPU here: WebGL2 comes from SwiftShader (software), which chromium
// wants named (else a deprecation warning) once --disable-gpu is given.
// GOS_CHROMIUM_GPU=1 leaves the GPU on (a machine with one).
const CHROMIUM = process.env.GOS_CHROMIUM || '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--no-sandbox', '--headless', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync',
  '--enable-unsafe-swiftshader'].concat(process.env.GOS_CHROMIUM_GPU === '1' ? [] : ['--disable-gpu']);

// opts: more of playwright's context options (ignoreHTTPSErrors for a
// server with a certificate a test made).
async function launch(extraArgs = [], viewport = { width: 900, height: 600 }, opts = {}) {
  const { chromium } = playwright();
  const userDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gos-chromium-'));
  const ctx = await chromium.launchPersistentContext(userDir, Object.assign({
    executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS.concat(extraArgs), viewport,
  }, opts));
  const close = async () => {
    await ctx.close().catch(() => {});
    fs.rmSync(userDir, { recursive: true, force: true });
  };
  return { ctx, close };
}

// A screenshot's pixels: {w, h, at(x, y) -> [r, g, b]} (8-bit RGB or RGBA,
// the five PNG row filters undone).
function decodePNG(png) {
  let off = 8, w = 0, h = 0, ch = 3;
  const idat = [];
  while (off < png.length) {
    const len = png.readUInt32BE(off), type = png.toString('ascii', off + 4, off + 8);
    const data = png.subarray(off + 8, off + 8 + len);
    if (type === 'IHDR') {
      w = data.readUInt32BE(0); h = data.readUInt32BE(4); ch = data[9] === 6 ? 4 : 3;
      if (data[8] !== 8 || (data[9] !== 2 && data[9] !== 6)) throw new Error('PNG: not 8-bit RGB(A)');
    }
    if (type === 'IDAT') idat.push(data);
    off += 12 + len;
  }
  const raw = zlib.inflateSync(Buffer.concat(idat)), stride = w * ch, out = Buffer.alloc(h * stride);
  for (let y = 0; y < h; y++) {
    const f = raw[y * (stride + 1)], src = y * (stride + 1) + 1, dst = y * stride;
    for (let i = 0; i < stride; i++) {
      const a = i >= ch ? out[dst + i - ch] : 0, b = y ? out[dst - stride + i] : 0;
      const c = i >= ch && y ? out[dst - stride + i - ch] : 0;
      let v = raw[src + i];
      if (f === 1) v += a;
      else if (f === 2) v += b;
      else if (f === 3) v += (a + b) >> 1;
      else if (f === 4) {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      out[dst + i] = v & 255;
    }
  }
  return { w, h, at: (x, y) => [0, 1, 2].map(k => out[y * stride + x * ch + k]) };
}

async function pixel(page, x, y) {
  const png = await page.screenshot({ clip: { x: Math.round(x), y: Math.round(y), width: 1, height: 1 } });
  return decodePNG(png).at(0, 0);
}

// The palette (shaders/gos_palette.h), blended over the page background.
const BG = [16, 16, 20];
function blend(rgb, a) { return rgb.map((c, i) => c * 255 * a + BG[i] * (1 - a)); }
const VIRIDIS_1 = [0.993248, 0.906157, 0.143936], VIRIDIS_HALF = [0.128283, 0.565109, 0.550773];
const EXPECT = {
  one: blend(VIRIDIS_1, 0.35 + 0.65 * 1.0),
  half: blend(VIRIDIS_HALF, 0.35 + 0.65 * 0.5),
  unknown: blend([0.6, 0.6, 0.6], 0.6),
};
function near(got, want, tol) { return got.every((c, i) => Math.abs(c - want[i]) <= tol); }

// Playwright's screenshots read the WebGL canvas back, which chromium
// reports as a driver performance warning: not an error, not ours.
const benign = t => /GPU stall due to ReadPixels/.test(t);

// A gos-compositor started with args; resolves with {p, port, stderr()}
// once it prints its viewer's URL (http or https).
function startCompositor(binary, args) {
  const { spawn } = require('child_process');
  return new Promise((resolve, reject) => {
    const p = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    const timer = setTimeout(() => reject(new Error('compositor did not start: ' + err)), 15000);
    p.stderr.on('data', d => {
      err += d;
      const m = /web viewer at https?:\/\/127\.0\.0\.1:(\d+)\//.exec(err);
      if (m) { clearTimeout(timer); resolve({ p, port: Number(m[1]), stderr: () => err }); }
    });
    p.on('exit', code => reject(new Error(`compositor exited ${code}: ${err}`)));
  });
}

// Sends JSON lines (objects) and a sync barrier to a compositor's socket;
// resolves with the sync reply.
function feedSocket(sock, lines) {
  const net = require('net');
  return new Promise((resolve, reject) => {
    const s = net.createConnection(sock);
    let buf = '';
    s.on('error', reject);
    s.on('data', d => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const m = JSON.parse(buf.slice(0, i));
        buf = buf.slice(i + 1);
        if (m.type === 'sync') { s.end(); resolve(m); }
      }
    });
    s.write(lines.map(l => JSON.stringify(l)).join('\n') + '\n{"type":"sync"}\n');
  });
}

module.exports = { playwright, launch, CHROMIUM, CHROMIUM_ARGS, decodePNG, pixel, BG, blend, EXPECT, near, benign,
  VIRIDIS_1, VIRIDIS_HALF, startCompositor, feedSocket };
