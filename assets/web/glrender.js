// gos web viewer: the WebGL2 renderer (window.gosGLRenderer), loaded before
// viewer.js, which falls back to its Canvas 2D renderer when there is no
// WebGL2 (or with ?renderer=canvas). It draws what viewer.js describes in
// each frame (see draw()): the same picture as the Canvas 2D path, with
// the native renderer's technique:
//
// - tokens: one instance per token (a unit quad stretched in the vertex
//   shader), colored from the palette (a uniform array: the same 52-entry
//   ramp, interpolated per instance). Instances live in one GPU buffer, an
//   arena of per-cell blocks (a cell = CELL world units square): a cell that
//   changed is rewritten in place (bufferSubData of its block), nothing else
//   is touched, so panning and zooming upload nothing. Few visible cells:
//   one draw per cell; many: one draw of the whole arena (empty slots are
//   degenerate). Positions go as (cell, offset in cell) so that far from
//   the origin a token still lands on the right pixel.
// - far out the same instances are pixel-snapped boxes at least 1 px (the
//   Canvas path's "dots").
// - density tiles (gos.v2): an instanced quad per tile, palette(mean
//   confidence), alpha from the count; each layer has a hole (a world rect
//   drawn by a finer layer) discarded in the fragment shader.
// - text: the glyphs of the monospace font drawn into a canvas once (more
//   as new characters appear), uploaded as a texture, one instanced quad
//   per glyph; glyph instances are built per cell, lazily, when text is
//   legible, and uploaded when the visible cells change.
'use strict';

(function () {
  const TOK_F = 6;          // floats per token instance: cellX, cellY, offX, offY, W, conf
  const TILE_F = 5;         // tx, ty, size, conf, alpha factor
  const GLYPH_F = 7;        // cellX, cellY, offX, offY, glyph, dark, x scale
  const EMPTY = -2;         // conf of an unused arena slot: not drawn
  const PER_CELL_MAX = 160; // visible cells above this: draw the whole arena at once

  function compile(gl, type, src) {
    const s = gl.createShader(type);
    gl.shaderSource(s, src);
    gl.compileShader(s);
    if (!gl.getShaderParameter(s, gl.COMPILE_STATUS)) throw new Error('shader: ' + gl.getShaderInfoLog(s));
    return s;
  }
  function program(gl, vs, fs) {
    const p = gl.createProgram();
    gl.attachShader(p, compile(gl, gl.VERTEX_SHADER, vs));
    gl.attachShader(p, compile(gl, gl.FRAGMENT_SHADER, fs));
    gl.linkProgram(p);
    if (!gl.getProgramParameter(p, gl.LINK_STATUS)) throw new Error('program: ' + gl.getProgramInfoLog(p));
    const u = {};
    const n = gl.getProgramParameter(p, gl.ACTIVE_UNIFORMS);
    for (let i = 0; i < n; i++) {
      const name = gl.getActiveUniform(p, i).name.replace(/\[0\]$/, '');
      u[name] = gl.getUniformLocation(p, name);
    }
    return { p, u };
  }

  // The palette lookup, shared by tokens and tiles: c < -0.5 unknown gray.
  const PALETTE_GLSL = (K) => `
uniform vec3 u_pal[${K.PALETTE_N}];
vec4 palette(float c) {
  if (c < -0.5) return vec4(${K.UNKNOWN.map(v => v.toFixed(4)).join(', ')});
  float t = min(c, 1.0), x = t * ${(K.PALETTE_N - 1).toFixed(1)};
  int k = min(int(floor(x)), ${K.PALETTE_N - 2});
  return vec4(mix(u_pal[k], u_pal[k + 1], x - float(k)), ${K.ALPHA_MIN.toFixed(4)} + ${K.ALPHA_RANGE.toFixed(4)} * t);
}`;
  const FS_COLOR = `#version 300 es
precision mediump float;
in vec4 v_col;
out vec4 o;
void main() { o = v_col; }`;

  function create(canvas, gl, K) {
    const CELL = K.CELL;
    const tokVS = `#version 300 es
layout(location = 0) in vec2 a_corner;
layout(location = 1) in vec4 a_pos;      // cell x, cell y, offset x, offset y (world)
layout(location = 2) in vec2 a_wc;       // width (world), confidence (-1 unknown, -2 none)
uniform vec2 u_camCell, u_camOff, u_size; // camera cell and offset; viewport (device px)
uniform float u_zoom, u_gap, u_th;        // device px per world unit; gap, height (device px)
uniform bool u_snap;
out vec4 v_col;
${PALETTE_GLSL(K)}
void main() {
  if (a_wc.y < -1.5) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); v_col = vec4(0.0); return; }
  vec2 rel = (a_pos.xy - u_camCell) * ${CELL.toFixed(1)} + (a_pos.zw - u_camOff);
  vec2 p0 = rel * u_zoom + 0.5 * u_size;
  vec2 sz = vec2(max(1.0, a_wc.x * u_zoom - u_gap), u_th);
  if (u_snap) { p0 = floor(p0 + 0.5); sz = max(vec2(1.0), floor(vec2(a_wc.x * u_zoom, u_th) + 0.5)); }
  vec2 p = p0 + a_corner * sz;
  gl_Position = vec4(p.x / u_size.x * 2.0 - 1.0, 1.0 - p.y / u_size.y * 2.0, 0.0, 1.0);
  v_col = palette(a_wc.y);
}`;
    const tileVS = `#version 300 es
layout(location = 0) in vec2 a_corner;
layout(location = 1) in vec3 a_tile;     // tx, ty, size (world)
layout(location = 2) in vec2 a_ca;       // confidence (-1 unknown), alpha factor
uniform vec2 u_camHi, u_camLo, u_size;
uniform float u_zoom;
out vec4 v_col;
${PALETTE_GLSL(K)}
void main() {
  vec2 rel = (a_tile.xy * a_tile.z - u_camHi) - u_camLo;
  vec2 p = rel * u_zoom + 0.5 * u_size + a_corner * max(1.0, a_tile.z * u_zoom);
  gl_Position = vec4(p.x / u_size.x * 2.0 - 1.0, 1.0 - p.y / u_size.y * 2.0, 0.0, 1.0);
  vec4 c = palette(a_ca.x);
  v_col = vec4(c.rgb, c.a * a_ca.y);
}`;
    const tileFS = `#version 300 es
precision highp float;
in vec4 v_col;
uniform vec4 u_hole;    // device px, top-left origin: x0, y0, x1, y1 (x1 < x0: none)
uniform float u_height;
out vec4 o;
void main() {
  vec2 p = vec2(gl_FragCoord.x, u_height - gl_FragCoord.y);
  if (p.x >= u_hole.x && p.x < u_hole.z && p.y >= u_hole.y && p.y < u_hole.w) discard;
  o = v_col;
}`;
    const rectVS = `#version 300 es
layout(location = 0) in vec2 a_corner;
layout(location = 1) in vec4 a_rect;     // x, y, w, h (device px)
uniform vec2 u_size;
uniform vec4 u_color;
out vec4 v_col;
void main() {
  vec2 p = a_rect.xy + a_corner * a_rect.zw;
  gl_Position = vec4(p.x / u_size.x * 2.0 - 1.0, 1.0 - p.y / u_size.y * 2.0, 0.0, 1.0);
  v_col = u_color;
}`;
    const glyphVS = `#version 300 es
layout(location = 0) in vec2 a_corner;
layout(location = 1) in vec4 a_pos;      // cell x, cell y, offset x, offset y (glyph box's top-left)
layout(location = 2) in vec3 a_g;        // glyph index, dark, x scale
uniform vec2 u_camCell, u_camOff, u_size, u_box, u_grid; // glyph box (world), atlas columns/rows
uniform float u_zoom;
out vec2 v_uv;
out vec4 v_col;
void main() {
  vec2 rel = (a_pos.xy - u_camCell) * ${CELL.toFixed(1)} + (a_pos.zw - u_camOff);
  vec2 p = rel * u_zoom + 0.5 * u_size + a_corner * u_box * vec2(a_g.z, 1.0) * u_zoom;
  gl_Position = vec4(p.x / u_size.x * 2.0 - 1.0, 1.0 - p.y / u_size.y * 2.0, 0.0, 1.0);
  float col = mod(a_g.x, u_grid.x), row = floor(a_g.x / u_grid.x);
  v_uv = (vec2(col, row) + a_corner) / u_grid;
  v_col = a_g.y > 0.5 ? vec4(0.067, 0.067, 0.067, 1.0) : vec4(1.0);
}`;
    const glyphFS = `#version 300 es
precision mediump float;
in vec2 v_uv;
in vec4 v_col;
uniform sampler2D u_atlas;
out vec4 o;
void main() { o = vec4(v_col.rgb, v_col.a * texture(u_atlas, v_uv).a); }`;

    const P = {
      tok: program(gl, tokVS, FS_COLOR), tile: program(gl, tileVS, tileFS),
      rect: program(gl, rectVS, FS_COLOR), glyph: program(gl, glyphVS, glyphFS),
    };

    // One VAO; per draw, the instance attributes point into a buffer.
    const vao = gl.createVertexArray();
    gl.bindVertexArray(vao);
    const quad = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, quad);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([0, 0, 1, 0, 0, 1, 1, 1]), gl.STATIC_DRAW);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    gl.enableVertexAttribArray(1);
    gl.vertexAttribDivisor(1, 1);
    gl.enableVertexAttribArray(2);
    gl.vertexAttribDivisor(2, 1);
    function instances(buf, floats, n1, n2, firstInstance) {
      gl.bindBuffer(gl.ARRAY_BUFFER, buf);
      const stride = floats * 4, off = firstInstance * stride;
      gl.vertexAttribPointer(1, n1, gl.FLOAT, false, stride, off);
      if (n2) gl.vertexAttribPointer(2, n2, gl.FLOAT, false, stride, off + n1 * 4);
    }

    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.disable(gl.DEPTH_TEST);

    // ---- the token arena: blocks of power-of-two capacity per cell.
    let arena = new Float32Array(0), arenaCap = 0, arenaTop = 0;  // instances
    const tokBuf = gl.createBuffer();
    const free = [];            // free[log2 cap] = [offsets]
    const blocks = new Map();   // cell key -> {off, cap, n, cx, cy}
    let tokensHeld = 0;

    function growArena(need) {
      let cap = Math.max(1024, arenaCap);
      while (cap < need) cap *= 2;
      if (cap === arenaCap) return;
      const a = new Float32Array(cap * TOK_F);
      a.set(arena.subarray(0, arenaTop * TOK_F));
      for (let i = arenaTop; i < cap; i++) a[i * TOK_F + 5] = EMPTY;
      arena = a;
      arenaCap = cap;
      gl.bindBuffer(gl.ARRAY_BUFFER, tokBuf);
      gl.bufferData(gl.ARRAY_BUFFER, arena, gl.DYNAMIC_DRAW);   // everything, once per doubling
      upload.lo = Infinity; upload.hi = 0;
    }
    const upload = { lo: Infinity, hi: 0 };   // instances to upload before drawing
    function touch(off, n) {
      if (off < upload.lo) upload.lo = off;
      if (off + n > upload.hi) upload.hi = off + n;
    }
    function alloc(n) {
      let k = 4;
      while ((1 << k) < n) k++;
      const list = free[k];
      if (list && list.length) return { off: list.pop(), cap: 1 << k };
      growArena(arenaTop + (1 << k));
      const off = arenaTop;
      arenaTop += 1 << k;
      return { off, cap: 1 << k };
    }
    function release(b) {
      for (let i = b.off; i < b.off + b.cap; i++) arena[i * TOK_F + 5] = EMPTY;
      touch(b.off, b.cap);
      const k = Math.log2(b.cap);
      (free[k] || (free[k] = [])).push(b.off);
    }
    function writeCell(key, list, cx, cy) {
      let b = blocks.get(key);
      if (b) tokensHeld -= b.n;
      if (!list || !list.length) {
        if (b) { release(b); blocks.delete(key); }
        glyphCache.delete(key);
        return;
      }
      if (!b || b.cap < list.length || b.cap > 4 * list.length && b.cap > 16) {
        if (b) release(b);
        const a = alloc(list.length);
        b = { off: a.off, cap: a.cap, n: 0, cx, cy };
        blocks.set(key, b);
      }
      const ox = cx * CELL, oy = cy * CELL;
      let p = b.off * TOK_F;
      for (let i = 0; i < list.length; i++) {
        const t = list[i];
        arena[p] = cx; arena[p + 1] = cy; arena[p + 2] = t.l - ox; arena[p + 3] = t.t - oy;
        arena[p + 4] = t.W; arena[p + 5] = t.c !== null && t.c >= 0 ? t.c : -1;
        p += TOK_F;
      }
      for (let i = list.length; i < b.n; i++) arena[(b.off + i) * TOK_F + 5] = EMPTY;
      touch(b.off, Math.max(b.n, list.length));
      b.n = list.length;
      tokensHeld += b.n;
      glyphCache.delete(key);
    }
    function resetArena() {
      blocks.clear();
      free.length = 0;
      arenaTop = 0;
      tokensHeld = 0;
      arena.fill(0);
      for (let i = 0; i < arenaCap; i++) arena[i * TOK_F + 5] = EMPTY;
      touch(0, arenaCap);
      glyphCache.clear();
      glyphKey = '';
    }
    function flushUpload() {
      if (upload.hi <= upload.lo) return;
      gl.bindBuffer(gl.ARRAY_BUFFER, tokBuf);
      gl.bufferSubData(gl.ARRAY_BUFFER, upload.lo * TOK_F * 4, arena, upload.lo * TOK_F, (upload.hi - upload.lo) * TOK_F);
      upload.lo = Infinity; upload.hi = 0;
    }

    // ---- glyph atlas: F px glyphs in a grid of BOX_W x BOX_H cells.
    const F = 32, PAD = 4;
    const FONT = `${F}px ui-monospace, "DejaVu Sans Mono", monospace`;
    const atlas = document.createElement('canvas');
    const actx = atlas.getContext('2d');
    actx.font = FONT;
    const ADV = actx.measureText('M').width || F * 0.6;       // atlas px per character
    const BOX_W = Math.ceil(ADV) + 2 * PAD, BOX_H = Math.ceil(F * 1.25) + 2 * PAD;
    const COLS = Math.floor(2048 / BOX_W), ROWS = Math.floor(1024 / BOX_H);
    atlas.width = COLS * BOX_W; atlas.height = ROWS * BOX_H;
    actx.font = FONT;
    actx.textBaseline = 'middle';
    actx.fillStyle = '#ffffff';
    const glyphs = new Map();   // code point -> index
    let atlasDirty = true;
    const atlasTex = gl.createTexture();
    function glyph(ch) {
      let g = glyphs.get(ch);
      if (g !== undefined) return g;
      if (glyphs.size >= COLS * ROWS) return glyphs.get('?');   // full: a stand-in
      g = glyphs.size;
      glyphs.set(ch, g);
      const x = (g % COLS) * BOX_W, y = Math.floor(g / COLS) * BOX_H;
      actx.fillText(ch, x + PAD, y + BOX_H / 2, ADV);
      atlasDirty = true;
      return g;
    }
    for (let c = 32; c < 127; c++) glyph(String.fromCharCode(c));
    // World units: the Canvas path's font is 14 units tall, text from 2 units in.
    const S = 14 / F, ADV_W = ADV * S;
    const glyphCache = new Map();   // cell key -> Float32Array of glyph instances
    function cellGlyphs(key, list, cx, cy) {
      let g = glyphCache.get(key);
      if (g) return g;
      let n = 0;
      for (const t of list) n += t.text.length;
      const out = new Float32Array(n * GLYPH_F);
      let p = 0;
      const ox = cx * CELL, oy = cy * CELL;
      for (const t of list) {
        if (!t.text) continue;
        const chars = Array.from(t.text);
        // Squeezed to fit the box, as fillText's maxWidth does.
        const room = t.W - 3, sx = Math.min(1, room / (chars.length * ADV_W));
        if (!(sx > 0)) continue;
        const dark = t.b < K.BUCKETS && t.b > K.BUCKETS * 0.7 ? 1 : 0;
        const x0 = t.l + 2 - ox - PAD * S * sx, y0 = t.y - oy - BOX_H / 2 * S;
        for (let i = 0; i < chars.length; i++) {
          if (chars[i] === ' ') continue;
          out[p] = cx; out[p + 1] = cy; out[p + 2] = x0 + i * ADV_W * sx; out[p + 3] = y0;
          out[p + 4] = glyph(chars[i]); out[p + 5] = dark; out[p + 6] = sx;
          p += GLYPH_F;
        }
      }
      g = out.subarray(0, p);
      glyphCache.set(key, g);
      return g;
    }
    const glyphBuf = gl.createBuffer();
    let glyphKey = '', glyphN = 0;

    // ---- tiles: rebuilt when the viewer's tile layers change.
    const tileBuf = gl.createBuffer();
    let tileVersion = -1, tileLayers = [];
    function buildTiles(layers) {
      let n = 0;
      for (const L of layers) n += L.tiles.length;
      const a = new Float32Array(n * TILE_F);
      let p = 0;
      tileLayers = layers.map(L => {
        const first = p / TILE_F, size = L.size;
        for (const t of L.tiles) {
          a[p] = t.tx; a[p + 1] = t.ty; a[p + 2] = size; a[p + 3] = t.c !== null && t.c >= 0 ? t.c : -1; a[p + 4] = t.a;
          p += TILE_F;
        }
        return { first, n: L.tiles.length, hole: L.hole };
      });
      gl.bindBuffer(gl.ARRAY_BUFFER, tileBuf);
      gl.bufferData(gl.ARRAY_BUFFER, a, gl.DYNAMIC_DRAW);
    }

    const rectBuf = gl.createBuffer();
    function rects(list, rgba, W, H) {
      if (!list.length) return;
      gl.useProgram(P.rect.p);
      gl.uniform2f(P.rect.u.u_size, W, H);
      gl.uniform4f(P.rect.u.u_color, rgba[0], rgba[1], rgba[2], rgba[3]);
      gl.bindBuffer(gl.ARRAY_BUFFER, rectBuf);
      gl.bufferData(gl.ARRAY_BUFFER, new Float32Array(list), gl.STREAM_DRAW);
      instances(rectBuf, 4, 4, 0, 0);
      gl.vertexAttribDivisor(2, 0);
      gl.disableVertexAttribArray(2);
      gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, list.length / 4);
      gl.enableVertexAttribArray(2);
      gl.vertexAttribDivisor(2, 1);
    }

    let paletteSet = null;
    function setPaletteUniforms(lut) {
      const flat = new Float32Array(K.PALETTE_N * 3);
      lut.forEach((c, i) => flat.set(c, i * 3));
      for (const p of [P.tok, P.tile]) { gl.useProgram(p.p); gl.uniform3fv(p.u.u_pal, flat); }
      paletteSet = lut;
    }

    // f: the frame viewer.js describes: {W, H (device px), dpr, zoom, camX,
    // camY, cells (Map key -> tokens), cellXY(key) -> [cx, cy], changed
    // (Set of cell keys, or null), reset, lut, tiles ({version, layers:
    // [{size, tiles: [{tx, ty, c, a}], hole: world rect | null}]}), hover
    // ({l, t, W} | null), grid(line), visible(fn), dots, gap, text}.
    // Returns what it drew: {drawn}.
    function draw(f) {
      const W = f.W, H = f.H, zd = f.zoom * f.dpr;
      if (f.reset) resetArena();
      if (f.reset || f.changed && f.changed.size > f.cells.size / 2) {
        // Many cells at once (a snapshot): write them all.
        if (!f.reset) { resetArena(); }
        for (const [key, list] of f.cells) { const [cx, cy] = f.cellXY(key); writeCell(key, list, cx, cy); }
      } else if (f.changed) {
        for (const key of f.changed) { const [cx, cy] = f.cellXY(key); writeCell(key, f.cells.get(key), cx, cy); }
      }
      flushUpload();
      if (paletteSet !== f.lut) setPaletteUniforms(f.lut);

      gl.viewport(0, 0, W, H);
      gl.clearColor(K.BG[0] / 255, K.BG[1] / 255, K.BG[2] / 255, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.bindVertexArray(vao);

      // Grid lines (1 css px).
      const grid = [];
      f.grid((v, p) => {
        const d = Math.round(p * f.dpr);
        if (v) grid.push(d, 0, f.dpr >= 1 ? Math.round(f.dpr) : 1, H); else grid.push(0, d, W, f.dpr >= 1 ? Math.round(f.dpr) : 1);
      });
      rects(grid, K.GRID.map(c => c / 255).concat([1]), W, H);

      // Tiles, coarse layer first; each skips its hole.
      if (f.tiles.version !== tileVersion) { buildTiles(f.tiles.layers); tileVersion = f.tiles.version; }
      if (tileLayers.length) {
        gl.useProgram(P.tile.p);
        const hx = Math.fround(f.camX), hy = Math.fround(f.camY);
        gl.uniform2f(P.tile.u.u_camHi, hx, hy);
        gl.uniform2f(P.tile.u.u_camLo, f.camX - hx, f.camY - hy);
        gl.uniform2f(P.tile.u.u_size, W, H);
        gl.uniform1f(P.tile.u.u_zoom, zd);
        gl.uniform1f(P.tile.u.u_height, H);
        for (const L of tileLayers) {
          if (!L.n) continue;
          const h = L.hole;
          if (h) gl.uniform4f(P.tile.u.u_hole, (h.x0 - f.camX) * zd + W / 2, (h.y0 - f.camY) * zd + H / 2,
            (h.x1 - f.camX) * zd + W / 2, (h.y1 - f.camY) * zd + H / 2);
          else gl.uniform4f(P.tile.u.u_hole, 1, 1, 0, 0);
          instances(tileBuf, TILE_F, 3, 2, L.first);
          gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, L.n);
        }
      }

      // Tokens.
      let drawn = 0;
      const camCX = Math.floor(f.camX / CELL), camCY = Math.floor(f.camY / CELL);
      if (tokensHeld) {
        gl.useProgram(P.tok.p);
        gl.uniform2f(P.tok.u.u_camCell, camCX, camCY);
        gl.uniform2f(P.tok.u.u_camOff, f.camX - camCX * CELL, f.camY - camCY * CELL);
        gl.uniform2f(P.tok.u.u_size, W, H);
        gl.uniform1f(P.tok.u.u_zoom, zd);
        gl.uniform1f(P.tok.u.u_gap, f.gap * f.dpr);
        gl.uniform1f(P.tok.u.u_th, f.dots ? Math.max(1, Math.round(K.TOKEN_H * zd)) : Math.max(1, K.TOKEN_H * zd));
        gl.uniform1i(P.tok.u.u_snap, f.dots ? 1 : 0);
        const vis = [];
        let visN = 0;
        f.visible(key => {
          const b = blocks.get(key);
          if (b) { vis.push(b); visN += b.n; }
          return vis.length <= PER_CELL_MAX;
        });
        if (vis.length > PER_CELL_MAX) {
          instances(tokBuf, TOK_F, 4, 2, 0);
          gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, arenaTop);
          drawn = tokensHeld;
        } else {
          for (const b of vis) {
            instances(tokBuf, TOK_F, 4, 2, b.off);
            gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, b.n);
          }
          drawn = visN;
        }

        // Text, once a character is legible.
        if (f.text) {
          const keys = [];
          f.visible(key => { if (blocks.has(key)) keys.push(key); return true; });
          const id = keys.join(',');
          let stale = id !== glyphKey;
          for (const k of keys) if (!glyphCache.has(k)) stale = true;
          if (stale) {
            const parts = keys.map(k => { const [cx, cy] = f.cellXY(k); return cellGlyphs(k, f.cells.get(k), cx, cy); });
            let n = 0;
            for (const a of parts) n += a.length;
            const all = new Float32Array(n);
            let p = 0;
            for (const a of parts) { all.set(a, p); p += a.length; }
            gl.bindBuffer(gl.ARRAY_BUFFER, glyphBuf);
            gl.bufferData(gl.ARRAY_BUFFER, all, gl.DYNAMIC_DRAW);
            glyphN = n / GLYPH_F;
            glyphKey = id;
          }
          if (atlasDirty) {
            gl.bindTexture(gl.TEXTURE_2D, atlasTex);
            gl.pixelStorei(gl.UNPACK_PREMULTIPLY_ALPHA_WEBGL, false);
            gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA, gl.RGBA, gl.UNSIGNED_BYTE, atlas);
            gl.generateMipmap(gl.TEXTURE_2D);
            gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR_MIPMAP_LINEAR);
            gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
            gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
            gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
            atlasDirty = false;
          }
          if (glyphN) {
            gl.useProgram(P.glyph.p);
            gl.activeTexture(gl.TEXTURE0);
            gl.bindTexture(gl.TEXTURE_2D, atlasTex);
            gl.uniform1i(P.glyph.u.u_atlas, 0);
            gl.uniform2f(P.glyph.u.u_camCell, camCX, camCY);
            gl.uniform2f(P.glyph.u.u_camOff, f.camX - camCX * CELL, f.camY - camCY * CELL);
            gl.uniform2f(P.glyph.u.u_size, W, H);
            gl.uniform2f(P.glyph.u.u_box, BOX_W * S, BOX_H * S);
            gl.uniform2f(P.glyph.u.u_grid, COLS, ROWS);
            gl.uniform1f(P.glyph.u.u_zoom, zd);
            instances(glyphBuf, GLYPH_F, 4, 3, 0);
            gl.drawArraysInstanced(gl.TRIANGLE_STRIP, 0, 4, glyphN);
          }
        }
      }

      // Hover outline: 1.5 css px, around the box.
      if (f.hover) {
        const t = f.hover, lw = 1.5 * f.dpr;
        const x0 = (t.l - f.camX) * zd + W / 2 - f.dpr, y0 = (t.t - f.camY) * zd + H / 2 - f.dpr;
        const w = t.W * zd + 2 * f.dpr, h = Math.max(f.dpr, K.TOKEN_H * zd) + 2 * f.dpr;
        rects([x0 - lw / 2, y0 - lw / 2, w + lw, lw, x0 - lw / 2, y0 + h - lw / 2, w + lw, lw,
          x0 - lw / 2, y0 - lw / 2, lw, h + lw, x0 + w - lw / 2, y0 - lw / 2, lw, h + lw], [1, 1, 1, 1], W, H);
      }
      return { drawn };
    }

    return {
      name: 'webgl2', draw,
      glyphCount: () => glyphs.size,
      arena: () => ({ instances: arenaTop, capacity: arenaCap, cells: blocks.size, tokens: tokensHeld }),
    };
  }

  window.gosGLRenderer = { create };
})();
