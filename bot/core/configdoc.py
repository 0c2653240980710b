"""The configuration reference, generated from the models in bot/core/config.py.

    python -m bot.core.configdoc > docs/configuration.md

Descriptions come from each field's `description=`, so the reference cannot drift from the code:
tests/test_configdoc.py compares docs/configuration.md with `render()`.
"""

from __future__ import annotations

import argparse
import json
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types as at
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bot.backends.aws import DEFAULT_REGION
from bot.core.config import RUNBOOKS_ENV_VAR, Config, Settings

REGENERATE = "python -m bot.core.configdoc > docs/configuration.md"
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
DICT_KEY = "<name>"  # how a mapping's user-chosen key is written in a path: environments.<name>.url


@dataclass(frozen=True)
class EnvVar:
    name: str
    type: str
    default: str
    description: str


@dataclass(frozen=True)
class Key:
    """One YAML key: its full path, readable type, default and description."""

    path: str
    section: str  # path of the section that holds it ("" for the top level)
    type: str
    default: str
    description: str
    children: str  # when the key is a section: the path its own keys start with, else ""


# --------------------------------------------------------------------------- types and defaults


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _without_none(tp: Any) -> tuple[Any, bool]:
    """(the type without None, whether None was allowed)."""
    if get_origin(tp) in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        optional = len(args) < len(get_args(tp))
        inner: Any = args[0] if len(args) == 1 else Union[tuple(args)]  # noqa: UP007
        return inner, optional
    return tp, False


def readable_type(tp: Any) -> str:
    """`list[str]` → "list of str", `Literal["a", "b"]` → "one of: a, b", a model → "section"."""
    tp, optional = _without_none(tp)
    origin = get_origin(tp)
    if origin is Literal:
        text = "one of: " + ", ".join(str(a) for a in get_args(tp))
    elif origin is list:
        (item,) = get_args(tp)
        text = "list of sections" if _is_model(item) else f"list of {readable_type(item)}"
    elif origin is dict:
        key, value = get_args(tp)
        text = f"map of {readable_type(key)} → {readable_type(value)}"
    elif origin in (Union, types.UnionType):
        text = " or ".join(readable_type(a) for a in get_args(tp))
    elif _is_model(tp):
        text = "section"
    else:
        text = getattr(tp, "__name__", str(tp))
    return f"{text} or null" if optional else text


def _constraints(field: FieldInfo) -> list[str]:
    out = []
    for m in field.metadata:
        if isinstance(m, at.Ge):
            out.append(f"≥ {m.ge}")
        elif isinstance(m, at.Gt):
            out.append(f"> {m.gt}")
        elif isinstance(m, at.Le):
            out.append(f"≤ {m.le}")
        elif isinstance(m, at.Lt):
            out.append(f"< {m.lt}")
        elif isinstance(m, at.MinLen):
            out.append(f"at least {m.min_length} item{'s' if m.min_length != 1 else ''}")
        elif isinstance(m, at.MaxLen):
            out.append(f"at most {m.max_length} items")
    return out


def field_type(field: FieldInfo) -> str:
    return ", ".join([readable_type(field.annotation), *_constraints(field)])


def _default_value(field: FieldInfo) -> Any:
    if field.default_factory is not None:
        return field.default_factory()  # type: ignore[call-arg]
    return field.default


def field_default(field: FieldInfo) -> str:
    """The default as it would be written in YAML; "required" when there is none."""
    if field.is_required():
        return "required"
    value = _default_value(field)
    if isinstance(value, BaseModel):
        return "see its keys"
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, dict) and any(isinstance(v, BaseModel) for v in value.values()):
        return "the sections " + ", ".join(f"`{name}`" for name in value)  # (observability.metrics)
    if isinstance(value, list | dict):
        return f"`{json.dumps(value, ensure_ascii=False)}`"
    return f"`{value}`"


def _env_default(field: FieldInfo) -> str:
    value = _default_value(field)
    return "not set" if value in ("", None) else f"`{value}`"


# --------------------------------------------------------------------------- walking the models


def env_vars() -> list[EnvVar]:
    """The environment variables Settings reads, in declaration order."""
    out = []
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias or field.alias
        env_name = (alias if isinstance(alias, str) else name).upper()
        out.append(EnvVar(env_name, field_type(field), _env_default(field), field.description or ""))
    return out


def _children(path: str, annotation: Any) -> tuple[str, type[BaseModel]] | None:
    """Where a field's nested section lives: (path prefix, model), or None for a plain value."""
    tp, _ = _without_none(annotation)
    origin = get_origin(tp)
    if _is_model(tp):
        return path, tp
    if origin is list and _is_model(get_args(tp)[0]):
        return f"{path}[]", get_args(tp)[0]
    if origin is dict and _is_model(get_args(tp)[1]):
        return f"{path}.{DICT_KEY}", get_args(tp)[1]
    return None


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> Iterator[Key]:
    """Every YAML key of `model`: a section's own keys first, then each nested section's, depth first."""
    nested = []
    for name, field in model.model_fields.items():
        path = f"{prefix}.{name}" if prefix else name
        child = _children(path, field.annotation)
        yield Key(
            path=path,
            section=prefix,
            type=field_type(field),
            default=field_default(field),
            description=field.description or "",
            children=child[0] if child else "",
        )
        if child:
            nested.append(child)
    for child_prefix, child_model in nested:
        yield from config_keys(child_model, child_prefix)


def undescribed() -> list[str]:
    """Fields of Settings and of every config section that have no description, as Model.field."""
    missing = [f"Settings.{n}" for n, f in Settings.model_fields.items() if not f.description]
    seen: set[type[BaseModel]] = set()

    def visit(model: type[BaseModel]) -> None:
        if model in seen:
            return
        seen.add(model)
        for name, field in model.model_fields.items():
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            child = _children(name, field.annotation)
            if child:
                visit(child[1])

    visit(Config)
    return missing


# --------------------------------------------------------------------------- Markdown


def _cell(text: str) -> str:
    """Markdown for a table cell: `<...>` outside code spans is escaped (else it vanishes as HTML)."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside code spans
        parts[i] = parts[i].replace("<", "\\<")
    return "`".join(parts).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render() -> str:
    """The whole of docs/configuration.md."""
    out = [
        "# Configuration reference",
        "",
        f"<!-- Generated from bot/core/config.py by `{REGENERATE}`. Do not edit by hand: -->",
        "<!-- change the fields' description= in bot/core/config.py and regenerate. -->",
        "",
        "Secrets only ever come from environment variables; everything else lives in the YAML config",
        "file named by `TAISUN_CONFIG` (default `./taisun.yml`), which names the variables holding the",
        "other secrets (its keys ending in `_env`). [`taisun.example.yml`](../taisun.example.yml) is a",
        "complete, commented example. A bad config stops `taisun serve` and `taisun check` at once with",
        "the file, the key and what is wrong.",
        "",
        "## Environment variables",
        "",
    ]
    out += _table(
        ["variable", "type", "default", "description"],
        [[f"`{v.name}`", v.type, v.default, v.description] for v in env_vars()],
    )
    keys = list(config_keys())
    named = [k for k in keys if k.path.endswith("_env")]
    out += [
        "",
        "Also read:",
        "",
        f"- `{RUNBOOKS_ENV_VAR}`: the directory of runbook YAML files (default: `runbooks/` next to the"
        " `bot` package, else `./runbooks`).",
        "- `AWS_*`: the standard boto3 variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,"
        f" `AWS_PROFILE`, ...); the region is `AWS_DEFAULT_REGION`, else `AWS_REGION`, else `{DEFAULT_REGION}`.",
        "- `PROMETHEUS_MULTIPROC_DIR`: where gunicorn workers share metrics; `taisun serve` makes a"
        " temporary one when it starts more than one worker.",
        "- The variables the config's `_env` keys name (DSNs, URLs and tokens):",
        *[
            f"  - `{k.path}`" + ("" if k.default in ('`""`', "required") else f" (default {k.default})")
            for k in named
        ],
        "",
        "## The config file",
        "",
        f"A key path like `environments.{DICT_KEY}.cache.mode` means the `mode` key inside the `cache`",
        f"section of any environment; `[]` marks the items of a list (`environments.{DICT_KEY}.freeze_windows[].start`).",
        'A section whose default is "not set" may be left out. A *member* (in roles and approvers) is a',
        'Slack user ID (`U0123ABCD`), a user-group handle (`@sre-team`) or `"*"` (every member of the',
        "installed workspace, `slack.team_id`; people of another organisation in a Slack Connect channel",
        "act only where a role names their user ID).",
        "",
    ]
    by_section: dict[str, list[Key]] = {}
    for k in keys:
        by_section.setdefault(k.section, []).append(k)
    about = {"": "The keys at the top of the file."} | {k.children: k.description for k in keys if k.children}
    for section, rows in by_section.items():
        out += [f"### `{section}`" if section else "### Top level", "", _cell(about[section]), ""]
        out += _table(
            ["key", "type", "default", "description"],
            [[f"`{k.path}`", k.type, k.default, k.description] for k in rows],
        )
        out.append("")
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bot.core.configdoc", description=__doc__.splitlines()[0])
    p.add_argument("--check", action="store_true", help=f"exit 1 when {DOC_PATH.name} is out of date")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        current = DOC_PATH.read_text(encoding="utf-8") if DOC_PATH.exists() else ""
        if current != text:
            print(f"docs/configuration.md is out of date; run: {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    sys.stdout.buffer.write(text.encode("utf-8"))  # UTF-8 whatever the locale (→, ≥, …)
    return 0


if __name__ == "__main__":
    sys.exit(main())
