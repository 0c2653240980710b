"""Tables of the deploy timeline: every workflow run (or GitHub deployment) the bot has seen, and the
poller's place in each environment's run listing."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.core.store.models.base import Base, utcnow


class DeployRun(Base):
    """One deploy workflow run (or a deployment without a run) and the job that follows it.

    The unique (repository, run_key) is what makes a run count once, however it was seen: the bot's
    own dispatch, a webhook delivered twice or to two replicas, the poller. `job_id` is the job that
    owns the run: "" while nobody does yet (a run that may still turn out to be the bot's own waits so).
    """

    __tablename__ = "deploy_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    repository: Mapped[str] = mapped_column(String(255))
    run_key: Mapped[str] = mapped_column(String(64))  # run:<run id> or deployment:<deployment id>
    run_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    deployment_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    run_number: Mapped[int | None] = mapped_column(Integer, default=None)
    environment: Mapped[str] = mapped_column(String(64), default="")
    # How the deploy was started: slack, push, tag, workflow_dispatch, deployment, auto_rollback, ...
    origin: Mapped[str] = mapped_column(String(32), default="")
    event: Mapped[str] = mapped_column(String(64), default="")  # the run's GitHub event
    ref: Mapped[str] = mapped_column(String(255), default="")  # branch or tag the run ran on
    sha: Mapped[str] = mapped_column(String(64), default="")
    actor: Mapped[str] = mapped_column(String(64), default="")  # GitHub login
    version: Mapped[str] = mapped_column(String(255), default="")  # "" until known
    html_url: Mapped[str] = mapped_column(Text, default="")
    run_created_at: Mapped[datetime | None] = mapped_column(default=None)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_via: Mapped[str] = mapped_column(String(16), default="")  # webhook, poller, bot
    job_id: Mapped[str] = mapped_column(String(36), default="")

    __table_args__ = (
        UniqueConstraint("repository", "run_key", name="uq_deploy_runs_repository_run_key"),
        Index("ix_deploy_runs_job_id", "job_id"),
    )


class GithubPoll(Base):
    """The poller's state for one environment's run listing: its ETag and the newest run seen."""

    __tablename__ = "github_polls"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # the environment
    etag: Mapped[str] = mapped_column(Text, default="")
    last_run_id: Mapped[int | None] = mapped_column(BigInteger, default=None)
    next_poll_at: Mapped[datetime | None] = mapped_column(default=None)
    polled_at: Mapped[datetime | None] = mapped_column(default=None)
    result: Mapped[str] = mapped_column(String(32), default="")  # changed, not_modified, error
