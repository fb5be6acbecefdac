"""A small evaluator of exactly the Prometheus alert rules docs/metrics.md prints, over an exposition text.

Prometheus' own ``promtool test rules`` is not on the package registries (no ``promtool`` wheel), so the tests
evaluate the README's expressions here. Only their shapes are understood, and anything else is refused
(a rule the README gains in another shape fails the test until this understands it):

- ``METRIC OP NUMBER``, ``METRIC{label="value", ...} OP NUMBER``;
- ``time() - METRIC OP NUMBER [* NUMBER ...]``;
- ``increase(METRIC{...}[DURATION]) OP NUMBER``, evaluated as the counter's rise between two expositions.

OP is one of ``>``, ``>=``, ``==``, ``<``, ``<=``, ``!=``. A rule fires when any of its series satisfies it.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from pathlib import Path

import yaml
from prometheus_client.parser import text_string_to_metric_families

OPS = {">": operator.gt, ">=": operator.ge, "==": operator.eq, "<": operator.lt, "<=": operator.le, "!=": operator.ne}
SELECTOR = r"(?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[^}]*)\})?"
NUMBER = r"(?P<number>[0-9.]+(?:\s*\*\s*[0-9.]+)*)"
OP = r"(?P<op>>=|<=|==|!=|>|<)"
PLAIN = re.compile(rf"^{SELECTOR}\s*{OP}\s*{NUMBER}$")
AGE = re.compile(rf"^time\(\)\s*-\s*{SELECTOR}\s*{OP}\s*{NUMBER}$")
INCREASE = re.compile(rf"^increase\({SELECTOR}\[(?P<range>\w+)\]\)\s*{OP}\s*{NUMBER}$")


def readme_rules(readme: Path) -> dict[str, str]:
    """The alert rules of the page's ``groups:`` YAML block (docs/metrics.md): name -> expression."""
    blocks = re.findall(r"```yaml\n(groups:.*?)```", readme.read_text(), re.S)
    assert blocks, f"{readme} has no Prometheus rules block (```yaml groups: ...)"
    rules = yaml.safe_load(blocks[0])["groups"][0]["rules"]
    return {r["alert"]: " ".join(str(r["expr"]).split()) for r in rules}


def samples(text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, dict(s.labels), s.value) for f in text_string_to_metric_families(text) for s in f.samples]


def _number(text: str) -> float:
    value = 1.0
    for part in text.split("*"):
        value *= float(part)
    return value


def _matching(found: Iterable[tuple[str, dict[str, str], float]], metric: str, labels: str | None) -> list[float]:
    wanted = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', labels or ""))
    return [v for name, lab, v in found if name == metric and all(lab.get(k) == val for k, val in wanted.items())]


def fires(expr: str, text: str, *, now: float, before: str | None = None) -> bool:
    """Whether the rule ``expr`` fires on the exposition ``text`` at Unix time ``now`` (``before``: the
    exposition one range earlier, for ``increase``)."""
    found = samples(text)
    if m := PLAIN.match(expr):
        return any(OPS[m["op"]](v, _number(m["number"])) for v in _matching(found, m["metric"], m["labels"]))
    if m := AGE.match(expr):
        return any(OPS[m["op"]](now - v, _number(m["number"])) for v in _matching(found, m["metric"], m["labels"]))
    if m := INCREASE.match(expr):  # per series: its value now less its value one range earlier (0 if new)
        old = {tuple(sorted(lab.items())): v for name, lab, v in samples(before or "") if name == m["metric"]}
        now_series = [(lab, v) for name, lab, v in found if name == m["metric"] and _matching([(name, lab, v)], m["metric"], m["labels"])]
        return any(OPS[m["op"]](v - old.get(tuple(sorted(lab.items())), 0.0), _number(m["number"])) for lab, v in now_series)
    raise ValueError(f"this evaluator does not understand {expr!r}: teach tests/promrules.py its shape")
