"""scripts/i18n-split: a branch that still adds texts to a MESSAGES dict is moved into the YAML catalogues.

After merging such a branch, the lead runs the script on what is left of the dict; new keys go to the
capability that holds their prefix, with their comments, and every file keeps what it had.
"""

from __future__ import annotations

import difflib
import importlib.util
import shutil
import subprocess
import sys
from importlib.machinery import SourceFileLoader
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.i18n import MESSAGES, load_catalogues

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "scripts" / "i18n-split"


def _script() -> ModuleType:
    loader = SourceFileLoader("i18n_split", str(SCRIPT))
    spec = importlib.util.spec_from_loader("i18n_split", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["i18n_split"] = module  # its dataclasses look their module up
    loader.exec_module(module)
    return module


split = _script()


@settings(max_examples=300, deadline=None)
@given(text=st.text(), indent=st.sampled_from([0, 2, 6]))
def test_any_text_the_script_writes_reads_back_exactly(text, indent):
    """Quoted or as a literal block, at any depth: PyYAML (so the bot) reads the very same string."""
    doc = " " * indent + "k: " + split.scalar(text, indent) + "\n"
    if indent:
        assert yaml.safe_load("r:\n" + doc) == {"r": {"k": text}}
    else:
        assert yaml.safe_load(doc) == {"k": text}


@settings(max_examples=200, deadline=None)
@given(
    name=st.text(min_size=1) | st.sampled_from(["yes", "No", "on", "OFF", "y", "n", "null", "1", "a.b", "~"])
)
def test_any_key_the_script_writes_reads_back_as_that_key(name):
    assert yaml.safe_load(f"{split.yaml_key(name)}: x\n") == {name: "x"}


def test_multi_line_texts_are_written_as_literal_blocks_translators_can_read():
    assert split.scalar("line 1\n  indented\nline 3", 4) == "|-\n      line 1\n        indented\n      line 3"
    assert split.scalar("\nafter a blank line", 2) == "|-\n\n    after a blank line"
    assert split.scalar("trailing space \nnext", 2) == '"trailing space \\nnext"'  # an editor would strip it
    assert split.scalar("yes", 2) == '"yes"' and split.yaml_key("yes") == '"yes"'


LEFTOVER = """
MESSAGES: dict[str, dict[str, str]] = {
    # issue 15: warming the cache after a clear
    "op.cache.warm.start": {"en": "Warming {n} keys…", "ja": "{n} 件のキーを温めています…"},
    "op.cache.warm.done": {"en": "yes", "ja": "はい"},  # a word YAML reads as true unquoted
    "op.cache.warm.keys": {
        "en": "Warmed:\\n  {keys}\\n# not a comment: {n} keys",
        "ja": "温めたキー:\\n  {keys}\\n# コメントではない: {n} 件",
    },
    "err.locked.release_warm": {"en": "{env}: it is released once warm.", "ja": "{env}: 温まると解除されます。"},
    "gauges.title": {"en": "*Gauges* for {env}", "ja": "{env} の *ゲージ*"},
}
"""
NEW = {
    "op.cache.warm.start": ("operations", "Warming {n} keys…", "{n} 件のキーを温めています…"),
    "op.cache.warm.done": ("operations", "yes", "はい"),
    "op.cache.warm.keys": (
        "operations",
        "Warmed:\n  {keys}\n# not a comment: {n} keys",
        "温めたキー:\n  {keys}\n# コメントではない: {n} 件",
    ),
    "err.locked.release_warm": ("core", "{env}: it is released once warm.", "{env}: 温まると解除されます。"),
    "gauges.title": ("core", "*Gauges* for {env}", "{env} の *ゲージ*"),
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A copy of the repository's catalogues and i18n.py, with a merge's leftover dict in i18n.py."""
    for locales in sorted((ROOT / "bot").glob("*/locales")):
        shutil.copytree(locales, tmp_path / "bot" / locales.parent.name / "locales")
    source = (ROOT / "bot" / "core" / "i18n.py").read_text(encoding="utf-8")
    at = source.index("\nMESSAGES, CATALOGUE_OF = ")
    (tmp_path / "bot" / "core" / "i18n.py").write_text(
        source[:at] + "\n" + LEFTOVER + source[at:], encoding="utf-8"
    )
    return tmp_path


def _run(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--root", str(repo), *args], capture_output=True, text=True, timeout=120
    )


def _lines_removed(before: str, after: str) -> list[str]:
    return [line for line in difflib.ndiff(before.split("\n"), after.split("\n")) if line.startswith("- ")]


def test_a_leftover_dict_moves_into_the_catalogues_of_its_prefixes_and_leaves_the_loader(repo):
    catalogues = {p: p.read_text(encoding="utf-8") for p in sorted((repo / "bot").glob("*/locales/*.yml"))}
    i18n = repo / "bot" / "core" / "i18n.py"

    run = _run(repo, "--leftover", str(i18n))

    assert run.returncode == 0, run.stdout + run.stderr
    assert "added      op.cache.warm.start → bot/operations/locales (op.cache.*)" in run.stdout
    assert "added      gauges.title → bot/core/locales (no shared prefix)" in run.stdout
    assert "MESSAGES literal" in run.stdout and "is removed" in run.stdout
    assert i18n.read_text(encoding="utf-8").count("MESSAGES") == (
        ROOT / "bot/core/i18n.py"
    ).read_text().count("MESSAGES")
    messages, origin = load_catalogues(repo / "bot")
    for key, (package, en, ja) in NEW.items():
        assert messages[key] == {"en": en, "ja": ja} and origin[key] == package, key
    assert {k: v for k, v in messages.items() if k not in NEW} == MESSAGES  # nothing else changed
    for path, before in catalogues.items():
        after = path.read_text(encoding="utf-8")
        assert not _lines_removed(before, after), path  # every line kept, comments included
        if path.parent.parent.name == "operations":
            assert "      # issue 15: warming the cache after a clear\n      warm:\n" in after
            assert "# a word YAML reads as true unquoted" in after
    again = _run(repo, "--leftover", str(i18n))
    assert again.returncode == 0 and "no MESSAGES dict literal, nothing to move" in again.stdout


def _old_module(texts: dict[str, dict[str, str]]) -> str:
    body = "".join(f"    {k!r}: {{'en': {v['en']!r}, 'ja': {v['ja']!r}}},\n" for k, v in texts.items())
    return "MESSAGES = {\n" + body + "}\n"


def test_a_text_changed_on_the_branch_is_taken_only_when_the_merge_base_shows_it_was_theirs(repo):
    """The branch's whole old i18n.py: unchanged keys are skipped, changed ones replaced in place."""
    base = {k: MESSAGES[k] for k in ("shell.help", "card.approve", "card.reject", "home.recent")}
    theirs = dict(base) | {
        "shell.help": {"en": "Type a command:\n  /as bob   act as bob", "ja": MESSAGES["shell.help"]["ja"]},
        "card.approve": {"en": "Approve it", "ja": "承認する"},
        "card.reject": {"en": "Reject it", "ja": MESSAGES["card.reject"]["ja"]},
    }
    (repo / "base.py").write_text(_old_module(base), encoding="utf-8")
    (repo / "theirs.py").write_text(_old_module(theirs), encoding="utf-8")
    ja = repo / "bot" / "slack" / "locales" / "ja.yml"
    ja.write_text(
        ja.read_text(encoding="utf-8").replace('reject: "却下"', 'reject: "却下する"', 1), encoding="utf-8"
    )
    before = {p: p.read_text(encoding="utf-8") for p in sorted((repo / "bot").glob("*/locales/*.yml"))}

    unsure = _run(repo, "--leftover", str(repo / "theirs.py"), "--keep")
    assert unsure.returncode == 1 and "CONFLICT   card.approve [en]" in unsure.stdout
    assert "5 differing texts left as the catalogues have them" in unsure.stdout
    assert {p: p.read_text(encoding="utf-8") for p in before} == before  # a conflict writes nothing

    merged = _run(repo, "--leftover", str(repo / "theirs.py"), "--base", str(repo / "base.py"))
    assert merged.returncode == 0, merged.stdout + merged.stderr
    messages, _ = load_catalogues(repo / "bot")
    assert messages["shell.help"]["en"] == "Type a command:\n  /as bob   act as bob"
    assert messages["card.approve"] == {"en": "Approve it", "ja": "承認する"}
    assert messages["card.reject"] == {"en": "Reject it", "ja": "却下する"}  # our ja change stays
    en = (repo / "bot" / "slack" / "locales" / "en.yml").read_text(encoding="utf-8")
    assert "    help: |-\n      Type a command:\n        /as bob   act as bob\n    people:" in en
    changed = _lines_removed(before[repo / "bot" / "slack" / "locales" / "en.yml"], en)
    assert len(changed) == 2 + MESSAGES["shell.help"]["en"].count("\n") + 1  # those values' lines only
