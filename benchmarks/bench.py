"""Run every TAISUN benchmark on this machine, print one table, write benchmarks/results/latest.json.

    benchmarks/run            # full run (1,000,000 audit rows, 100 MB and 1 GB backups)
    benchmarks/run --quick    # short smoke: a few seconds per load, 100 MB backup, 100,000 audit rows
    benchmarks/run --only ack,dispatch --db postgresql

Sections (see BENCHMARKS.md): ack, dispatch, storm, backup, audit, worker, observe. Everything is on
loopback; every load loop is bounded by a count and a time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402
from benchmarks.common import PG_ADMIN, RESULTS, ROOT, WORK, log  # noqa: E402

SECTIONS = ("ack", "dispatch", "storm", "backup", "audit", "worker", "observe")
P99_TARGET_MS = 50.0
WRITE_RATIO_TARGET = 0.5


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        cpu = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next(
            (ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("model name")), ""
        )
        mem = Path("/proc/meminfo").read_text()
        kb = int(next(ln.split()[1] for ln in mem.splitlines() if ln.startswith("MemTotal")))
        info["memory_gib"] = round(kb / 1024 / 1024, 1)
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    except (OSError, StopIteration, ValueError):
        pass
    info["sqlite"] = sqlite3.sqlite_version
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN, connect_timeout=3) as c:
            info["postgresql"] = c.execute("SHOW server_version").fetchone()[0]  # type: ignore[index]
    except Exception as e:
        info["postgresql"] = f"unreachable: {type(e).__name__}"
    for tool, args in (("pg_dump", ["--version"]), ("wrk", ["--version"]), ("gzip", ["--version"])):
        if shutil.which(tool):
            out = subprocess.run([tool, *args], capture_output=True, text=True)
            info[tool] = (
                (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "?"
            )
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        info["git_dirty"] = bool(
            subprocess.run(
                ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip()
        )
    except OSError:
        pass
    import hashlib

    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]):
        digest.update(str(path.relative_to(ROOT)).encode() + b"\0" + path.read_bytes())
    info["bot_source_sha256"] = digest.hexdigest()[:16]  # the code measured (others edit it meanwhile)
    import gunicorn
    import slack_bolt.version

    info["gunicorn"] = gunicorn.__version__
    info["slack_bolt"] = slack_bolt.version.__version__
    return info


# --------------------------------------------------------------------------- diagnostics


def diagnostics(service_url: str) -> dict[str, Any]:
    """Small, explanatory measurements of costs seen in the ack results (no load)."""
    import httpx

    from bot.backends import http as bot_http

    out: dict[str, Any] = {}
    t = time.perf_counter()
    for _ in range(10):
        httpx.Client(timeout=3).close()
    out["httpx_client_create_ms"] = round((time.perf_counter() - t) / 10 * 1000, 1)
    urls = {"development": service_url, "staging": service_url, "production": service_url}
    bot_http.check_many(urls)
    t, cpu = time.perf_counter(), time.process_time()
    for _ in range(5):
        bot_http.check_many(urls)
    out["status_checks_wall_ms"] = round((time.perf_counter() - t) / 5 * 1000, 1)
    out["status_checks_cpu_ms"] = round((time.process_time() - cpu) / 5 * 1000, 1)
    return out


# --------------------------------------------------------------------------- tables


def _ok(flag: bool | None) -> str:
    return "-" if flag is None else ("PASS" if flag else "MISS")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(headers), sep, *(line(r) for r in cells)])


def _other(row: dict[str, Any]) -> str:
    cpu = row.get("cpu") or {}
    return f"{cpu['other_pct']:.0f}%" if "other_pct" in cpu else "-"


def _writes(row: dict[str, Any]) -> bool:
    return "deploy" in row.get("scenario", "") and not row.get("diagnostic")


def render(results: dict[str, Any]) -> str:
    out: list[str] = []
    m = results["machine"]
    out.append(
        f"TAISUN benchmarks — {results['started_at']} — {m.get('nproc')} cores, {m.get('memory_gib')} GiB, "
        f"{m.get('cpu_model')}, Python {m.get('python')}, PostgreSQL {m.get('postgresql')}, SQLite {m.get('sqlite')}, "
        f"load tool {results.get('load_tool')}, mode {'quick' if results['quick'] else 'full'}, "
        f"total {results.get('total_seconds', 0):.0f} s"
    )
    s = results["sections"]
    if "ack" in s and isinstance(s["ack"], list):
        out.append(
            f"\n1. Ack path — signed slash commands, 16 connections, gunicorn 2 workers × 8 threads "
            f"(targets: p99 < {P99_TARGET_MS:g} ms; DB-writing requests ≥ {WRITE_RATIO_TARGET:g}× bare req/s)"
        )
        rows = []
        for r in s["ack"]:
            written = r.get("db_rows", {})
            wr = ", ".join(
                f"{k.removeprefix('audit:')}={v}"
                for k, v in written.items()
                if k in ("jobs", "audit:deploy.requested", "audit:deploy.refused", "audit:deploy.failed")
            )
            ratio_ok = (r.get("ratio") or 0) >= WRITE_RATIO_TARGET if _writes(r) else None
            rows.append([
                r["db"], r["scenario"], r["rps"], r["p50_ms"], r["p99_ms"], r.get("ratio", ""), r["errors"], r["non_2xx"],
                wr or "-", _other(r), _ok(None if r.get("diagnostic") else r["p99_ms"] < P99_TARGET_MS), _ok(ratio_ok),
            ])  # fmt: skip
        out.append(
            _table(
                [
                    "db",
                    "request",
                    "req/s",
                    "p50 ms",
                    "p99 ms",
                    "× bare",
                    "errors",
                    "non-2xx",
                    "rows written",
                    "other CPU",
                    "p99<50",
                    "≥0.5×",
                ],
                rows,
            )
        )
        out.append(
            "   non-2xx: Bolt answers 404 when ack() did not come within 3 s (Slack shows the user a timeout). "
            "other CPU: share of the machine used by processes this run did not start (not PostgreSQL)."
        )
    if "diagnostics" in s and isinstance(s["diagnostics"], dict):
        d = s["diagnostics"]
        out.append(
            f"   diagnostics: httpx.Client() {d.get('httpx_client_create_ms')} ms each; one /taisun status follow-up "
            f"(3 environments) {d.get('status_checks_wall_ms')} ms wall, {d.get('status_checks_cpu_ms')} ms CPU"
        )
    if "dispatch" in s and isinstance(s["dispatch"], list):
        out.append(
            "\n2. Click to dispatch — Approve click → workflow dispatch at FakeGitHub (production, @sre-leads approver)"
        )
        rows = [[r["db"], f"{r['measured']}/{r['deploys']}", r["p50_ms"], r["p99_ms"], r["max_ms"], r["click_ack_p50_ms"],
                 r["click_to_first_github_p50_ms"], r["dispatches"], len(r["failures"]), _other(r)] for r in s["dispatch"]]  # fmt: skip
        out.append(
            _table(
                [
                    "db",
                    "measured",
                    "p50 ms",
                    "p99 ms",
                    "max ms",
                    "click ack p50",
                    "click→1st GitHub p50",
                    "dispatches",
                    "failures",
                    "other CPU",
                ],
                rows,
            )
        )
    if "storm" in s and isinstance(s["storm"], list):
        out.append(
            "\n3. Alert storm — Alertmanager v4 posts of 100 alerts over 20 alertnames, 8 in flight (targets: 0 lost, Slack calls bounded)"
        )
        rows = [[r["db"], r["alerts_sent"], r["seconds"], r["alerts_per_s"], r["webhook_p50_ms"], r["webhook_p99_ms"],
                 " ".join(f"{k}×{v}" for k, v in r["statuses"].items()), r["alerts_lost"], r["slack_post_message"], r["slack_update"], r["slack_settle_s"], _other(r),
                 _ok(r["alerts_lost"] == 0 and r["slack_settled"] and r["slack_post_message"] + r["slack_update"] <= 10 * r["alert_groups"])]
                for r in s["storm"]]  # fmt: skip
        out.append(
            _table(
                [
                    "db",
                    "alerts",
                    "s",
                    "alerts/s",
                    "webhook p50 ms",
                    "p99 ms",
                    "statuses",
                    "lost",
                    "postMessage",
                    "update",
                    "settle s",
                    "other CPU",
                    "target",
                ],
                rows,
            )
        )
    if "backup" in s and isinstance(s["backup"], list):
        out.append(
            "\n4. Backup streaming — run_backup (pg_dump → gzip → S3 multipart on moto) vs `pg_dump | gzip > file`"
        )
        peaks = [r["bot_peak_rss_mb"] for r in s["backup"]]
        flat = (max(peaks) - min(peaks) < 32) if len(peaks) > 1 else None
        rows = [[r["target_mb"], r["db_size_mb"], r["dump_raw_mb"], r["reference_s"], r["bot_s"], r["bot_vs_reference"],
                 r.get("reference_to_s3_s"), r.get("bot_vs_reference_to_s3"), r["bot_s3_wait_s"], r["bot_gzip_mb"], r["bot_baseline_rss_mb"], r["bot_peak_rss_mb"],
                 r["stored_sha256_ok"] and r["stored_size_ok"], _other({"cpu": r.get("cpu_bot")})] for r in s["backup"]]  # fmt: skip
        out.append(
            _table(
                [
                    "size",
                    "db MB",
                    "dump MB",
                    "pipeline s",
                    "run_backup s",
                    "ratio",
                    "pipeline → S3 s",
                    "ratio to that",
                    "in S3 calls s",
                    "gzip MB",
                    "RSS before MB",
                    "peak RSS MB",
                    "stored ok",
                    "other CPU",
                ],
                rows,
            )
        )
        out.append(f"   peak memory flat across sizes (< 32 MB apart): {_ok(flat)}")
    if "audit" in s and isinstance(s["audit"], list):
        out.append(
            "\n5. Audit — `/taisun audit production 20` (sequential, served bot) and `taisun audit verify` (CLI)"
        )
        rows = [[r["db"], f"{r['rows']:,}", r["load_s"], r["audit_query"]["p50_ms"], r["audit_query"]["p99_ms"],
                 r["audit_query"].get("entries_shown", ""), r["verify"]["seconds"], f"{r['verify']['rows_per_s']:,}", r["verify"]["ok"],
                 _other(r["verify"])] for r in s["audit"]]  # fmt: skip
        out.append(
            _table(
                [
                    "db",
                    "rows",
                    "bulk load s",
                    "audit 20 p50 ms",
                    "p99 ms",
                    "entries",
                    "verify s",
                    "verify rows/s",
                    "chain ok",
                    "other CPU",
                ],
                rows,
            )
        )
        longest = max((r["audit_query"].get("n100_longest_section_chars", 0) for r in s["audit"]), default=0)
        if longest:
            out.append(
                f"   `/taisun audit production 100`: longest section text {longest} characters (Slack refuses section text over 3,000)"
            )
    if "worker" in s and isinstance(s["worker"], dict) and "quiet" in s["worker"]:
        w = s["worker"]
        out.append(
            f"\n6. Jobs in their own process — {w['request']} on PostgreSQL, serve (TAISUN_JOBS=worker) vs the bare Bolt app, "
            f"alternating {w['rounds']}× {w['window_s']:g} s windows; `taisun worker` ({w['worker_threads']} threads, priority {w.get('worker_priority')}, cgroup {w.get('worker_cgroup')}; the Slack/GitHub/S3 stand-ins at nice {w.get('remotes_nice', 0)}, SCHED_IDLE) "
            f"runs the jobs (targets: ≥ 0.5× bare req/s flat out; ack p99 ≤ 1.5× bare at equal offered load — flat out a "
            f"closed loop's latency is its connections ÷ its req/s, so there the p99 restates the req/s)"
        )
        rows = []
        for phase, label in (("quiet", "worker runs the requests' jobs"),
                             ("background", f"+ {w['backup_db_mb']} MB backup and {w['followed_deploys']} followed deploys in the worker")):  # fmt: skip
            if phase not in w:
                continue
            p = w[phase]
            rows.append([label, p["bare_rps"], p["bot_rps"], p["ratio"], " ".join(map(str, p["round_ratios"])),
                         p["bare_p99_ms"], p["bot_p99_ms"], p["flat_p99_vs_bare"], p["errors"], f"{p['other_cpu_max_pct']:.0f}%",
                         _ok(p["ratio_ok"])])  # fmt: skip
        out.append(
            _table(
                [
                    "while",
                    "bare req/s",
                    "bot req/s",
                    "× bare",
                    "per round",
                    "flat-out bare p99 ms",
                    "bot p99 ms",
                    "p99 × bare",
                    "errors (incl. 200s with an error reply)",
                    "other CPU max",
                    "≥0.5×",
                ],
                rows,
            )  # fmt: skip
        )
        for phase in ("quiet", "background", "capped"):
            pc = w.get(phase, {}).get("paced") or {}
            if phase == "capped" and pc:
                c = w[phase]
                phase = (
                    f"background with backup.max_rate_mib_per_s={c['max_rate_mib_per_s']:g} "
                    f"({c['backups_started']} backups back to back, the last in {c['last_backup_seconds'] or 0:.1f} s; "
                    f"{c['followed_at_end']} followed)"
                )
            if phase == "background" and pc and "backups_started" in w.get("backup", {}):
                b = w["backup"]
                phase = (
                    f"background ({b['backups_started']} backups, one started at each window, the last in "
                    f"{b['last_backup_seconds'] or 0:.1f} s)"
                )
            if "p99_vs_bare" in pc:
                out.append(
                    f"   {phase}, both paced at {pc['rate']:g} req/s (equal offered load), {pc.get('rounds')} rounds "
                    f"pooled: ack p50 bare "
                    f"{pc['bare_p50_ms']} / bot {pc['bot_p50_ms']} ms, p99 bare {pc['bare_p99_ms']} / bot "
                    f"{pc['bot_p99_ms']} ms = {pc['p99_vs_bare']}× bare (per round "
                    f"{' '.join(map(str, pc['round_p99_vs_bare']))}) p99≤1.5× {_ok(pc['p99_ok'])}"
                    + (f"; {pc['unexpected']} answered with an error reply" if pc.get("unexpected") else "")
                    + (
                        f"; the durable floor p50 {pc['durable_p50_ms']} / p99 {pc['durable_p99_ms']} ms = "
                        f"{pc['durable_p99_vs_bare']}× bare; the bot ÷ the floor per round "
                        f"{' '.join(map(str, pc.get('round_p99_vs_floor', [])))}"
                        if "durable_p99_ms" in pc
                        else ""
                    )
                )
        c = w.get("connections") or {}
        if c.get("samples"):
            held = ", ".join(f"{name} {n}" for name, n in c["peaks"].items())
            out.append(
                f"   PostgreSQL client connections, sampled every 0.1 s through the run: peak {c['peak_total']} of "
                f"max_connections {c['max_connections']} (each name's own peak: {held})"
            )
        q = w["quiet"]
        if "durable_ratio" in q:
            out.append(
                f"   floor, same run: the bare app committing a dedupe key and a request row per ack (psycopg, no "
                f"ORM) {q['durable_rps']} req/s = {q['durable_ratio']}× bare, p99 {q['durable_p99_ms']} ms, CPU "
                f"{q['durable_cpu_ms_per_request']} ms/request; serve = {q['bot_vs_durable']}× that floor's req/s, "
                f"p99 {q['bot_p99_vs_durable']}× its p99"
            )
        if "embedded_ratio" in q:
            out.append(
                f"   reference, same run: jobs embedded in serve (the default) {q['embedded_rps']} req/s = "
                f"{q['embedded_ratio']}× bare, p99 {q['embedded_p99_ms']} ms = {q['embedded_p99_vs_bare']}× bare"
            )
        for phase in ("quiet", "background"):
            p = w.get(phase, {})
            if "bot_cpu_ms_per_request" in p:
                out.append(
                    f"   CPU per request ({phase}): bare app {p.get('bare_cpu_ms_per_request')} ms, serve "
                    f"{p['bot_cpu_ms_per_request']} ms"
                    + (
                        f", embedded serve {p['embedded_cpu_ms_per_request']} ms"
                        if "embedded_cpu_ms_per_request" in p
                        else ""
                    )
                    + " (its own processes' CPU ÷ requests answered; the worker's is apart)"
                )
        quiet_bot = [x for x in w["quiet"]["windows"] if x["app"] == "bot"]
        out.append(
            "   worker caught up after each quiet bot window in "
            + ", ".join(f"{x['caught_up_s']} s ({x['jobs_created']} jobs)" for x in quiet_bot)
            + f"; background: backup {w.get('backup', {}).get('state')}, "
            + ", ".join(
                f"{x['app']} window: backup {'running' if x['backup_running_at_end'] else 'done'}, {x['followed_at_end']} followed"
                for x in w["background"]["windows"]
            )
        )
    if "observe" in s and isinstance(s["observe"], dict) and "answers" in s["observe"]:
        o = s["observe"]
        out.append(
            f"\n7. Observability — a real Prometheus with 30 days of history ({o.get('series')} series; "
            f"set up in {o.get('prometheus_setup_s')} s); answer = request sent → answer at response_url"
        )
        rows = [[a["scenario"], a["n"], a["ack_p50_ms"], a["ack_p99_ms"], a["answer_p50_ms"], a["answer_p99_ms"],
                 a["lost"]] for a in o["answers"]]  # fmt: skip
        out.append(
            _table(
                ["command", "n", "ack p50 ms", "ack p99 ms", "answer p50 ms", "answer p99 ms", "lost"], rows
            )
        )
        rows = [[r["scenario"], r["n"], r["p50_ms"], r["p99_ms"]] for r in o.get("in_process", [])]
        out.append(_table(["in-process (no Slack)", "n", "p50 ms", "p99 ms"], rows))
        alone, busy = o["ack"]["alone"], o["ack"]["while_observing"]
        out.append(_table(
            ["/taisun help, 16 connections", "req/s", "p50 ms", "p99 ms", "non-2xx", "answers meanwhile", "their p99 ms", "p99<50"],
            [["alone", alone["rps"], alone["p50_ms"], alone["p99_ms"], alone["non_2xx"], "-", "-", _ok(alone["p99_ms"] < P99_TARGET_MS)],
             ["while 4 people ask for metrics and SLOs", busy["rps"], busy["p50_ms"], busy["p99_ms"], busy["non_2xx"],
              busy.get("observability_answers_during"), busy.get("observability_answer_p99_ms"), _ok(busy["p99_ms"] < P99_TARGET_MS)]],
        ))  # fmt: skip
        pa, pb = o["paced"]["alone"], o["paced"]["while_observing"]
        out.append(_table(
            [f"/taisun help, steady {pa['rate']:g}/s", "p50 ms", "p99 ms", "max ms", "non-2xx"],
            [["alone", pa["p50_ms"], pa["p99_ms"], pa["max_ms"], pa["non_2xx"]],
             ["while 4 people ask for metrics and SLOs", pb["p50_ms"], pb["p99_ms"], pb["max_ms"], pb["non_2xx"]]],
        ))  # fmt: skip
        out.append(
            f"   during the saturating run Prometheus itself used {busy.get('prometheus_cpu_pct_of_machine')} % of the "
            f"machine; other CPU (not started by this run) {_other(busy)}"
        )
    errs = {k: v for k, v in s.items() if isinstance(v, dict) and "error" in v}
    for k, v in errs.items():
        out.append(f"\n{k}: FAILED — {v['error']}")
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="benchmarks/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="short smoke run (well under 10 minutes)")
    p.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma-separated sections: {','.join(SECTIONS)}"
    )
    p.add_argument("--db", default="sqlite,postgresql", help="databases: sqlite,postgresql")
    p.add_argument("--duration", type=float, default=None, help="seconds of load per ack scenario")
    p.add_argument("--backup-sizes", default=None, help="MB, e.g. 100,1000")
    p.add_argument("--audit-rows", type=int, default=None)
    p.add_argument("--output", default=str(RESULTS / "latest.json"))
    args = p.parse_args(argv)

    common.install_signal_handlers()
    WORK.mkdir(parents=True, exist_ok=True)
    only = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    quick = args.quick
    duration = args.duration or (3.0 if quick else 8.0)
    warmup = 1.0 if quick else 2.0
    sizes = [int(x) for x in (args.backup_sizes or ("100" if quick else "100,1000")).split(",")]
    audit_rows = args.audit_rows or (100_000 if quick else 1_000_000)
    dispatch_n = 10 if quick else 30
    storm_alerts = 2_000 if quick else 10_000

    from benchmarks import loadgen

    started = time.monotonic()
    results: dict[str, Any] = {
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "machine": machine(),
        "load_tool": loadgen.tool(),
        "settings": {
            "ack_duration_s": duration,
            "ack_warmup_s": warmup,
            "connections": 16,
            "gunicorn_workers": 2,
            "gunicorn_threads": 8,
            "dispatch_n": dispatch_n,
            "storm_alerts": storm_alerts,
            "backup_sizes_mb": sizes,
            "audit_rows": audit_rows,
        },  # fmt: skip
        "sections": {},
        "section_seconds": {},
    }
    dbs = [d.strip() for d in args.db.split(",") if d.strip()]
    if "postgresql" in dbs and str(results["machine"].get("postgresql", "")).startswith("unreachable"):
        log(f"PostgreSQL is not reachable at {PG_ADMIN}: running SQLite only")
        dbs = [d for d in dbs if d != "postgresql"]
    if loadgen.tool() != "wrk":
        log("wrk is not installed (apt-get install -y wrk): using the Python load generator")

    from tests.fakes.service import FakeService

    service = FakeService().start()
    config = common.write_config(WORK / "taisun-bench.yml", service_url=service.url)

    def section(name: str, fn: Any) -> None:
        if name not in only:
            return
        t = time.monotonic()
        try:
            results["sections"][name] = fn()
        except Exception as e:
            traceback.print_exc()
            results["sections"][name] = {"error": f"{type(e).__name__}: {e}"}
        results["section_seconds"][name] = round(time.monotonic() - t, 1)
        log(f"{name} done in {results['section_seconds'][name]:.0f} s")

    try:
        from benchmarks import (
            ack,
            alert_storm,
            audit_bench,
            backup_bench,
            dispatch,
            observe_bench,
            worker_bench,
        )

        section(
            "ack",
            lambda: ack.run(
                dbs,
                service_url=service.url,
                config=config,
                duration=duration,
                warmup=warmup,
                diagnostic=not quick,
            ),
        )
        if "ack" in only:
            results["sections"]["diagnostics"] = diagnostics(service.url)
        section(
            "dispatch",
            lambda: dispatch.run(
                dbs,
                n=dispatch_n,
                config_for=lambda url: common.write_config(WORK / "taisun-dispatch.yml", service_url=url),
            ),
        )
        section("storm", lambda: alert_storm.run(dbs, total=storm_alerts, config=config))
        section(
            "backup",
            lambda: backup_bench.run(sizes) if "postgresql" in dbs else {"error": "needs PostgreSQL"},
        )
        section(
            "worker",
            lambda: (
                worker_bench.run(
                    base_config=config,
                    duration=duration,
                    rounds=1 if quick else 2,
                    backup_mb=100 if quick else 1000,
                    followed=10 if quick else 50,
                )
                if "postgresql" in dbs
                else {"error": "needs PostgreSQL"}
            ),
        )
        section(
            "audit",
            lambda: audit_bench.run(dbs, rows_n=audit_rows, queries=20 if quick else 100, config=config),
        )
        section(
            "observe",
            lambda: observe_bench.run(dbs[0], base_config=config, n=15 if quick else 40, duration=duration),
        )
    finally:
        service.stop()
        common.cleanup()
    results["total_seconds"] = round(time.monotonic() - started, 1)
    table = render(results)
    results["table"] = table
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(table)
    print(f"\nresults: {out}")
    return 1 if any(isinstance(v, dict) and "error" in v for v in results["sections"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
