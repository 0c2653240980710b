"""The weekly dependency scan, a durable job: the guide's `npm run security:scan` run by its workflow,
its `security-report.json` read, the findings posted grouped by severity (the guide's
`jq '.vulnerabilities | group_by(.severity)'`), and one GitHub issue per critical or high finding.

Each step is saved before the next side effect, so a restarted bot resumes the job without sending
anything twice: the dispatch is marked before it goes out (a resumed job looks for its run instead),
and an issue is claimed on its finding's row before it is opened (a resumed job first looks for the
issue on GitHub by the marker in its body, so a crash between opening and recording opens nothing twice).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import select, update

from bot.backends.github import GitHubBackend, GitHubError, GitHubRateLimited, GitHubUnavailable, WorkflowRun
from bot.core.i18n import t, t_plain, user_message
from bot.core.mrkdwn import Mrkdwn
from bot.core.ops import JobContext, Operation, OpError, OpRefused, Request
from bot.core.secrets import refresher
from bot.core.states import Progress
from bot.core.store.models import Job, SecurityFinding
from bot.security import messages, tasks
from bot.security.report import Finding, ReportError, group_by_severity, parse_report

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

ACTIVE = ("validating", "queued", "running")


def marker(finding_key: str) -> str:
    """Written into the issue's body: how the bot finds its own issue again (after a crash or a restore)."""
    return f"<!-- taisun-finding:{finding_key} -->"


def scan_backend(svc: Services) -> GitHubBackend:
    g, sc = svc.config.github, svc.config.security.scan
    return GitHubBackend(
        token=svc.settings.github_token, api_url=svc.settings.github_api_url, repository=g.repository,
        workflow=sc.workflow, ref=sc.ref or g.ref, tag_pattern=g.tag_pattern,
        token_refresh=refresher(svc.settings, "github_token"),
    )  # fmt: skip


class SecurityScan(Operation):
    name = tasks.SCAN_OPERATION
    title: ClassVar[dict[str, str]] = {"en": "Dependency scan", "ja": "依存関係スキャン"}
    role = "operator"
    needs_env = False
    needs_lock = False
    resumable = True

    def check_request(self, svc: Services, req: Request) -> None:
        if not svc.settings.github_token:
            raise OpError(key="security.scan.no_token")

    def describe(self, job: Job, lang: str = "en") -> str:
        return t_plain("security.scan.describe", lang)

    # -- prepare (worker) ------------------------------------------------------------
    def prepare(self, ctx: JobContext) -> None:
        svc = ctx.svc
        if not svc.settings.github_token:
            raise OpRefused(key="security.scan.no_token")
        sc, g = svc.config.security.scan, svc.config.github
        fields = [
            (ctx.t("security.scan.field.workflow"), ctx.t("security.scan.workflow", workflow=sc.workflow,
                                                          ref=sc.ref or g.ref, repo=g.repository)),
            (ctx.t("security.scan.field.report"), ctx.t("security.scan.report_where", artifact=sc.artifact,
                                                        file=sc.report_file)),
        ]  # fmt: skip
        ctx.record("checked", save={"fields": fields}, workflow=sc.workflow, ref=sc.ref or g.ref)

    # -- run (worker) ----------------------------------------------------------------
    def run(self, ctx: JobContext) -> None:
        gh = scan_backend(ctx.svc)
        try:
            self._dispatch_once(ctx, gh)
            run = self._follow(ctx, gh)
            findings = self._read_report(ctx, gh, run)
            issues, failed = self._issues(ctx, gh, findings, run)
        except OpError as e:
            # The weekly task's message says why at once (the job's card says it too, once it has ended).
            ctx.save(scan_error=user_message(e, ctx.lang))
            tasks.scan_changed(ctx.svc, ctx.job)
            raise
        finally:
            gh.close()
        self._report(ctx, findings, issues, failed, run)

    def _github(self, e: GitHubError) -> OpError:
        return OpError(key="security.scan.github", error=str(e))

    def _dispatch_once(self, ctx: JobContext, gh: GitHubBackend) -> None:
        if ctx.progress.get("dispatch_started_at"):
            return  # resumed: the dispatch may have gone out; find its run, never send it again
        sc = ctx.svc.config.security.scan
        what = {
            "repository": gh.repository,
            "workflow": gh.workflow,
            "ref": gh.ref,
            "inputs": dict(sc.inputs),
        }
        ctx.record(
            "dispatch", outcome="pending", save={"dispatch_started_at": datetime.now(UTC).isoformat()}, **what
        )
        ctx.step(ctx.t("security.scan.dispatching", workflow=gh.workflow), Progress.RUNNING)
        try:
            run_id = gh.dispatch(dict(sc.inputs))
        except GitHubUnavailable as e:  # may have started a run anyway: look for it
            ctx.record(
                "dispatched", outcome="unknown", detail=str(e), save={"dispatch_error": str(e)}, **what
            )
            return
        except GitHubError as e:
            ctx.record("dispatched", outcome="refused", detail=str(e), **what)
            raise self._github(e) from None
        save = {"dispatched_run_id": int(run_id)} if run_id else {}
        ctx.record("dispatched", save=save, run_id=run_id, **what)
        ctx.step(ctx.t("security.scan.dispatched", workflow=gh.workflow), Progress.DONE)

    def _claimed(self, svc: Services, job_id: str) -> set[int]:
        since = datetime.now(UTC) - timedelta(days=2)
        with svc.read_sessions() as s:
            rows = s.scalars(
                select(Job).where(Job.operation == self.name, Job.created_at >= since, Job.id != job_id)
            )
            return {int(j.progress["run_id"]) for j in rows if j.progress.get("run_id")}

    def _follow(self, ctx: JobContext, gh: GitHubBackend) -> WorkflowRun:
        sc = ctx.svc.config.security.scan
        poll = sc.poll_seconds
        run_id = ctx.progress.get("run_id")
        if not run_id:
            started = datetime.fromisoformat(ctx.progress["dispatch_started_at"])
            wait = ctx.svc.config.defaults.find_run_timeout_seconds
            deadline = time.monotonic() + wait
            found: WorkflowRun | None = None
            while found is None and time.monotonic() < deadline:
                try:
                    if ctx.progress.get("dispatched_run_id"):
                        found = gh.get_run(int(ctx.progress["dispatched_run_id"]))
                    else:
                        found = gh.find_run(started, exclude_ids=self._claimed(ctx.svc, ctx.job.id))
                except (GitHubUnavailable, GitHubRateLimited) as e:
                    ctx.step(ctx.t("security.scan.github_slow", error=str(e)), Progress.RUNNING)
                except GitHubError as e:
                    raise self._github(e) from None
                if found is None:
                    ctx.heartbeat()
                    time.sleep(poll)
            if found is None:
                raise OpError(key="security.scan.no_run", seconds=f"{wait:g}", workflow=gh.workflow)
            ctx.record(
                "run_found", run_id=found.id, run_url=found.html_url,
                save={"run_id": found.id, "run_url": found.html_url,
                      "links": [(ctx.t("security.scan.run"), found.html_url)]},
            )  # fmt: skip
            ctx.step(ctx.t("security.scan.run_found", url=found.html_url, id=found.id), Progress.DONE)
            run_id = found.id
        deadline = time.monotonic() + sc.timeout_minutes * 60
        last = ""
        while time.monotonic() < deadline:
            try:
                run = gh.get_run(int(run_id))
            except (GitHubUnavailable, GitHubRateLimited):
                ctx.heartbeat()
                time.sleep(poll)
                continue
            except GitHubError as e:
                raise self._github(e) from None
            if run.status == "completed":
                ctx.record(
                    "run_completed", outcome="ok" if run.conclusion == "success" else "failed", run_id=run.id,
                    conclusion=run.conclusion, save={"run_conclusion": run.conclusion or ""},
                )  # fmt: skip
                ctx.step(ctx.t("security.scan.run_done", conclusion=run.conclusion or "?"), Progress.DONE)
                return run
            if run.status != last:
                last = run.status
                ctx.step(
                    ctx.t("security.scan.run_status", status=run.status.replace("_", " ")), Progress.RUNNING
                )
            ctx.heartbeat()
            time.sleep(poll)
        raise OpError(
            key="security.scan.timeout",
            minutes=f"{sc.timeout_minutes:g}",
            url=ctx.progress.get("run_url", ""),
        )

    def _read_report(self, ctx: JobContext, gh: GitHubBackend, run: WorkflowRun) -> list[Finding]:
        sc = ctx.svc.config.security.scan
        try:
            artifacts = gh.list_artifacts(run.id)
            artifact = next((a for a in artifacts if a.name == sc.artifact), None)
            if artifact is None:
                names = ", ".join(a.name for a in artifacts) or ctx.t("op.none")
                raise OpError(
                    key="security.scan.no_artifact",
                    artifact=sc.artifact,
                    conclusion=run.conclusion or "?",
                    found=names,
                )
            data = gh.read_artifact_file(artifact, sc.report_file)
        except GitHubError as e:
            raise self._github(e) from None
        try:
            findings = parse_report(data)
        except ReportError as e:
            raise OpError(key="security.scan.bad_report", file=sc.report_file, error=str(e)) from None
        counts = {sev: len(group) for sev, group in group_by_severity(findings)}
        ctx.record(
            "report_read", artifact=artifact.name, file=sc.report_file, bytes=len(data), findings=len(findings),
            counts=counts, save={"counts": counts},
        )  # fmt: skip
        ctx.step(ctx.t("security.scan.read", n=len(findings), file=sc.report_file), Progress.DONE)
        self._store(ctx, findings)
        return findings

    def _store(self, ctx: JobContext, findings: list[Finding]) -> None:
        """Every finding once (its key), with when it was last seen."""
        t_now = datetime.now(UTC)
        with ctx.svc.read_sessions() as s:
            known = set(
                s.scalars(
                    select(SecurityFinding.key).where(SecurityFinding.key.in_([f.key for f in findings]))
                )
            )
        for i in range(0, len(findings), 200):
            chunk = findings[i : i + 200]
            with ctx.svc.sessions.begin() as s:
                for f in chunk:
                    values = {"severity": f.severity[:16], "version": f.version[:128], "title": f.title,
                              "url": f.url, "fixed_in": f.fixed_in[:128], "last_seen_at": t_now,
                              "last_job_id": ctx.job.id}  # fmt: skip
                    if f.key in known:
                        s.execute(
                            update(SecurityFinding).where(SecurityFinding.key == f.key).values(**values)
                        )
                    else:
                        tasks.insert_ignore(
                            s, SecurityFinding,
                            [{"key": f.key, "advisory": f.advisory[:255], "package": f.package[:255],
                              "first_seen_at": t_now, "issue_url": "", **values}],
                            ["key"],
                        )  # fmt: skip

    def _issues(
        self, ctx: JobContext, gh: GitHubBackend, findings: list[Finding], run: WorkflowRun
    ) -> tuple[dict[str, str], list[str]]:
        """One issue per critical/high finding that has none: (finding key → issue URL, failures)."""
        svc, sc, job = ctx.svc, ctx.svc.config.security.scan, ctx.job
        wanted = [f for f in findings if f.severity in sc.issue_severities]
        issues = self._known_issues(svc, [f.key for f in findings])
        todo = [f for f in wanted if not issues.get(f.key, "").startswith("http")]
        failed: list[str] = []
        if not todo:
            return issues, failed
        on_github: dict[str, str] = {}
        if sc.issue_labels:
            try:
                for issue in gh.issues_with_label(sc.issue_labels[0]):
                    body = str(issue.get("body") or "")
                    for f in todo:
                        if marker(f.key) in body:
                            on_github.setdefault(f.key, str(issue.get("html_url") or ""))
            except GitHubError as e:
                failed.append(str(e))
                return issues, failed  # without the listing a restored database could open an issue twice
        opened = 0
        for f in todo:
            if opened >= sc.max_issues_per_scan:
                break
            if not self._claim(svc, f.key, job.id):
                continue  # another scan is opening it
            facts = {
                "finding": f.key[:16],
                "severity": f.severity,
                "package": f.package,
                "advisory": f.advisory,
            }
            if f.key in on_github:
                self._set_issue(svc, f.key, on_github[f.key])
                issues[f.key] = on_github[f.key]
                ctx.record("issue_found", url=on_github[f.key], **facts)
                continue
            ctx.record("issue_opening", outcome="pending", **facts)
            try:
                url = gh.create_issue(
                    messages.issue_title(f),
                    messages.issue_body(f, marker(f.key), run.html_url),
                    sc.issue_labels,
                )
            except GitHubError as e:
                self._set_issue(svc, f.key, "")
                ctx.record("issue_opened", outcome="error", detail=str(e), **facts)
                failed.append(str(e))
                if e.status in (401, 403, 404):
                    break  # the same answer for every other one
                continue
            self._set_issue(svc, f.key, url)
            issues[f.key] = url
            opened += 1
            ctx.record("issue_opened", url=url, **facts)
        ctx.save(issues_opened=opened + int(ctx.progress.get("issues_opened") or 0))
        if opened:
            ctx.step(ctx.t("security.scan.issues_opened", n=opened), Progress.DONE)
        return issues, failed

    def _known_issues(self, svc: Services, keys: list[str]) -> dict[str, str]:
        with svc.read_sessions() as s:
            return dict(
                s.execute(
                    select(SecurityFinding.key, SecurityFinding.issue_url).where(
                        SecurityFinding.key.in_(keys)
                    )
                ).all()
            )

    def _claim(self, svc: Services, key: str, job_id: str) -> bool:
        """This job opens the finding's issue: nobody's claim, its own (resumed), or one whose scan ended."""
        with svc.read_sessions() as s:
            holder = (
                s.scalar(select(SecurityFinding.issue_claimed_by).where(SecurityFinding.key == key)) or ""
            )
            if holder and holder != job_id:
                state = s.scalar(select(Job.state).where(Job.id == holder))
                if state in ACTIVE:
                    return False
        with svc.sessions.begin() as s:
            res = s.execute(
                update(SecurityFinding)
                .where(SecurityFinding.key == key, SecurityFinding.issue_url == "",
                       SecurityFinding.issue_claimed_by == holder)
                .values(issue_claimed_by=job_id, issue_claimed_at=datetime.now(UTC))
            )  # fmt: skip
            return bool(res.rowcount == 1)

    def _set_issue(self, svc: Services, key: str, url: str) -> None:
        """The issue's URL ("" after a failure), and the claim ends either way."""
        with svc.sessions.begin() as s:
            s.execute(
                update(SecurityFinding)
                .where(SecurityFinding.key == key)
                .values(issue_url=url, issue_claimed_by="", issue_claimed_at=None)
            )

    def _report(
        self,
        ctx: JobContext,
        findings: list[Finding],
        issues: dict[str, str],
        failed: list[str],
        run: WorkflowRun,
    ) -> None:
        counts = {sev: len(group) for sev, group in group_by_severity(findings)}
        summary: dict[str, Any] = {
            "total": len(findings), "counts": counts, "run_url": run.html_url,
            "issues_opened": int(ctx.progress.get("issues_opened") or 0), "issues_failed": len(failed),
        }  # fmt: skip
        lang = ctx.lang
        head = messages.scan_summary_line(summary, lang)
        body = messages.scan_report(findings, {k: v for k, v in issues.items() if v.startswith("http")}, lang)
        result = Mrkdwn("\n").join([head, body]) if findings else head
        if failed:
            result += Mrkdwn("\n") + t("security.scan.issues_failed", lang, n=len(failed), error=failed[0])
        ctx.save(result=result, summary=summary)
        note = t_plain(
            "security.scan.note", "en", n=len(findings),
            counts=", ".join(f"{k} {v}" for k, v in counts.items()) or "none", url=run.html_url,
        )  # fmt: skip
        tasks.scan_finished(ctx.svc, ctx.job.params.get("occurrence_id"), ctx.job, note, summary)
