"""States are enums (bot.core.states), not strings typed at each use: a misspelt "runing" compared
against a job's state is silently never true, and renaming a state must find every place it matters.

This reads the bot's own source: every place a durable thing's state is set or compared, and every
line a job adds to its card, must name a member, not a literal.
"""

from __future__ import annotations

import ast
from pathlib import Path

from bot.core import states
from bot.core.blocks import STEP_ICON

BOT = Path(__file__).resolve().parent.parent / "bot"
# Attributes and keys that hold a state of bot.core.states.
STATE_NAMES = {"state", "job_state"}
# Every value some state enum has: a literal among them is a state typed by hand.
STATE_VALUES = {
    str(member)
    for enum in (
        states.JobState, states.StepState, states.RunState, states.IncidentState, states.Progress,
        states.WatchState, states.OccurrenceState, states.ReviewState,
    )
    for member in enum
}  # fmt: skip


def _names_a_state(node: ast.expr) -> bool:
    if isinstance(node, ast.Attribute):
        return node.attr in STATE_NAMES
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return node.slice.value in STATE_NAMES
    return False


def _literals(node: ast.expr) -> list[str]:
    """The state-like string literals in a comparator: "running", or ("queued", "running")."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if node.value in STATE_VALUES else []
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [v for e in node.elts for v in _literals(e)]
    return []


def _typed_by_hand(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and _names_a_state(node.left):
            found += [
                (node.lineno, f"compares a state with {v!r}") for c in node.comparators for v in _literals(c)
            ]
        elif isinstance(node, ast.Assign) and any(_names_a_state(t) for t in node.targets):
            found += [(node.lineno, f"sets a state to {v!r}") for v in _literals(node.value)]
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Attribute) and node.func.attr == "step":  # JobContext.step
                status = node.args[1:2] + [k.value for k in node.keywords if k.arg == "status"]
            else:
                status = []
            found += [(node.lineno, f"a progress line's status {v!r}") for a in status for v in _literals(a)]
            found += [
                (node.lineno, f"writes state={v!r}")
                for k in node.keywords
                if k.arg in STATE_NAMES
                for v in _literals(k.value)
            ]
    return found


def test_the_bots_code_names_states_by_their_enum_members():
    offences = [
        f"{path.relative_to(BOT.parent)}:{line}: {what}"
        for path in sorted(BOT.rglob("*.py"))
        if "migrations" not in path.parts  # a migration keeps the values as they were then
        for line, what in _typed_by_hand(ast.parse(path.read_text(encoding="utf-8")))
    ]
    assert offences == []


def test_the_check_finds_a_state_typed_by_hand():
    # The check above is only as good as what it recognises: each shape it looks for, caught.
    source = """
if job.state == "running": pass
if view.job_state in ("queued", "running"): pass
occ.state = "missed"
ctx.step("dumping", "running")
s.execute(update(T).values(state="done"))
if progress["state"] == "watching": pass
"""
    assert sorted({line for line, _ in _typed_by_hand(ast.parse(source))}) == [2, 3, 4, 5, 6, 7]


def test_every_progress_status_has_its_icon_on_the_card():
    assert set(STEP_ICON) == set(states.Progress)
