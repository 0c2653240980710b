"""Reading the audit log as an auditor does: through the `taisun` command line."""

from __future__ import annotations

import json
from typing import Any

from bot.core.config import Settings
from tests.procs import run_cli


def exported_audit(settings: Settings, job_id: str | None = None) -> list[dict[str, Any]]:
    """What an auditor reads: `taisun audit export --format jsonl` (one job's rows, when given),
    after `taisun audit verify` has found the chain intact."""
    verify = run_cli(["audit", "verify", "--json"], settings)
    assert verify.returncode == 0 and json.loads(verify.stdout)["ok"], verify.stdout + verify.stderr
    out = run_cli(["audit", "export", "--format", "jsonl"], settings)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines() if line.strip()]
    return [r for r in rows if job_id is None or r["job_id"] == job_id]


def facts(rows: list[dict[str, Any]], action: str) -> list[dict[str, Any]]:
    """The params of every exported row with that action, in order."""
    return [r["params"] for r in rows if r["action"] == action]
