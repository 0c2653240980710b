"""A loopback Loki (not packaged for Debian): `/loki/api/v1/query_range` over streams the test pushes.

It evaluates the part of LogQL the bot writes and people type: a stream selector with = != =~ !~,
line filters |= != |~ !~ (double-quoted or backtick strings), the `| json` parser (nested keys
joined with _, as Loki does) and label filters = != =~ !~ on extracted labels. Anything else is a
400 with a parse error in Loki's words. Answers as Loki does: `streams`, each distinct label set
(the extracted labels included) its own stream, the `limit` newest (direction=backward) entries in
[start, end).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlparse

from tests.fakes.loopback import LoopbackServer, respond

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*"|`[^`]*`)|(?P<op>\|=|\|~|!=|!~|=~|==|=|\||\{|\}|,)|(?P<id>[A-Za-z_][A-Za-z0-9_]*))'
)


class LogQLError(ValueError):
    pass


def _tokens(query: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    query = query.strip()
    while pos < len(query):
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            raise LogQLError(
                f"parse error at line 1, col {pos + 1}: syntax error: unexpected {query[pos : pos + 10]!r}"
            )
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def _string(tok: tuple[str, str]) -> str:
    kind, text = tok
    if kind != "str":
        raise LogQLError(f"parse error: syntax error: unexpected {text}, expecting STRING")
    if text.startswith("`"):
        return text[1:-1]
    return json.loads(text)  # Go's and JSON's double-quoted escapes agree for what is used here


Matcher = Callable[[dict[str, str]], bool]


def _label_matcher(name: str, op: str, value: str) -> Matcher:
    if op in ("=", "=="):
        return lambda labels: labels.get(name, "") == value
    if op == "!=":
        return lambda labels: labels.get(name, "") != value
    pattern = re.compile(value)
    if op == "=~":
        return lambda labels: bool(pattern.fullmatch(labels.get(name, "")))
    if op == "!~":
        return lambda labels: not pattern.fullmatch(labels.get(name, ""))
    raise LogQLError(f"parse error: unexpected {op}")


def _flatten(obj: Any, prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}_{k}" if prefix else str(k))
            out.update(
                _flatten(v, key)
                if isinstance(v, dict)
                else {key: "" if v is None else str(v) if not isinstance(v, bool) else str(v).lower()}
            )
    return out


class Query:
    """A parsed log query: its stream matchers and its pipeline."""

    def __init__(self, text: str):
        toks = _tokens(text)
        if not toks or toks[0][1] != "{":
            raise LogQLError("parse error at line 1, col 1: syntax error: unexpected IDENTIFIER, expecting {")
        i, self.selector = 1, []
        while toks[i][1] != "}":
            name, op, value = toks[i][1], toks[i + 1][1], _string(toks[i + 2])
            self.selector.append(_label_matcher(name, op, value))
            i += 3
            if toks[i][1] == ",":
                i += 1
        if not self.selector:
            raise LogQLError("parse error : queries require at least one regexp or equality matcher")
        i += 1
        self.stages: list[Callable[[str, dict[str, str]], bool]] = []
        while i < len(toks):
            op = toks[i][1]
            if op in ("|=", "!=", "|~", "!~"):
                needle = _string(toks[i + 1])
                self.stages.append(self._line_filter(op, needle))
                i += 2
            elif op == "|" and toks[i + 1] == ("id", "json"):
                self.stages.append(self._json)
                i += 2
            elif op == "|" and toks[i + 1][0] == "id":
                name, cmp, value = toks[i + 1][1], toks[i + 2][1], _string(toks[i + 3])
                match = _label_matcher(name, cmp, value)
                self.stages.append(lambda line, labels, match=match: match(labels))
                i += 4
            else:
                raise LogQLError(f"parse error at line 1: syntax error: unexpected {op}")

    @staticmethod
    def _line_filter(op: str, needle: str) -> Callable[[str, dict[str, str]], bool]:
        if op == "|=":
            return lambda line, labels: needle in line
        if op == "!=":
            return lambda line, labels: needle not in line
        pattern = re.compile(needle)
        if op == "|~":
            return lambda line, labels: bool(pattern.search(line))
        return lambda line, labels: not pattern.search(line)

    @staticmethod
    def _json(line: str, labels: dict[str, str]) -> bool:
        try:
            data = json.loads(line)
        except ValueError:
            labels["__error__"] = "JSONParserErr"
            return True
        for k, v in _flatten(data).items():
            labels.setdefault(k, v)
        return True

    def run(self, stream: dict[str, str], line: str) -> dict[str, str] | None:
        """The entry's labels after the pipeline, or None when it is filtered out."""
        if not all(m(stream) for m in self.selector):
            return None
        labels = dict(stream)
        for stage in self.stages:
            if not stage(line, labels):
                return None
        return labels


class FakeLoki(LoopbackServer):
    def __init__(self) -> None:
        self.streams: list[tuple[dict[str, str], list[tuple[int, str]]]] = []
        self.queries: list[dict[str, str]] = []  # each query_range's parameters
        self.headers: list[dict[str, str]] = []
        self.delay = 0.0  # seconds each answer takes (a slow Loki)
        self._lock = threading.Lock()
        self.url = ""

    def push(self, labels: dict[str, str], entries: list[tuple[float, str]]) -> None:
        """Lines of one stream: (unix seconds, line)."""
        with self._lock:
            self.streams.append((dict(labels), [(int(ts * 1e9), line) for ts, line in entries]))

    def query_range(self, params: dict[str, str]) -> tuple[int, Any]:
        try:
            q = Query(params.get("query", ""))
        except (LogQLError, IndexError, re.error) as e:
            return 400, str(e) if isinstance(e, LogQLError) else f"parse error : {e}"
        start, end = int(params.get("start", 0)), int(params.get("end", time.time_ns()))
        limit = int(params.get("limit", 100))
        found: list[tuple[int, str, dict[str, str]]] = []
        with self._lock:
            for stream, entries in self.streams:
                for ns, line in entries:
                    if start <= ns < end and (labels := q.run(stream, line)) is not None:
                        found.append((ns, line, labels))
        found.sort(key=lambda e: e[0], reverse=params.get("direction", "backward") == "backward")
        found = found[:limit]
        grouped: dict[str, tuple[dict[str, str], list[list[str]]]] = {}
        for ns, line, labels in found:
            key = json.dumps(labels, sort_keys=True)
            grouped.setdefault(key, (labels, []))[1].append([str(ns), line])
        result = [{"stream": labels, "values": values} for labels, values in grouped.values()]
        return 200, {"status": "success", "data": {"resultType": "streams", "result": result, "stats": {}}}

    def start(self) -> FakeLoki:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                url = urlparse(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                with owner._lock:
                    owner.queries.append(params)
                    owner.headers.append({k: v for k, v in self.headers.items()})
                if owner.delay:
                    time.sleep(owner.delay)
                if url.path != "/loki/api/v1/query_range":
                    status, body = 404, "404 page not found"
                else:
                    status, body = owner.query_range(params)
                respond(self, status, body + "\n" if isinstance(body, str) else body)

        self.serve(Handler)
        return self
