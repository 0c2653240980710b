"""docs/configuration.md is generated from bot/core/config.py and cannot drift from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from bot.core import configdoc
from bot.core.config import CacheConfig, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_configuration_md_matches_the_models() -> None:
    doc = ROOT / "docs" / "configuration.md"
    assert doc.exists(), f"docs/configuration.md is missing; run: {configdoc.REGENERATE}"
    assert doc.read_text(encoding="utf-8") == configdoc.render(), (
        f"docs/configuration.md is out of date with bot/core/config.py; run: {configdoc.REGENERATE}"
    )


def test_every_setting_and_config_field_has_a_description() -> None:
    missing = configdoc.undescribed()
    assert not missing, (
        "fields without description= in bot/core/config.py (say what it is for, in one short line): "
        + ", ".join(missing)
    )


def test_every_environment_variable_is_documented_with_its_default() -> None:
    rows = {v.name: v for v in configdoc.env_vars()}
    assert set(rows) == {name.upper() for name in Settings.model_fields}
    assert rows["PORT"].default == "`3000`"
    assert rows["DATABASE_URL"].default == "`sqlite:///taisun.db`"
    assert rows["SLACK_BOT_TOKEN"].default == "not set"
    doc = configdoc.render()
    for name in rows:
        assert f"| `{name}` |" in doc


def _yaml_paths(node: Any, prefix: str = "") -> set[str]:
    """Key paths of a YAML document, written the way the reference writes them."""
    paths: set[str] = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if prefix == "environments":
                here = f"environments.{configdoc.DICT_KEY}"
                paths |= _yaml_paths(value, here)  # the environment's own keys
                continue
            if prefix in _SECTION_MAPS:  # a section under a name of one's own (observability.watch.metrics)
                paths |= _yaml_paths(value, f"{prefix}.{configdoc.DICT_KEY}")  # its keys, as environments'
                continue
            here = f"{prefix}.{key}" if prefix else str(key)
            paths.add(here)
            if here in _MAPS:  # user-chosen keys (github.inputs, alerts.runbooks...) are values
                continue
            paths |= _yaml_paths(value, here)
    elif isinstance(node, list):
        for item in node:
            if isinstance(item, dict):
                paths |= _yaml_paths(item, f"{prefix}[]")
    return paths


_MAPS = {
    k.path for k in configdoc.config_keys() if k.type.startswith("map of") and not k.type.endswith("section")
}
_SECTION_MAPS = {
    k.path for k in configdoc.config_keys() if k.type.startswith("map of") and k.type.endswith("section")
}


def test_every_key_of_the_example_config_is_documented() -> None:
    example = yaml.safe_load((ROOT / "taisun.example.yml").read_text(encoding="utf-8"))
    documented = {k.path for k in configdoc.config_keys()}
    undocumented = _yaml_paths(example) - documented
    assert not undocumented, f"keys in taisun.example.yml the reference does not list: {sorted(undocumented)}"


def test_nested_keys_have_full_paths_readable_types_and_defaults() -> None:
    keys = {k.path: k for k in configdoc.config_keys()}
    mode = keys["environments.<name>.cache.mode"]
    assert mode.type == "one of: flushdb, prefix, flushall"
    assert mode.default == "`flushdb`"
    assert mode.description == CacheConfig.model_fields["mode"].description
    assert keys["environments.<name>.services"].type == "list of str"
    assert keys["environments.<name>.cache"].type == "section or null"
    assert keys["environments.<name>.approval_expiry_minutes"].type == "int or null"
    assert keys["environments.<name>.roles"].type == "map of str → list of str"
    assert keys["environments.<name>.freeze_windows[].start.day"].default == "required"
    assert keys["environments"].default == "required"
    assert keys["defaults.approval_expiry_minutes"].type == "int, ≥ 1, ≤ 1440"
    assert keys["roles.operator"].default == '`["*"]`'
    assert keys["github.create_deployment"].default == "`false`"


def test_placeholders_in_descriptions_survive_markdown() -> None:
    # "<url>" outside a code span would be swallowed as an HTML tag by Markdown renderers.
    assert configdoc._cell("GET <url>/health, `taisun <cmd>`") == "GET \\<url>/health, `taisun <cmd>`"
    assert configdoc._cell("a | b") == "a \\| b"


def test_module_prints_the_reference_and_check_passes() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "bot.core.configdoc"], cwd=ROOT, capture_output=True, check=True, timeout=60
    )
    assert out.stdout.decode("utf-8") == configdoc.render()
    check = subprocess.run(
        [sys.executable, "-m", "bot.core.configdoc", "--check"], cwd=ROOT, capture_output=True, timeout=60
    )
    assert check.returncode == 0, check.stderr.decode()
