"""The guide's cache clear (`redis-cli FLUSHALL`, `npm run cache:clear`), made safe.

Three Redis modes, narrowest first:

* ``prefix``: SCAN MATCH ``<prefix>*`` (glob characters in the prefix escaped) and
  UNLINK in batches. SCAN never blocks the server the way KEYS does, UNLINK frees
  memory in a background thread, and the count is what UNLINK reports, so keys
  that expired meanwhile are not counted.
* ``flushdb``: only the URL's database (``redis://host:6379/3``), ``FLUSHDB ASYNC``
  so a large database does not stall Redis; memory is then freed in the background
  and ``memory_after`` may still include part of it.
* ``flushall``: every database on the server, refused unless ``allow_flushall``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import httpx
import redis
import redis.exceptions

from bot.core.logs import redact

Mode = Literal["flushdb", "prefix", "flushall"]
Progress = Callable[[str], None] | None


class CacheError(Exception):
    """Base class; messages name host:port/db, never a password."""


class CacheUnreachable(CacheError):
    """Redis did not answer."""


class CacheAuthFailed(CacheError):
    """Redis refused the password / ACL user."""


class CacheClearRefused(CacheError):
    """The requested clear is not allowed (FLUSHALL without allow_flushall, empty prefix...)."""


class AppCacheClearFailed(CacheError):
    """The application's cache-clear endpoint or command failed."""


@dataclass(frozen=True)
class CacheClearResult:
    mode: str
    deleted: int | None  # prefix: exact; flushdb: keys in the db just before; flushall: None
    memory_before: int  # INFO memory used_memory, bytes
    memory_after: int


def redis_location(url: str) -> str:
    """host:port/db of a Redis URL, for messages: no user, no password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "localhost"
        port = parts.port or 6379
    except ValueError:
        return "<unparseable Redis URL>"
    if parts.scheme == "unix":
        return f"unix:{parts.path}"
    db = parts.path.strip("/") or "0"
    return f"{host}:{port}/{db}"


def escape_glob(text: str) -> str:
    r"""Escape Redis glob specials (\ * ? [ ]) so the text matches itself only."""
    out = []
    for ch in text:
        if ch in "\\*?[]":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def _used_memory(r: redis.Redis) -> int:
    return int(r.info("memory").get("used_memory", 0))


def clear_redis(
    url: str,
    *,
    mode: Mode,
    prefix: str = "",
    allow_flushall: bool = False,
    batch: int = 500,
    progress: Progress = None,
) -> CacheClearResult:
    """Clear the cache in `url` in the given mode; see the module docstring."""
    where = redis_location(url)
    if mode == "flushall" and not allow_flushall:
        raise CacheClearRefused(
            f"FLUSHALL on {where} refused: it empties every database on the server. "
            "Use mode prefix or flushdb, or set allow_flushall: true for this environment."
        )
    if mode == "prefix" and not prefix:
        raise CacheClearRefused("prefix mode needs a non-empty prefix (an empty one would match every key)")
    if mode not in ("flushdb", "prefix", "flushall"):
        raise ValueError(f"unknown mode {mode!r}: flushdb, prefix or flushall")
    if batch < 1:
        raise ValueError("batch must be at least 1")
    try:
        r = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
    except ValueError:
        raise CacheError(
            f"the Redis URL for {where} is invalid: expected redis://[:password@]host:6379/0"
        ) from None
    try:
        with r:
            before = _used_memory(r)
            if mode == "prefix":
                deleted: int | None = _unlink_prefix(r, prefix, batch, progress)
            elif mode == "flushdb":
                deleted = int(r.dbsize())
                r.flushdb(asynchronous=True)
            else:
                deleted = None
                r.flushall(asynchronous=True)
            after = _used_memory(r)
    except redis.exceptions.AuthenticationError as exc:
        raise CacheAuthFailed(
            f"Redis at {where} refused the login ({_first_line(exc)}): check the password/user in the Redis URL."
        ) from None
    except redis.exceptions.ConnectionError as exc:
        raise CacheUnreachable(
            f"cannot reach Redis at {where} ({_first_line(exc)}): is it running, and is the URL's host/port right?"
        ) from None
    except redis.exceptions.TimeoutError as exc:
        raise CacheUnreachable(f"Redis at {where} timed out ({_first_line(exc)})") from None
    except redis.exceptions.ResponseError as exc:
        msg = _first_line(exc)
        if msg.startswith("NOPERM") or "no permissions" in msg:
            raise CacheClearRefused(
                f"Redis at {where} denied the command: {msg}. The ACL user lacks it."
            ) from None
        if msg.startswith("NOAUTH"):
            raise CacheAuthFailed(f"Redis at {where} requires a password: put it in the Redis URL.") from None
        raise CacheError(f"Redis at {where} answered an error: {msg}") from None
    if progress:
        count = "" if deleted is None else f"{deleted} keys, "
        progress(f"{mode} on {where}: {count}memory {before} -> {after} bytes")
    return CacheClearResult(mode=mode, deleted=deleted, memory_before=before, memory_after=after)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return redact(lines[0] if lines else type(exc).__name__)[:300]


def _unlink_prefix(r: redis.Redis, prefix: str, batch: int, progress: Progress) -> int:
    pattern = escape_glob(prefix) + "*"
    deleted = 0
    pending: list[bytes] = []
    cursor = 0
    while True:
        cursor, keys = r.scan(cursor=cursor, match=pattern, count=batch)
        pending.extend(keys)
        while len(pending) >= batch or (cursor == 0 and pending):
            chunk, pending = pending[:batch], pending[batch:]
            # UNLINK counts only keys that existed; SCAN may repeat a key, the
            # second UNLINK of it counts 0, so the total stays exact.
            deleted += int(r.unlink(*chunk))
            if progress:
                progress(f"deleted {deleted} keys matching {prefix}* so far")
        if cursor == 0:
            return deleted


def clear_app_cache(
    *, endpoint: str = "", token: str = "", command: list[str] | None = None, timeout: float = 10
) -> str:
    """The guide's `npm run cache:clear`: POST to the app's endpoint (Bearer token) or run an
    argument list. Returns a one-line summary; AppCacheClearFailed on non-2xx / non-zero."""
    if bool(endpoint) == bool(command):
        raise ValueError("give exactly one of endpoint or command")
    if command:
        return _run_command(command, timeout, token)
    shown = redact(endpoint)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        # No redirects: a POST bounced to a login page must not count as success.
        resp = httpx.post(endpoint, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        raise AppCacheClearFailed(
            f"POST {shown} failed: {type(exc).__name__}: {_clean(str(exc), token)}"
        ) from None
    excerpt = _clean(resp.text, token)
    if not 200 <= resp.status_code < 300:
        hint = " (check the token)" if resp.status_code in (401, 403) else ""
        raise AppCacheClearFailed(
            f"POST {shown} answered {resp.status_code}{hint}: {excerpt or '(empty body)'}"
        )
    return f"POST {shown} -> {resp.status_code}" + (f": {excerpt}" if excerpt else "")


def _clean(text: str, token: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    if token:
        text = text.replace(token, "***")
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _run_command(argv: list[str], timeout: float, token: str) -> str:
    try:
        proc = subprocess.run(  # noqa: S603 - argument list, no shell
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, check=False
        )
    except FileNotFoundError:
        raise AppCacheClearFailed(f"command not found: {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise AppCacheClearFailed(f"{argv[0]} did not finish within {timeout:.0f}s") from None
    lines = proc.stdout.decode("utf-8", "replace").strip().splitlines()
    tail = _clean(" | ".join(lines[-3:]), token)
    if proc.returncode != 0:
        raise AppCacheClearFailed(f"{argv[0]} exited with code {proc.returncode}: {tail or '(no output)'}")
    return f"{argv[0]} exited 0" + (f": {tail}" if tail else "")
