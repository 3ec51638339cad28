"""A small PromQL tokenizer for the tests: which metric names does an expression select?

Not a parser: enough for the rule and dashboard expressions we ship. String literals, label
matchers ``{...}``, range/subquery brackets ``[...]`` and the label lists after ``by``,
``without``, ``on``, ``ignoring``, ``group_left``, ``group_right`` are removed first; what is left
that looks like an identifier and is not a function call, a keyword or a number is a metric name.
"""

from __future__ import annotations

import re

KEYWORDS = frozenset({
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
    "unless", "inf", "nan", "atan2", "start", "end",
})
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_LIST = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_BRACES = re.compile(r"\{[^{}]*\}")
_BRACKETS = re.compile(r"\[[^\[\]]*\]")
_IDENT = re.compile(r"(?<![\w.:$])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?")
_LABEL_VALUES = re.compile(r"^\s*label_values\s*\((?P<expr>.*),\s*(?P<label>[A-Za-z_]\w*)\s*\)\s*$", re.S)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects, e.g. ``rate(a_total{x="y"}[5m]) / b`` → ``{a_total, b}``."""
    text = _STRING.sub('""', expr)
    text = _LABEL_LIST.sub(" ", text)  # "sum by (le) (x)" → "sum   (x)": sum stays a call
    text = _BRACKETS.sub(" ", _BRACES.sub(" ", text))  # neither nests once strings are gone
    names: set[str] = set()
    for m in _IDENT.finditer(text):
        ident, call = m.group(1), m.group(2)
        if call or ident.lower() in KEYWORDS:
            continue
        # a number's exponent or a duration unit is preceded by a digit: "1e3", "5m"
        if m.start() > 0 and text[m.start() - 1].isdigit():
            continue
        names.add(ident)
    return names


def grafana_query_names(query: str) -> set[str]:
    """Metric names in a Grafana Prometheus query: PromQL, or ``label_values(expr, label)``."""
    m = _LABEL_VALUES.match(query)
    if m:
        return metric_names(m.group("expr"))
    return metric_names(query)


def all_depot_identifiers(text: str) -> set[str]:
    """Every ``depot_*`` word in a text, whatever its role (a cross-check for the tokenizer)."""
    return set(re.findall(r"(?<![\w:])depot_[A-Za-z0-9_:]*", text))
