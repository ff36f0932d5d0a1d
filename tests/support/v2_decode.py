"""An independent gos.v2 decoder (docs/protocol-v2.md), written from the
document with Python's struct module, not from the viewer's code: it
applies snapshot, tick, tiles, cell and region messages to a picture of the
map and keeps what the rules say a viewer holds."""
import math
import struct

HEADER = 112
KINDS = {1: "snapshot", 2: "tick", 3: "tiles", 4: "cell", 5: "region"}
TILE0 = 128.0
CELL_LEVEL = 3


def tile_of(v, level):
    return math.floor(v / (TILE0 * 2 ** level))


def in_rect(r, x, y):
    return r is not None and r[0] <= x <= r[2] and r[1] <= y <= r[3]


def rect_or_none(vals):
    x0, y0, x1, y1 = vals
    return None if x1 < x0 or y1 < y0 else (x0, y0, x1, y1)


def decode(buf):
    """One binary message as a dict of plain lists."""
    if len(buf) < HEADER:
        raise ValueError(f"message of {len(buf)} bytes is shorter than the header")
    (kind, version, _flags, n_tok, seq, since, n_rm, n_st, n_tl, n_alt, str_bytes,
     live) = struct.unpack_from("<BBHIQQIIIIII", buf, 0)
    bounds = struct.unpack_from("<4f", buf, 48)
    ov, vl = struct.unpack_from("<ii", buf, 64)
    cells = struct.unpack_from("<4i", buf, 72)
    tiles = struct.unpack_from("<4i", buf, 88)
    level, _zero = struct.unpack_from("<II", buf, 104)
    newest = struct.unpack_from("<2f", buf, 104) if kind == 2 else None
    if version != 2 or kind not in KINDS:
        raise ValueError(f"kind {kind} version {version}")
    off = HEADER

    def arr(fmt, n):
        nonlocal off
        size = struct.calcsize("<" + fmt) * n
        vals = list(struct.unpack_from(f"<{n}{fmt}", buf, off)) if n else []
        off += size
        if off % 8:
            off += 8 - off % 8
        return vals

    tok = {}
    tok["ts"] = arr("d", n_tok)
    for name, fmt in (("slot", "I"), ("stream", "I"), ("x", "f"), ("y", "f"), ("w", "f"),
                      ("conf", "f"), ("logprob", "f"), ("id_off", "I"), ("id_len", "I"),
                      ("text_off", "I"), ("text_len", "I"), ("alt_first", "I"),
                      ("alt_count", "I")):
        tok[name] = arr(fmt, n_tok)
    detail = _flags & 2
    if detail:      # the tokens' detail columns (flags bit 1)
        for name, fmt in (("index", "I"), ("rank", "I"), ("gap_ms", "f"), ("entropy", "f"),
                          ("agree", "f"), ("tflags", "I")):
            tok[name] = arr(fmt, n_tok)
    removed = arr("I", n_rm)
    st = {}
    for name in ("proc", "total", "elapsed", "tokens"):
        st[name] = arr("d", n_st)
    for name in ("index", "name_off", "name_len", "state_off", "state_len"):
        st[name] = arr("I", n_st)
    analytics = _flags & 1
    if analytics:   # the streams' analytics columns (flags bit 0)
        for name in ("ttft", "tps", "meanc", "minc", "ppl", "ent"):
            st[name] = arr("d", n_st)
        for name in ("fin_off", "fin_len", "msg_off", "msg_len", "model_off", "model_len"):
            st[name] = arr("I", n_st)
        st["hist"] = arr("I", n_st * 10)
    if detail:      # the streams' groups (flags bit 1)
        st["group"] = arr("I", n_st)
        st["diverge_at"] = arr("i", n_st)
    tl = {}
    for name, fmt in (("level", "I"), ("tx", "i"), ("ty", "i"), ("count", "I"), ("conf", "f")):
        tl[name] = arr(fmt, n_tl)
    alt = {}
    for name, fmt in (("off", "I"), ("len", "I"), ("lp", "f")):
        alt[name] = arr(fmt, n_alt)
    strings = bytes(buf[off:off + str_bytes])
    if off + str_bytes > len(buf):
        raise ValueError("string table runs past the message")

    def s(o, n):
        return strings[o:o + n].decode("utf-8")

    tokens = []
    for i in range(n_tok):
        alts = [(s(alt["off"][a], alt["len"][a]), alt["lp"][a])
                for a in range(tok["alt_first"][i], tok["alt_first"][i] + tok["alt_count"][i])]
        tokens.append({"slot": tok["slot"][i], "stream": tok["stream"][i], "x": tok["x"][i],
                       "y": tok["y"][i], "w": tok["w"][i], "conf": tok["conf"][i],
                       "logprob": tok["logprob"][i], "ts": tok["ts"][i],
                       "id": s(tok["id_off"][i], tok["id_len"][i]),
                       "text": s(tok["text_off"][i], tok["text_len"][i]), "alts": alts})
        if detail:
            tokens[-1].update({"index": tok["index"][i], "rank": tok["rank"][i],
                               "gap_ms": tok["gap_ms"][i], "entropy": tok["entropy"][i],
                               "agree": tok["agree"][i],
                               "diverges": bool(tok["tflags"][i] & 1)})
    streams = [{"index": st["index"][i], "name": s(st["name_off"][i], st["name_len"][i]),
                "state": s(st["state_off"][i], st["state_len"][i]),
                "tokens_processed": st["proc"][i], "total_tokens": st["total"][i],
                "elapsed_ms": st["elapsed"][i], "tokens": st["tokens"][i]}
               for i in range(n_st)]
    if analytics:
        for i, s_ in enumerate(streams):
            s_.update({"ttft_ms": st["ttft"][i], "tokens_per_s": st["tps"][i],
                       "mean_confidence": st["meanc"][i], "min_confidence": st["minc"][i],
                       "perplexity": st["ppl"][i], "mean_entropy": st["ent"][i],
                       "finish_reason": s(st["fin_off"][i], st["fin_len"][i]),
                       "message": s(st["msg_off"][i], st["msg_len"][i]),
                       "model": s(st["model_off"][i], st["model_len"][i]),
                       "confidence_hist": st["hist"][i * 10:i * 10 + 10]})
    if detail:
        for i, s_ in enumerate(streams):
            s_.update({"group": st["group"][i], "diverge_at": st["diverge_at"][i]})
    tile_list = [(tl["level"][i], tl["tx"][i], tl["ty"][i], tl["count"][i], tl["conf"][i])
                 for i in range(n_tl)]
    return {"kind": KINDS[kind], "flags": _flags, "seq": seq, "since": since, "live": live, "bounds": bounds,
            "ov": ov, "vl": vl, "cells": rect_or_none(cells), "tiles": rect_or_none(tiles),
            "level": level if kind != 2 else 0, "newest": newest, "tokens": tokens, "removed": removed, "streams": streams,
            "tile_list": tile_list}


class V2Mirror:
    """A gos.v2 viewer's picture: tokens by slot, tiles by (level, tx, ty),
    streams by index, and what it holds."""

    def __init__(self):
        self.tokens = {}
        self.tiles = {}
        self.streams = {}
        self.seq = None          # the seq the last snapshot or tick brought it to
        self.region_seq = None
        self.live = 0
        self.ov = None
        self.vl = -1
        self.cells = None
        self.trect = None
        self.errors = []
        self.kinds = []
        self.newest = None       # the last tick's newest token place

    def holds_tile(self, level, tx, ty):
        return level == self.ov or (level == self.vl and in_rect(self.trect, tx, ty))

    def _put_tiles(self, m):
        for level, tx, ty, count, conf in m["tile_list"]:
            if not self.holds_tile(level, tx, ty):
                continue
            if count == 0:
                self.tiles.pop((level, tx, ty), None)
            else:
                self.tiles[(level, tx, ty)] = (count, conf)

    def _put_tokens(self, m):
        for t in m["tokens"]:
            self.tokens[t["slot"]] = t

    def apply(self, buf):
        m = decode(buf)
        k = m["kind"]
        self.kinds.append(k)
        if k == "snapshot":
            self.tokens, self.tiles = {}, {}
            self.streams = {s["index"]: s for s in m["streams"]}
            self.ov, self.vl, self.cells, self.trect = m["ov"], -1, None, None
            self._put_tiles(m)
            self.seq = m["seq"]
            self.live = m["live"]
        elif k == "tick":
            if self.seq is None:
                self.errors.append("tick before a snapshot")
            elif m["since"] != self.seq:
                self.errors.append(f"tick since {m['since']} does not continue seq {self.seq}")
            for slot in m["removed"]:
                self.tokens.pop(slot, None)
            for s in m["streams"]:
                self.streams[s["index"]] = s
            self.seq = m["seq"]
            self.live = m["live"]
            self.last_tick_ov = m["ov"]
            if m["newest"] and not math.isnan(m["newest"][0]):
                self.newest = m["newest"]
        elif k == "tiles":
            if any(t[0] != m["level"] for t in m["tile_list"]):
                self.errors.append("a tiles message with tiles of another level")
            if m["level"] not in (self.ov, self.vl):
                self.errors.append(f"tiles of level {m['level']} that the viewer does not hold")
            self._put_tiles(m)
        elif k == "cell":
            c, h = m["cells"], self.cells
            if h is None or c[0] > h[2] or c[2] < h[0] or c[1] > h[3] or c[3] < h[1]:
                self.errors.append(f"cells {c} do not meet the held cell rect {h}")
            for t in m["tokens"]:
                cx, cy = tile_of(t["x"], CELL_LEVEL), tile_of(t["y"], CELL_LEVEL)
                if not in_rect(c, cx, cy):
                    self.errors.append(f"token {t['id']} is not in cells {c}")
                elif in_rect(h, cx, cy):
                    self.tokens[t["slot"]] = t
        elif k == "region":
            self.ov, self.vl, self.cells, self.trect = m["ov"], m["vl"], m["cells"], m["tiles"]
            self.tokens = {s: t for s, t in self.tokens.items()
                           if in_rect(self.cells, tile_of(t["x"], CELL_LEVEL),
                                      tile_of(t["y"], CELL_LEVEL))}
            self.tiles = {key: v for key, v in self.tiles.items() if self.holds_tile(*key)}
            self._put_tiles(m)
            self._put_tokens(m)
            self.region_seq = m["seq"]
        return m

    def stream_name(self, index):
        s = self.streams.get(index)
        return s["name"] if s else None


def expected_tiles(v1_tokens, level, rect=None):
    """Tiles of one level from a gos.v1 picture: {(level, tx, ty): (count, mean conf)}."""
    acc = {}
    for t in v1_tokens.values():
        tx, ty = tile_of(t["x"], level), tile_of(t["y"], level)
        if rect is not None and not in_rect(rect, tx, ty):
            continue
        c, k, s = acc.get((tx, ty), (0, 0, 0.0))
        conf = t.get("confidence")
        acc[(tx, ty)] = (c + 1, k + (conf is not None), s + (conf or 0.0))
    return {(level, tx, ty): (c, s / k if k else float("nan")) for (tx, ty), (c, k, s) in acc.items()}
