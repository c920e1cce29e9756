"""Offline readers for the deployment files: YAML, Compose interpolation, Dockerfiles, PromQL names.

No container engine, cluster or Prometheus runs where the tests run, so these helpers read the files
the way those tools would, closely enough to check names, ports, paths and cross-references.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from unittest import mock

import yaml

from streams.settings import ENV_PREFIX, Settings

REPO = Path(__file__).resolve().parents[3]
SCHEMAS = Path(__file__).resolve().parent / "schemas"


# --- files ----------------------------------------------------------------------------------------
def load_yaml(path: Path) -> Any:
    """The one YAML document in ``path`` (merge keys ``<<`` resolved, as Compose does)."""
    with path.open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def load_yaml_all(path: Path) -> list[Any]:
    """Every non-empty YAML document in ``path``."""
    with path.open(encoding="utf-8") as fh:
        return [doc for doc in yaml.safe_load_all(fh) if doc is not None]


# --- settings -------------------------------------------------------------------------------------
def settings_env_names() -> set[str]:
    """``STREAMVISION_<FIELD>`` for every field of the Settings object."""
    return {ENV_PREFIX + name.upper() for name in Settings.model_fields}


def settings_from_env(env: Mapping[str, str | None]) -> Settings:
    """Settings built from ``env`` alone, as a process with exactly that environment would build them.

    Args:
        env: Variable names to values; None means unset. Non-``STREAMVISION_`` names are ignored.

    Returns:
        The validated Settings.

    Raises:
        pydantic.ValidationError: If a value does not validate (or a name is not a field).
    """
    given = {k: str(v) for k, v in env.items() if k.startswith(ENV_PREFIX) and v is not None}
    # Exactly that environment while Settings reads it, so values parse as from a real process env.
    with mock.patch.dict(os.environ, given, clear=True):
        return Settings()


# --- Compose interpolation --------------------------------------------------------------------------
_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class Interpolation:
    """One ``$VAR`` / ``${VAR...}`` reference in a Compose file."""

    name: str
    operator: str | None  # ":-", "-", ":?", "?", ":+", "+" or None
    argument: str


def interpolations(text: str) -> list[Interpolation]:
    """Every variable reference in ``text`` (``$$`` is a literal dollar, not a reference)."""
    found = []
    for m in _INTERPOLATION.finditer(text):
        if m.group("escaped"):
            continue
        if m.group("named"):
            found.append(Interpolation(m.group("named"), None, ""))
        else:
            found.append(Interpolation(m.group("braced"), m.group("op"), m.group("arg") or ""))
    return found


def interpolate(text: str, env: Mapping[str, str]) -> str:
    """``text`` with Compose's variable substitution applied against ``env``.

    Raises:
        KeyError: For ``${VAR:?message}`` / ``${VAR?message}`` with VAR unset (Compose fails too).
    """

    def replace(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("named") or m.group("braced")
        op, arg = m.group("op"), m.group("arg") or ""
        value = env.get(name)
        if op in (":-", "-"):
            use_default = value is None or (op == ":-" and value == "")
            return arg if use_default else value  # type: ignore[return-value]
        if op in (":?", "?"):
            if value is None or (op == ":?" and value == ""):
                raise KeyError(f"{name}: {arg}")
            return value
        if op in (":+", "+"):
            return arg if value else ""
        return value or ""

    return _INTERPOLATION.sub(replace, text)


def interpolate_tree(node: Any, env: Mapping[str, str]) -> Any:
    """``interpolate`` applied to every string in a parsed YAML tree."""
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [interpolate_tree(v, env) for v in node]
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env) for k, v in node.items()}
    return node


def strings_in(node: Any) -> Iterator[str]:
    """Every string value (not key) in a parsed YAML tree."""
    if isinstance(node, str):
        yield node
    elif isinstance(node, list):
        for v in node:
            yield from strings_in(v)
    elif isinstance(node, dict):
        for v in node.values():
            yield from strings_in(v)


def command_list(value: str | list[str] | None) -> list[str]:
    """A Compose ``command``/``entrypoint``/healthcheck ``test`` as an argv list."""
    if value is None:
        return []
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


# --- Dockerfile ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with the build stage it belongs to."""

    keyword: str
    args: str
    stage: str | None
    line: int


def parse_dockerfile(text: str) -> list[Instruction]:
    """The instructions of a Dockerfile: comments dropped, line continuations joined.

    Args:
        text: The Dockerfile.

    Returns:
        Instructions in order; ``stage`` is the ``AS`` name of the enclosing FROM (None before it).
    """
    instructions: list[Instruction] = []
    stage: str | None = None
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not buffer and (not line or line.startswith("#")):
            continue
        if buffer and line.startswith("#"):
            continue  # comment lines inside a continued instruction are skipped by Docker too
        if not buffer:
            start = number
        if line.endswith("\\"):
            buffer.append(line[:-1].strip())
            continue
        buffer.append(line)
        joined = " ".join(part for part in buffer if part)
        buffer = []
        keyword, _, args = joined.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            m = re.search(r"\s+AS\s+(\S+)\s*$", args, flags=re.IGNORECASE)
            stage = m.group(1) if m else None
        instructions.append(Instruction(keyword, args.strip(), stage, start))
    return instructions


def copy_sources_and_dest(args: str) -> tuple[list[str], str, dict[str, str]]:
    """The sources, destination and ``--flag=value`` options of a COPY/ADD instruction (shell form)."""
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    return words[:-1], words[-1], flags


# --- .dockerignore ---------------------------------------------------------------------------------
def dockerignore_patterns(text: str) -> list[str]:
    """The patterns of a .dockerignore, in order (comments and blanks dropped)."""
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def dockerignored(path: str, patterns: Iterable[str]) -> bool:
    """Whether the context-relative ``path`` is excluded (last matching pattern wins; ``!`` re-includes).

    A pattern also excludes everything below a matching folder, as Docker's matcher does.
    """
    excluded = False
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        regex = _dockerignore_regex(pattern.lstrip("!").strip("/"))
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            excluded = not negate
    return excluded


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.index("]", i)
            out.append(pattern[i : end + 1])
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


# --- Prometheus metric names -----------------------------------------------------------------------
def exported_metric_names() -> set[str]:
    """Every series name ``GET /metrics`` can expose: streams/metrics.py's registry plus the suffixes
    prometheus_client adds (``_total``/``_created`` for counters, ``_bucket/_sum/_count/_created``
    for histograms, ``_sum/_count/_created`` for summaries, ``_info`` for info metrics)."""
    from streams.metrics import REGISTRY

    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gaugehistogram": ("_bucket", "_gsum", "_gcount"),
        "summary": ("", "_sum", "_count", "_created"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in REGISTRY.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names.add(family.name + suffix)
    return names


# Labels every scraped series carries (target labels), besides the ones the worker sets.
TARGET_LABELS = frozenset({"instance", "job"})
# The worker's code: where metric objects are updated.
SOURCE_PACKAGES = ("streams", "agents", "model_registry", "monitoring", "inference")
_SERIES_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def _metric_objects() -> dict[str, Any]:
    """streams/metrics.py's counters, gauges and histograms, by their variable name there."""
    from prometheus_client import Counter, Gauge, Histogram

    from streams import metrics

    return {name: m for name, m in vars(metrics).items() if isinstance(m, Counter | Gauge | Histogram)}


def _series(metric: Any) -> list[str]:
    return [metric._name + suffix for suffix in _SERIES_SUFFIXES[metric._type]]


def exported_metric_labels() -> dict[str, frozenset[str]]:
    """Label names each series name of ``exported_metric_names`` can be selected by.

    The worker's own labels (from streams/metrics.py), the target labels Prometheus adds, and ``le`` on
    histogram buckets. Only counters, gauges and histograms (the kinds streams/metrics.py uses).
    """
    labels: dict[str, frozenset[str]] = {}
    for metric in _metric_objects().values():
        own = frozenset(metric._labelnames) | TARGET_LABELS
        for series in _series(metric):
            labels[series] = own | ({"le"} if series.endswith("_bucket") else set())
    return labels


def updated_metric_names() -> set[str]:
    """Series names whose metric the worker's code updates: ``metrics.<NAME>`` used outside
    streams/metrics.py. A metric that is only declared exports nothing but its HELP line."""
    declaration = REPO / "streams" / "metrics.py"
    code = "\n".join(
        path.read_text(encoding="utf-8")
        for package in SOURCE_PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if path != declaration
    )
    return {
        series
        for name, metric in _metric_objects().items()
        if re.search(rf"\bmetrics\.{name}\b", code)
        for series in _series(metric)
    }


def promql_selector_labels(expr: str) -> dict[str, set[str]]:
    """The label names each metric of a PromQL expression is matched on, as in ``m{label="x"}``.

    Args:
        expr: A PromQL expression.

    Returns:
        Metric name to the label names used in its selector's matchers (only metrics with a selector).

    Raises:
        ValueError: On a character PromQL does not use.
    """
    tokens = _tokens(expr)
    found: dict[str, set[str]] = {}
    for i, (kind, text) in enumerate(tokens[:-1]):
        if kind != "ident" or tokens[i + 1][1] != "{" or text.lower() in _KEYWORDS:
            continue
        used = found.setdefault(text, set())
        j = i + 2
        while j + 1 < len(tokens) and tokens[j][1] != "}":
            if tokens[j][0] == "ident" and tokens[j + 1][1] in ("=", "!=", "=~", "!~"):
                used.add(tokens[j][1])
            j += 1
    return found


# Words that are never series names: operators, modifiers, aggregations, literals.
_OPERATOR_WORDS = ("and", "or", "unless", "offset", "bool", "atan2", "inf", "nan")
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_AGGREGATIONS = ("sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values")
_AGGREGATIONS_WITH_PARAM = ("bottomk", "topk", "quantile", "limitk", "limit_ratio")
_KEYWORDS = frozenset((*_OPERATOR_WORDS, *_GROUPING, *_AGGREGATIONS, *_AGGREGATIONS_WITH_PARAM))
_TOKEN = re.compile(
    r"""(?P<space>\s+)|(?P<comment>\#[^\n]*)
    |(?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    |(?P<number>(?:0x[0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)(?:[a-zA-Z]+[0-9]*)*)
    |(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    |(?P<op>==|!=|<=|>=|=~|!~|[-+*/%^<>=@,:(){}\[\]])""",
    re.VERBOSE,
)
_GRAFANA_TIME_VARS = re.compile(
    r"\$(?:__rate_interval|__interval|__range)\b|\$\{(?:__rate_interval|__interval|__range)\}"
)
_PAIRS = {")": "(", "]": "[", "}": "{"}


def grafana_to_promql(expr: str) -> str:
    """A Grafana query as plain PromQL: time macros become ``5m``; ``$var`` inside strings stays."""
    return _GRAFANA_TIME_VARS.sub("5m", expr)


def promql_metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression selects.

    A tokenizer-level reader: names in label matchers and grouping lists, function and aggregation
    names, keywords and string contents are skipped; ``{__name__="x"}`` counts as ``x``.

    Args:
        expr: A PromQL expression.

    Returns:
        The metric names.

    Raises:
        ValueError: On a character PromQL does not use, or unbalanced brackets.
    """
    tokens = _tokens(expr)
    names: set[str] = set()
    stack: list[str] = []
    expect_grouping = False
    grouping_depth: int | None = None
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if kind == "op" and text in "([{":
            stack.append(text)
            if text == "(" and expect_grouping:
                grouping_depth, expect_grouping = len(stack), False
        elif kind == "op" and text in ")]}":
            if not stack or stack.pop() != _PAIRS[text]:
                raise ValueError(f"unbalanced {text!r} in {expr!r}")
            if grouping_depth is not None and len(stack) < grouping_depth:
                grouping_depth = None
        elif kind == "ident":
            in_braces = bool(stack) and stack[-1] == "{"
            if stack and stack[-1] == "[":
                pass  # a range or subquery step such as [15m:1m]
            elif in_braces:
                if text == "__name__" and nxt in ("=", "=~") and i + 2 < len(tokens):
                    names.add(tokens[i + 2][1][1:-1])
            elif grouping_depth is not None:
                pass  # a label in by (...), on (...), group_left (...)
            elif text.lower() in _KEYWORDS:
                expect_grouping = text.lower() in _GROUPING
            elif nxt != "(":
                names.add(text)
        i += 1
    if stack:
        raise ValueError(f"unclosed {stack[-1]!r} in {expr!r}")
    return names


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens = []
    pos = 0
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if m is None:
            raise ValueError(f"unexpected {expr[pos]!r} at {pos} in {expr!r}")
        pos = m.end()
        kind = m.lastgroup or ""
        if kind not in ("space", "comment"):
            tokens.append((kind, m.group()))
    return tokens


def grafana_label_values_metric(query: str) -> str | None:
    """The metric of a Grafana ``label_values(metric, label)`` variable query (None for other forms)."""
    metric = r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{[^}]*\})?"
    m = re.fullmatch(r"\s*label_values\(\s*" + metric + r"\s*,\s*\w+\s*\)\s*", query)
    return m.group(1) if m else None


# --- JSON schemas (tests/unit/deploy/schemas) ------------------------------------------------------
def schema_validator(name: str) -> Any:
    """A Draft 2020-12 validator for ``schemas/<name>``, with the sibling schemas resolvable by name.

    Raises:
        ImportError: Without the jsonschema package.
    """
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    registry: Registry = Registry()
    for path in SCHEMAS.glob("*.schema.yaml"):
        registry = registry.with_resource(path.name, Resource.from_contents(load_yaml(path), DRAFT202012))
    schema = load_yaml(SCHEMAS / name)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, registry=registry)


def schema_errors(name: str, instance: Any) -> list[str]:
    """Readable validation errors of ``instance`` against ``schemas/<name>`` (empty when valid)."""
    validator = schema_validator(name)
    return [
        f"{'/'.join(str(p) for p in error.absolute_path) or '<root>'}: {error.message}"
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))
    ]
