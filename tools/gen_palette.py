#!/usr/bin/env python3
"""Generates shaders/gos_palette.h: the confidence color ramps shared by the
token projection shader (GLSL) and its CPU reference (C).

    python3 tools/gen_palette.py > shaders/gos_palette.h

Both languages include the same file (the table itself reaches the shader as
a buffer that compute/gos_compute.c fills from it), so they cannot drift apart. Every
number is written as a float literal with 9 significant digits and an `f`
suffix: C and GLSL then both read back exactly the same 32-bit float.

Palettes (sRGB-encoded, 52 entries each, linearly interpolated at run time):
- viridis: every 5th entry of matplotlib's 256-entry viridis table (CC0, by
  Stefan van der Walt and Nathaniel Smith); linear interpolation between them
  stays within 0.0025 (0.62/255) of the full table.
- red-green: red -> amber -> green, interpolated in OKLab (Bjorn Ottosson's
  perceptual space) so that equal steps of confidence look like equal steps
  of color, then converted back to sRGB.
"""
import struct

N = 52

VIRIDIS = [
    (0.267004, 0.004874, 0.329415), (0.273809, 0.031497, 0.358853), (0.278791, 0.062145, 0.386592),
    (0.281924, 0.089666, 0.412415), (0.283197, 0.115680, 0.436115), (0.282623, 0.140926, 0.457517),
    (0.280255, 0.165693, 0.476498), (0.276194, 0.190074, 0.493001), (0.270595, 0.214069, 0.507052),
    (0.263663, 0.237631, 0.518762), (0.255645, 0.260703, 0.528312), (0.246811, 0.283237, 0.535941),
    (0.237441, 0.305202, 0.541921), (0.227802, 0.326594, 0.546532), (0.218130, 0.347432, 0.550038),
    (0.208623, 0.367752, 0.552675), (0.199430, 0.387607, 0.554642), (0.190631, 0.407061, 0.556089),
    (0.182256, 0.426184, 0.557120), (0.174274, 0.445044, 0.557792), (0.166617, 0.463708, 0.558119),
    (0.159194, 0.482237, 0.558073), (0.151918, 0.500685, 0.557587), (0.144759, 0.519093, 0.556572),
    (0.137770, 0.537492, 0.554906), (0.131172, 0.555899, 0.552459), (0.125394, 0.574318, 0.549086),
    (0.121148, 0.592739, 0.544641), (0.119423, 0.611141, 0.538982), (0.121380, 0.629492, 0.531973),
    (0.128087, 0.647749, 0.523491), (0.140210, 0.665859, 0.513427), (0.157851, 0.683765, 0.501686),
    (0.180653, 0.701402, 0.488189), (0.208030, 0.718701, 0.472873), (0.239374, 0.735588, 0.455688),
    (0.274149, 0.751988, 0.436601), (0.311925, 0.767822, 0.415586), (0.352360, 0.783011, 0.392636),
    (0.395174, 0.797475, 0.367757), (0.440137, 0.811138, 0.340967), (0.487026, 0.823929, 0.312321),
    (0.535621, 0.835785, 0.281908), (0.585678, 0.846661, 0.249897), (0.636902, 0.856542, 0.216620),
    (0.688944, 0.865448, 0.182725), (0.741388, 0.873449, 0.149561), (0.793760, 0.880678, 0.120005),
    (0.845561, 0.887322, 0.099702), (0.896320, 0.893616, 0.096335), (0.945636, 0.899815, 0.112838),
    (0.993248, 0.906157, 0.143936),
]

# red-green anchors (sRGB) at confidence 0, 0.5 and 1.
RG_ANCHORS = [(0.843, 0.188, 0.153), (0.961, 0.741, 0.263), (0.102, 0.596, 0.314)]

UNKNOWN_RGBA = (0.6, 0.6, 0.6, 0.6)   # neutral gray, half transparent
ALPHA_MIN, ALPHA_RANGE = 0.35, 0.65   # alpha = ALPHA_MIN + ALPHA_RANGE * confidence

# Color modes (docs/analytics.md): what a token's value t in [0, 1] is before
# the palette ramp; 1 is always the good end (sure, first choice, fast,
# agreed). Unknown values draw UNKNOWN_RGBA.
MODES = ["confidence", "logprob", "rank", "entropy", "latency", "agreement"]
LOGPROB_DECADES = 6.0     # logprob: t = 1 + log10(p) / 6   (p = 1e-6 or less: 0)
ENTROPY_MAX = 2.9957323   # entropy: t = 1 - H / ln(20)    (nats; 20 alternatives, uniform: 0)
LATENCY_DECADES = 3.0     # latency: t = 1 - log10(max(gap_ms, 1)) / 3  (1 s or more: 0)
RANK_T = [1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0]   # rank buckets 1, <=10, <=100, beyond
# Mode values travel to the GPU quantized: q = 1 + round(t * 254) in a byte
# (0: unknown), t = (q - 1) / 254 there.
QUANT = 254
HIGHLIGHT_RGBA = (1.0, 0.25, 0.85, 1.0)   # search matches, first divergences
DIM_ALPHA = 0.25          # alpha factor of the other tokens while a search has matches


def srgb_to_linear(c):
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def linear_to_srgb(c):
    c = min(max(c, 0.0), 1.0)
    return 12.92 * c if c <= 0.0031308 else 1.055 * c ** (1 / 2.4) - 0.055


def cbrt(x):
    return x ** (1 / 3) if x >= 0 else -((-x) ** (1 / 3))


def to_oklab(rgb):
    r, g, b = (srgb_to_linear(c) for c in rgb)
    l = 0.4122214708 * r + 0.5363325363 * g + 0.0514459929 * b
    m = 0.2119034982 * r + 0.6806995451 * g + 0.1073969566 * b
    s = 0.0883024619 * r + 0.2817188376 * g + 0.6299787005 * b
    l, m, s = cbrt(l), cbrt(m), cbrt(s)
    return (0.2104542553 * l + 0.7936177850 * m - 0.0040720468 * s,
            1.9779984951 * l - 2.4285922050 * m + 0.4505937099 * s,
            0.0259040371 * l + 0.7827717662 * m - 0.8086757660 * s)


def from_oklab(lab):
    L, a, b = lab
    l = (L + 0.3963377774 * a + 0.2158037573 * b) ** 3
    m = (L - 0.1055613458 * a - 0.0638541728 * b) ** 3
    s = (L - 0.0894841775 * a - 1.2914855480 * b) ** 3
    r = 4.0767416621 * l - 3.3077115913 * m + 0.2309699292 * s
    g = -1.2684380046 * l + 2.6097574011 * m - 0.3413193965 * s
    bb = -0.0041960863 * l - 0.7034186147 * m + 1.7076147010 * s
    return tuple(linear_to_srgb(c) for c in (r, g, bb))


def red_green():
    labs = [to_oklab(c) for c in RG_ANCHORS]
    out = []
    for i in range(N):
        t = i / (N - 1) * (len(labs) - 1)
        k = min(int(t), len(labs) - 2)
        f = t - k
        lab = tuple(labs[k][j] + (labs[k + 1][j] - labs[k][j]) * f for j in range(3))
        out.append(from_oklab(lab))
    return out


def f32(v):
    """The float literal that C and GLSL both read as exactly this float32."""
    x = struct.unpack("f", struct.pack("f", v))[0]
    s = "%.9g" % x
    if "." not in s and "e" not in s:
        s += ".0"
    assert struct.unpack("f", struct.pack("f", float(s)))[0] == x
    return s + "f"


def table(rows):
    return " \\\n".join("\t%s, %s, %s," % tuple(f32(c) for c in row) for row in rows)


def main():
    assert len(VIRIDIS) == N
    print("""/* GENERATED by tools/gen_palette.py: do not edit; rerun the script instead.
 *
 * Confidence color ramps, shared by shaders/token_project.comp (GLSL, via
 * #include; the table reaches it as a buffer compute/gos_compute.c uploads
 * from GOS_PALETTE_DATA) and compute/gos_compute_ref.c (C): one source, so
 * the GPU and its CPU reference cannot drift apart. Colors are sRGB-encoded,
 * straight alpha.
 *
 * color(c) for a known confidence c in [0, 1]:
 *   x = c * (GOS_PALETTE_N - 1); k = min(floor(x), GOS_PALETTE_N - 2); f = x - k
 *   rgb = lut[k] + (lut[k + 1] - lut[k]) * f
 *   a   = GOS_ALPHA_MIN + GOS_ALPHA_RANGE * c
 * unknown confidence: GOS_UNKNOWN_R/G/B/A. */
#ifndef GOS_PALETTE_H
#define GOS_PALETTE_H

#define GOS_PALETTE_VIRIDIS   0
#define GOS_PALETTE_RED_GREEN 1
#define GOS_PALETTE_COUNT     2
#define GOS_PALETTE_N         %d
#define GOS_PALETTE_SEGMENTS  %s

#define GOS_ALPHA_MIN   %s
#define GOS_ALPHA_RANGE %s
#define GOS_UNKNOWN_R   %s
#define GOS_UNKNOWN_G   %s
#define GOS_UNKNOWN_B   %s
#define GOS_UNKNOWN_A   %s

/* Color modes: the value t each maps to [0, 1] (1: the good end) before the
 * ramp; values reach the GPU quantized to a byte q = 1 + round(t * 254)
 * (0: unknown), t = (q - 1) * (1 / 254). */
%s
#define GOS_COLOR_MODE_COUNT  %d
#define GOS_LOGPROB_DECADES   %s
#define GOS_ENTROPY_MAX       %s
#define GOS_LATENCY_DECADES   %s
#define GOS_RANK_T1           %s
#define GOS_RANK_T10          %s
#define GOS_RANK_T100         %s
#define GOS_RANK_TBEYOND      %s
#define GOS_QUANT             %d
#define GOS_QUANT_INV         %s
#define GOS_HIGHLIGHT_R       %s
#define GOS_HIGHLIGHT_G       %s
#define GOS_HIGHLIGHT_B       %s
#define GOS_HIGHLIGHT_A       %s
#define GOS_DIM_ALPHA         %s

/* GOS_PALETTE_COUNT * GOS_PALETTE_N rgb triples, palette by palette. */
#define GOS_PALETTE_DATA \\
\\
\t/* viridis (matplotlib, CC0), every 5th of its 256 entries */ \\""" % (
        N, f32(N - 1), f32(ALPHA_MIN), f32(ALPHA_RANGE), *(f32(c) for c in UNKNOWN_RGBA),
        "\n".join("#define GOS_COLOR_%-14s %d" % (m.upper(), i) for i, m in enumerate(MODES)),
        len(MODES), f32(LOGPROB_DECADES), f32(ENTROPY_MAX), f32(LATENCY_DECADES),
        *(f32(t) for t in RANK_T), QUANT, f32(1.0 / QUANT), *(f32(c) for c in HIGHLIGHT_RGBA),
        f32(DIM_ALPHA)))
    print(table(VIRIDIS) + " \\")
    print("\t/* red-green: red -> amber -> green in OKLab */ \\")
    rg = table(red_green())
    print(rg[:-1])  # no comma after the last element
    print("\n#endif")


if __name__ == "__main__":
    main()
