// gos web viewer: the WebGL2 renderer (window.gosGLRenderer), loaded before
// viewer.js, which falls back to its Canvas 2D renderer when there is no
// WebGL2 (or with ?renderer=canvas). It draws what viewer.js describes in
// each frame (see draw()): the same picture as the Canvas 2D path, the way
// the native renderer does it: one record per token, expanded to a quad on
// the GPU.
//
// Records live in float textures (RGBA32F, two texels a record); a draw
// of n quads is drawArrays(TRIANGLES, 6·first, 6·n) with no vertex
// attributes, and the vertex shader reads record gl_VertexID / 6 and puts
// corner gl_VertexID % 6 ("vertex pulling"). That is instancing without
// the instancing API, which software GL (chromium's SwiftShader, what runs
// without a GPU) executes an order of magnitude slower per instance
// (measured: 50k instanced quads 1.5 s, pulled 0.22 s); on a GPU both are
// the same.
//
// - tokens: an arena of blocks, SUB x SUB per cell (a cell = CELL world
//   units square, viewer.js's index), each with its tokens' bounding box;
//   a cell that changed is rewritten (the texture rows it touches are
//   uploaded), nothing else, so panning and zooming upload nothing. Few
//   visible blocks: one draw each; many: one draw of the whole arena
//   (unused records are degenerate). Positions go as (cell, offset in cell)
//   so that far from the origin a token still lands on the right pixel.
//   Colors: the palette (52 entries, a uniform array) interpolated per
//   record, as the shader of the native renderer does, from the value of
//   the viewer's color mode that the record carries (viewer.js computes it:
//   a mode change rewrites the records once). Filters cost no upload: a
//   record also carries its confidence and its stream's number, and the
//   shader drops what the stream mask (a small texture) or the probability
//   range (uniforms) hides; search matches are a bit in the record, the
//   dimming of the rest a uniform.
// - far out the same records are pixel-snapped boxes at least 1 px (the
//   Canvas path's "dots").
// - density tiles (gos.v2): a quad per tile, palette(mean confidence),
//   alpha from the count; each layer has a hole (a world rect drawn by a
//   finer layer) discarded in the fragment shader.
// - text: the glyphs of the monospace font drawn into a canvas once (more
//   as new characters appear), uploaded as a texture, a quad per glyph;
//   glyph records are built per cell, lazily, when text is legible, and
//   uploaded when the visible cells change.
'use strict';

(function () {
  const EMPTY = -2;         // a token record's confidence when unused: not drawn
  const SUB = 4;            // a cell's tokens go in SUB x SUB blocks (by their box's top-left)
  const BLOCKS_MAX = 400;   // visible blocks above this: draw the whole arena at once

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

  // Records in a float texture: `cap` records of 8 floats (2 texels), row
  // by row, TEX_W texels a row, mirrored in a Float32Array. Changed records
  // are marked and their rows uploaded before drawing.
  function RecordTexture(gl, unit, texW) {
    const tex = gl.createTexture();
    let cap = 0, rows = 0, data = new Float32Array(0);
    let lo = Infinity, hi = 0;           // records to upload
    const perRow = texW / 2;
    function alloc(records, keep) {
      const r = Math.max(1, Math.ceil(records / perRow));
      const d = new Float32Array(r * texW * 4);
      if (keep) d.set(data.subarray(0, Math.min(data.length, d.length)));
      data = d; rows = r; cap = r * perRow;
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, tex);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.RGBA32F, texW, rows, 0, gl.RGBA, gl.FLOAT, data);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
      lo = Infinity; hi = 0;
    }
    return {
      get data() { return data; },
      get cap() { return cap; },
      // Room for n records; growing keeps what was written (and uploads all).
      ensure(n, keep) { if (n > cap) { let c = Math.max(cap, perRow); while (c < n) c *= 2; alloc(c, keep); } },
      touch(first, n) { if (first < lo) lo = first; if (first + n > hi) hi = first + n; },
      upload() {
        if (hi <= lo) return;
        const r0 = Math.floor(lo / perRow), r1 = Math.ceil(hi / perRow);
        gl.activeTexture(gl.TEXTURE0 + unit);
        gl.bindTexture(gl.TEXTURE_2D, tex);
        gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, r0, texW, r1 - r0, gl.RGBA, gl.FLOAT, data, r0 * texW * 4);
        lo = Infinity; hi = 0;
      },
      bind() { gl.activeTexture(gl.TEXTURE0 + unit); gl.bindTexture(gl.TEXTURE_2D, tex); },
    };
  }

  // The shaders' shared parts: a record, the quad's corner, the palette.
  const PULL_GLSL = `
uniform highp sampler2D u_rec;
uniform int u_texW;
vec4 rec0, rec1;
vec2 corner;
void pull() {
  int id = gl_VertexID / 6, k = gl_VertexID - id * 6, t = id * 2;
  rec0 = texelFetch(u_rec, ivec2(t % u_texW, t / u_texW), 0);
  rec1 = texelFetch(u_rec, ivec2((t + 1) % u_texW, (t + 1) / u_texW), 0);
  corner = vec2(k == 1 || k == 4 || k == 5 ? 1.0 : 0.0, k == 2 || k == 3 || k == 5 ? 1.0 : 0.0);
}
vec4 clip(vec2 p, vec2 size) { return vec4(p.x / size.x * 2.0 - 1.0, 1.0 - p.y / size.y * 2.0, 0.0, 1.0); }`;
  const PALETTE_GLSL = (K) => `
uniform vec3 u_pal[${K.PALETTE_N}];
vec4 palette(float c) {
  if (c < -0.5) return vec4(${K.UNKNOWN.map(v => v.toFixed(4)).join(', ')});
  float t = min(c, 1.0), x = t * ${(K.PALETTE_N - 1).toFixed(1)};
  int k = min(int(floor(x)), ${K.PALETTE_N - 2});
  return vec4(mix(u_pal[k], u_pal[k + 1], x - float(k)), ${K.ALPHA_MIN.toFixed(4)} + ${K.ALPHA_RANGE.toFixed(4)} * t);
}`;
  // The filters: a stream mask (one byte a stream number, 1 shown, in rows
  // of u_maskW) and a probability range (u_narrow: confidences outside
  // [u_pmin, u_pmax], and unknown ones, hide).
  const FILTER_GLSL = `
uniform highp sampler2D u_mask;
uniform int u_maskW;
uniform bool u_narrow;
uniform float u_pmin, u_pmax;
bool hidden(float sn, float conf) {
  int s = int(sn);
  if (texelFetch(u_mask, ivec2(s % u_maskW, s / u_maskW), 0).r < 0.5) return true;
  return u_narrow && (conf < -0.5 || conf < u_pmin || conf > u_pmax);
}`;
  const MASK_W = 1024;
  const FS_COLOR = `#version 300 es
precision mediump float;
in vec4 v_col;
out vec4 o;
void main() { o = v_col; }`;

  function create(canvas, gl, K) {
    const CELL = K.CELL;
    const TEX_W = Math.min(4096, gl.getParameter(gl.MAX_TEXTURE_SIZE));
    const tokVS = `#version 300 es
${PULL_GLSL}
${FILTER_GLSL}
// rec0: cell x, cell y, offset x, offset y (world); rec1: width (world),
// the mode's value (-1 unknown, -2 unused), confidence (-1 unknown),
// stream number * 4 + 1 (highlighted by the mode) + 2 (a search match)
uniform vec2 u_camCell, u_camOff, u_size; // camera cell and offset; viewport (device px)
uniform float u_zoom, u_gap, u_th;        // device px per world unit; gap, height (device px)
uniform bool u_snap, u_search;            // u_search: a search has matches (dim the rest)
out vec4 v_col;
${PALETTE_GLSL(K)}
const vec4 HIGHLIGHT = vec4(${K.HIGHLIGHT_RGBA.map(v => v.toFixed(4)).join(', ')});
void main() {
  pull();
  float sn = floor(rec1.w / 4.0), fl = rec1.w - sn * 4.0;
  if (rec1.y < -1.5 || hidden(sn, rec1.z)) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); v_col = vec4(0.0); return; }
  vec2 rel = (rec0.xy - u_camCell) * ${CELL.toFixed(1)} + (rec0.zw - u_camOff);
  vec2 p0 = rel * u_zoom + 0.5 * u_size;
  vec2 sz = vec2(max(1.0, rec1.x * u_zoom - u_gap), u_th);
  if (u_snap) { p0 = floor(p0 + 0.5); sz = max(vec2(1.0), floor(vec2(rec1.x * u_zoom, u_th) + 0.5)); }
  gl_Position = clip(p0 + corner * sz, u_size);
  vec4 c = mod(fl, 2.0) > 0.5 ? HIGHLIGHT : palette(rec1.y);
  if (u_search) c = fl > 1.5 ? HIGHLIGHT : vec4(c.rgb, c.a * ${K.DIM_ALPHA.toFixed(4)});
  v_col = c;
}`;
    const tileVS = `#version 300 es
${PULL_GLSL}
// rec0: tx, ty, size (world), confidence (-1 unknown); rec1.x: alpha factor
uniform vec2 u_camHi, u_camLo, u_size;
uniform float u_zoom;
out vec4 v_col;
${PALETTE_GLSL(K)}
void main() {
  pull();
  vec2 rel = (rec0.xy * rec0.z - u_camHi) - u_camLo;
  gl_Position = clip(rel * u_zoom + 0.5 * u_size + corner * max(1.0, rec0.z * u_zoom), u_size);
  vec4 c = palette(rec0.w);
  v_col = vec4(c.rgb, c.a * rec1.x);
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
layout(location = 0) in vec2 a_p;        // device px
uniform vec2 u_size;
uniform vec4 u_color;
out vec4 v_col;
void main() {
  gl_Position = vec4(a_p.x / u_size.x * 2.0 - 1.0, 1.0 - a_p.y / u_size.y * 2.0, 0.0, 1.0);
  v_col = u_color;
}`;
    const glyphVS = `#version 300 es
${PULL_GLSL}
${FILTER_GLSL}
// rec0: cell x, cell y, offset x, offset y (the glyph box's top-left);
// rec1: glyph index, dark, x scale, its token's stream number * 4 (+ the
// confidence + 1 in [1, 2], 0 unknown: the filters)
uniform vec2 u_camCell, u_camOff, u_size, u_box, u_grid; // glyph box (world), atlas columns/rows
uniform float u_zoom;
out vec2 v_uv;
out vec4 v_col;
void main() {
  pull();
  float sn = floor(rec1.w / 4.0), cf = rec1.w - sn * 4.0 - 1.0;
  if (hidden(sn, cf)) { gl_Position = vec4(2.0, 2.0, 2.0, 1.0); v_uv = vec2(0.0); v_col = vec4(0.0); return; }
  vec2 rel = (rec0.xy - u_camCell) * ${CELL.toFixed(1)} + (rec0.zw - u_camOff);
  gl_Position = clip(rel * u_zoom + 0.5 * u_size + corner * u_box * vec2(rec1.z, 1.0) * u_zoom, u_size);
  float col = mod(rec1.x, u_grid.x), row = floor(rec1.x / u_grid.x);
  v_uv = (vec2(col, row) + corner) / u_grid;
  v_col = rec1.y > 0.5 ? vec4(0.067, 0.067, 0.067, 1.0) : vec4(1.0);
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
    // Texture units: 0 tokens, 1 tiles, 2 glyph records, 3 the glyph atlas.
    const toks = RecordTexture(gl, 0, TEX_W), tileRecs = RecordTexture(gl, 1, TEX_W),
      glyphRecs = RecordTexture(gl, 2, TEX_W);
    for (const [p, unit] of [[P.tok, 0], [P.tile, 1], [P.glyph, 2]]) {
      gl.useProgram(p.p);
      gl.uniform1i(p.u.u_rec, unit);
      gl.uniform1i(p.u.u_texW, TEX_W);
    }
    gl.useProgram(P.glyph.p);
    gl.uniform1i(P.glyph.u.u_atlas, 3);
    for (const p of [P.tok, P.glyph]) {
      gl.useProgram(p.p);
      gl.uniform1i(p.u.u_mask, 4);
      gl.uniform1i(p.u.u_maskW, MASK_W);
    }
    // Texture unit 4: the stream mask, uploaded when it changes.
    const maskTex = gl.createTexture();
    let maskSeen = -1, maskRows = 0;
    function uploadMask(mask, n, version) {
      if (version === maskSeen) return;
      const rows = Math.max(1, Math.ceil(Math.max(n, 1) / MASK_W));
      const data = new Uint8Array(rows * MASK_W);
      data.set(mask.subarray(0, Math.min(mask.length, data.length)));
      for (let i = 0; i < data.length; i++) data[i] = data[i] ? 255 : 0;
      gl.activeTexture(gl.TEXTURE4);
      gl.bindTexture(gl.TEXTURE_2D, maskTex);
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
      if (rows !== maskRows) {
        gl.texImage2D(gl.TEXTURE_2D, 0, gl.R8, MASK_W, rows, 0, gl.RED, gl.UNSIGNED_BYTE, data);
        gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.NEAREST);
        gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.NEAREST);
        maskRows = rows;
      } else gl.texSubImage2D(gl.TEXTURE_2D, 0, 0, 0, MASK_W, rows, gl.RED, gl.UNSIGNED_BYTE, data);
      gl.pixelStorei(gl.UNPACK_ALIGNMENT, 4);
      maskSeen = version;
    }
    function filterUniforms(p, f) {
      gl.uniform1i(p.u.u_narrow, f.narrowed ? 1 : 0);
      gl.uniform1f(p.u.u_pmin, f.pMin);
      gl.uniform1f(p.u.u_pmax, f.pMax);
    }

    const vao = gl.createVertexArray();   // no attributes: everything is pulled
    const rectVao = gl.createVertexArray();
    const rectBuf = gl.createBuffer();
    gl.bindVertexArray(rectVao);
    gl.bindBuffer(gl.ARRAY_BUFFER, rectBuf);
    gl.enableVertexAttribArray(0);
    gl.vertexAttribPointer(0, 2, gl.FLOAT, false, 0, 0);
    gl.bindVertexArray(null);

    gl.enable(gl.BLEND);
    gl.blendFunc(gl.SRC_ALPHA, gl.ONE_MINUS_SRC_ALPHA);
    gl.disable(gl.DEPTH_TEST);

    // ---- the token arena: blocks of power-of-two capacity per cell.
    let arenaTop = 0, tokensHeld = 0;
    const free = [];            // free[log2 cap] = [first record]
    const cellBlocks = new Map();   // cell key -> [{off, cap, n, list, x0, y0, x1, y1, id, glyphs}]
    let blockCount = 0, blockSerial = 0;

    function markEmpty(first, n) {
      const d = toks.data;
      for (let i = first; i < first + n; i++) d[i * 8 + 5] = EMPTY;
    }
    function alloc(n) {
      let k = 4;
      while ((1 << k) < n) k++;
      const list = free[k];
      if (list && list.length) return { off: list.pop(), cap: 1 << k };
      const before = toks.cap;
      toks.ensure(arenaTop + (1 << k), true);
      if (toks.cap > before) { markEmpty(before, toks.cap - before); toks.touch(0, toks.cap); }
      const off = arenaTop;
      arenaTop += 1 << k;
      return { off, cap: 1 << k };
    }
    function release(b) {
      markEmpty(b.off, b.cap);
      toks.touch(b.off, b.cap);
      const k = Math.log2(b.cap);
      (free[k] || (free[k] = [])).push(b.off);
    }
    function writeBlock(list, cx, cy) {
      const a = alloc(list.length);
      const b = { off: a.off, cap: a.cap, n: list.length, list, x0: Infinity, y0: Infinity, x1: -Infinity,
        y1: -Infinity, id: ++blockSerial, glyphs: null, cx, cy };
      const d = toks.data, ox = cx * CELL, oy = cy * CELL;
      let p = b.off * 8;
      for (let i = 0; i < list.length; i++) {
        const t = list[i];
        d[p] = cx; d[p + 1] = cy; d[p + 2] = t.l - ox; d[p + 3] = t.t - oy;
        d[p + 4] = t.W; d[p + 5] = t.v !== null ? t.v : -1; d[p + 6] = t.c !== null && t.c >= 0 ? t.c : -1;
        d[p + 7] = t.sn * 4 + (t.hl ? 1 : 0) + (t.m ? 2 : 0);
        p += 8;
        if (t.l < b.x0) b.x0 = t.l;
        if (t.t < b.y0) b.y0 = t.t;
        if (t.l + t.W > b.x1) b.x1 = t.l + t.W;
        if (t.t + K.TOKEN_H > b.y1) b.y1 = t.t + K.TOKEN_H;
      }
      toks.touch(b.off, list.length);
      tokensHeld += b.n;
      blockCount++;
      return b;
    }
    function writeCell(key, list, cx, cy) {
      const old = cellBlocks.get(key);
      if (old) {
        for (const b of old) { release(b); tokensHeld -= b.n; blockCount--; }
        cellBlocks.delete(key);
      }
      if (!list || !list.length) return;
      const ox = cx * CELL, oy = cy * CELL, sub = CELL / SUB, parts = [];
      for (const t of list) {
        const k = Math.min(SUB - 1, Math.floor((t.t - oy) / sub)) * SUB + Math.min(SUB - 1, Math.floor((t.l - ox) / sub));
        (parts[k] || (parts[k] = [])).push(t);
      }
      const bl = [];
      for (const part of parts) if (part) bl.push(writeBlock(part, cx, cy));
      cellBlocks.set(key, bl);
    }
    function resetArena() {
      cellBlocks.clear();
      free.length = 0;
      arenaTop = 0;
      tokensHeld = 0;
      blockCount = 0;
      markEmpty(0, toks.cap);
      toks.touch(0, toks.cap);
      glyphKey = '';
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
    const glyphs = new Map();   // character -> index
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
    function blockGlyphs(b) {
      if (b.glyphs) return b.glyphs;
      let n = 0;
      for (const t of b.list) n += t.text.length;
      const out = new Float32Array(n * 8);
      let p = 0;
      const cx = b.cx, cy = b.cy, ox = cx * CELL, oy = cy * CELL;
      for (const t of b.list) {
        if (!t.text) continue;
        const chars = Array.from(t.text);
        // Squeezed to fit the box, as fillText's maxWidth does.
        const room = t.W - 3, sx = Math.min(1, room / (chars.length * ADV_W));
        if (!(sx > 0)) continue;
        const dark = t.b === K.HL || t.b < K.BUCKETS && t.b > K.BUCKETS * 0.7 ? 1 : 0;
        const x0 = t.l + 2 - ox - PAD * S * sx, y0 = t.y - oy - BOX_H / 2 * S;
        const filt = t.sn * 4 + (t.c !== null && t.c >= 0 ? 1 + Math.min(t.c, 1) : 0);
        for (let i = 0; i < chars.length; i++) {
          if (chars[i] === ' ') continue;
          out[p] = cx; out[p + 1] = cy; out[p + 2] = x0 + i * ADV_W * sx; out[p + 3] = y0;
          out[p + 4] = glyph(chars[i]); out[p + 5] = dark; out[p + 6] = sx; out[p + 7] = filt;
          p += 8;
        }
      }
      return (b.glyphs = out.subarray(0, p));
    }
    let glyphKey = '', glyphN = 0;

    // ---- tiles: rebuilt when the viewer's tile layers change.
    let tileVersion = -1, tileLayers = [];
    function buildTiles(layers) {
      let n = 0;
      for (const L of layers) n += L.tiles.length;
      tileRecs.ensure(n, false);
      const a = tileRecs.data;
      let p = 0;
      tileLayers = layers.map(L => {
        const first = p / 8, size = L.size;
        for (const t of L.tiles) {
          a[p] = t.tx; a[p + 1] = t.ty; a[p + 2] = size; a[p + 3] = t.c !== null && t.c >= 0 ? t.c : -1;
          a[p + 4] = t.a;
          p += 8;
        }
        return { first, n: L.tiles.length, hole: L.hole };
      });
      tileRecs.touch(0, p / 8);
      tileRecs.upload();
    }

    function rects(list, rgba, W, H) {   // [x, y, w, h, ...] device px
      if (!list.length) return;
      const v = new Float32Array(list.length * 3);
      for (let i = 0, p = 0; i < list.length; i += 4, p += 12) {
        const x0 = list[i], y0 = list[i + 1], x1 = x0 + list[i + 2], y1 = y0 + list[i + 3];
        v.set([x0, y0, x1, y0, x0, y1, x0, y1, x1, y0, x1, y1], p);
      }
      gl.useProgram(P.rect.p);
      gl.uniform2f(P.rect.u.u_size, W, H);
      gl.uniform4f(P.rect.u.u_color, rgba[0], rgba[1], rgba[2], rgba[3]);
      gl.bindVertexArray(rectVao);
      gl.bindBuffer(gl.ARRAY_BUFFER, rectBuf);
      gl.bufferData(gl.ARRAY_BUFFER, v, gl.STREAM_DRAW);
      gl.drawArrays(gl.TRIANGLES, 0, v.length / 2);
      gl.bindVertexArray(vao);
    }

    let paletteSet = null;
    function setPaletteUniforms(lut) {
      const flat = new Float32Array(K.PALETTE_N * 3);
      lut.forEach((c, i) => flat.set(c, i * 3));
      for (const p of [P.tok, P.tile]) { gl.useProgram(p.p); gl.uniform3fv(p.u.u_pal, flat); }
      paletteSet = lut;
    }

    // f: the frame viewer.js describes: {W, H (device px), dpr, zoom, camX,
    // camY, cells (Map key -> tokens: {l, t, W, v, c, sn, hl, m, text, b}),
    // cellXY(key) -> [cx, cy], changed (Set of cell keys, or null), reset,
    // lut, mask (Uint8Array by stream number, 1 shown), maskVersion, streams
    // (how many numbers), narrowed, pMin, pMax, search, tiles ({version, layers:
    // [{size, tiles: [{tx, ty, c, a}], hole: world rect | null}]}), hover
    // ({l, t, W} | null), grid(line), visible(fn), dots, gap, text}.
    // Returns what it drew: {drawn}.
    function draw(f) {
      const W = f.W, H = f.H, zd = f.zoom * f.dpr;
      if (f.reset || f.changed && f.changed.size > f.cells.size / 2) {
        // Everything, or most of it (a snapshot): write all cells afresh.
        resetArena();
        let n = 0;
        for (const list of f.cells.values()) n += list.length;
        toks.ensure(n * 1.5 + 64, false);   // room for the blocks' slack
        markEmpty(0, toks.cap);
        toks.touch(0, toks.cap);
        for (const [key, list] of f.cells) { const [cx, cy] = f.cellXY(key); writeCell(key, list, cx, cy); }
      } else if (f.changed) {
        for (const key of f.changed) { const [cx, cy] = f.cellXY(key); writeCell(key, f.cells.get(key), cx, cy); }
      }
      toks.upload();
      if (paletteSet !== f.lut) setPaletteUniforms(f.lut);
      uploadMask(f.mask, f.streams, f.maskVersion);

      gl.viewport(0, 0, W, H);
      gl.clearColor(K.BG[0] / 255, K.BG[1] / 255, K.BG[2] / 255, 1);
      gl.clear(gl.COLOR_BUFFER_BIT);
      gl.bindVertexArray(vao);

      // Grid lines (1 css px).
      const grid = [], lw = f.dpr >= 1 ? Math.round(f.dpr) : 1;
      f.grid((v, p) => {
        const d = Math.round(p * f.dpr);
        if (v) grid.push(d, 0, lw, H); else grid.push(0, d, W, lw);
      });
      rects(grid, K.GRID.map(c => c / 255).concat([1]), W, H);

      // Tiles, coarse layer first; each skips its hole.
      if (f.tiles.version !== tileVersion) { buildTiles(f.tiles.layers); tileVersion = f.tiles.version; }
      if (tileLayers.length) {
        gl.useProgram(P.tile.p);
        tileRecs.bind();
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
          gl.drawArrays(gl.TRIANGLES, L.first * 6, L.n * 6);
        }
      }

      // Tokens.
      let drawn = 0;
      const camCX = Math.floor(f.camX / CELL), camCY = Math.floor(f.camY / CELL);
      if (tokensHeld) {
        gl.useProgram(P.tok.p);
        toks.bind();
        gl.uniform2f(P.tok.u.u_camCell, camCX, camCY);
        gl.uniform2f(P.tok.u.u_camOff, f.camX - camCX * CELL, f.camY - camCY * CELL);
        gl.uniform2f(P.tok.u.u_size, W, H);
        gl.uniform1f(P.tok.u.u_zoom, zd);
        gl.uniform1f(P.tok.u.u_gap, f.gap * f.dpr);
        gl.uniform1f(P.tok.u.u_th, f.dots ? Math.max(1, Math.round(K.TOKEN_H * zd)) : Math.max(1, K.TOKEN_H * zd));
        gl.uniform1i(P.tok.u.u_snap, f.dots ? 1 : 0);
        gl.uniform1i(P.tok.u.u_search, f.search ? 1 : 0);
        filterUniforms(P.tok, f);
        // The blocks that meet the screen (world rect), from the cells that may.
        const wx0 = f.camX - W / 2 / zd, wx1 = f.camX + W / 2 / zd, wy0 = f.camY - H / 2 / zd, wy1 = f.camY + H / 2 / zd;
        const vis = [];
        let visN = 0;
        f.visible(key => {
          const bl = cellBlocks.get(key);
          if (bl) for (const b of bl) if (b.x0 <= wx1 && b.x1 >= wx0 && b.y0 <= wy1 && b.y1 >= wy0) { vis.push(b); visN += b.n; }
          return vis.length <= BLOCKS_MAX;
        });
        if (vis.length > BLOCKS_MAX) {
          gl.drawArrays(gl.TRIANGLES, 0, arenaTop * 6);
          drawn = tokensHeld;
        } else {
          for (const b of vis) gl.drawArrays(gl.TRIANGLES, b.off * 6, b.n * 6);
          drawn = visN;
        }

        // Text, once a character is legible.
        if (f.text && vis.length <= BLOCKS_MAX) {
          const id = vis.map(b => b.id).join(',');
          if (id !== glyphKey) {   // other blocks in view (or rewritten ones): their glyphs, one upload
            const parts = vis.map(blockGlyphs);
            let n = 0;
            for (const a of parts) n += a.length;
            glyphRecs.ensure(n / 8, false);
            let p = 0;
            for (const a of parts) { glyphRecs.data.set(a, p); p += a.length; }
            glyphRecs.touch(0, n / 8);
            glyphRecs.upload();
            glyphN = n / 8;
            glyphKey = id;
          }
          if (atlasDirty) {
            gl.activeTexture(gl.TEXTURE3);
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
            glyphRecs.bind();
            gl.activeTexture(gl.TEXTURE3);
            gl.bindTexture(gl.TEXTURE_2D, atlasTex);
            gl.uniform2f(P.glyph.u.u_camCell, camCX, camCY);
            gl.uniform2f(P.glyph.u.u_camOff, f.camX - camCX * CELL, f.camY - camCY * CELL);
            gl.uniform2f(P.glyph.u.u_size, W, H);
            gl.uniform2f(P.glyph.u.u_box, BOX_W * S, BOX_H * S);
            gl.uniform2f(P.glyph.u.u_grid, COLS, ROWS);
            gl.uniform1f(P.glyph.u.u_zoom, zd);
            filterUniforms(P.glyph, f);
            gl.drawArrays(gl.TRIANGLES, 0, glyphN * 6);
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
      arena: () => ({ records: arenaTop, capacity: toks.cap, cells: cellBlocks.size, blocks: blockCount,
        tokens: tokensHeld }),
    };
  }

  window.gosGLRenderer = { create };
})();
