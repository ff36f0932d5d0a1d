"""What a PromQL expression reads: its metric names, the label names it
matches or groups by, and the label values it matches exactly. Enough
PromQL for gos's dashboard and rules (tests/ops_metrics.py): selectors,
functions, aggregations with by/without, binary operators with
on/ignoring/group_*, ranges and offsets. Grafana's $variables are replaced
by what they stand for first (grafana_subst)."""
import re

KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring",
            "group_left", "group_right", "offset", "inf", "nan", "atan2"}
LABEL_LISTS = {"by", "without", "on", "ignoring", "group_left", "group_right"}
AGGREGATIONS = {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count",
                "count_values", "bottomk", "topk", "quantile"}

TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<dur>(?:\d+(?:ms|[smhdwy]))+\b)
  | (?P<num>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^<>=(){}\[\],@])
""", re.X)


def grafana_subst(expr):
    """A dashboard query as Prometheus would get it: Grafana's built-in
    intervals as durations, template variables as 'match anything'."""
    expr = re.sub(r"\$__(rate_interval|interval|range)\b", "5m", expr)
    expr = re.sub(r"\$\{?\w+\}?", ".*", expr)
    return expr


def tokenize(expr):
    out = []
    pos = 0
    while pos < len(expr):
        m = TOKEN.match(expr, pos)
        if not m:
            raise ValueError(f"cannot read {expr[pos:pos + 20]!r} in {expr!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup, m.group()))
    return out


def unquote(s):
    if s[0] == "`":
        return s[1:-1]
    return re.sub(r"\\(.)", r"\1", s[1:-1])


def read(expr):
    """Returns (metrics, matchers, groupings): metrics a set of names;
    matchers a list of (metric or None, label, op, value); groupings a set
    of label names from by/without/on/ignoring/group_* lists."""
    toks = tokenize(expr)
    metrics, matchers, groupings = set(), [], set()
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else None
        if kind == "op" and text == "[":
            while toks[i][1] != "]":  # a range or subquery: durations only
                i += 1
            i += 1
            continue
        if kind != "ident":
            i += 1
            continue
        if text in LABEL_LISTS:
            i += 1
            if i < len(toks) and toks[i][1] == "(":
                i += 1
                while toks[i][1] != ")":
                    if toks[i][0] == "ident":
                        groupings.add(toks[i][1])
                    i += 1
            continue
        if text == "offset":
            i += 2
            continue
        if text in KEYWORDS:
            i += 1
            continue
        if nxt == "(" or text in AGGREGATIONS:  # a function, an aggregation
            i += 1
            continue
        metrics.add(text)
        i += 1
        if nxt == "{":
            i += 1
            while toks[i][1] != "}":
                if toks[i][0] == "ident":
                    label, op, value = toks[i][1], toks[i + 1][1], unquote(toks[i + 2][1])
                    matchers.append((text, label, op, value))
                    i += 3
                else:
                    i += 1
            i += 1
    return metrics, matchers, groupings
