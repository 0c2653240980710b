"""Shared fixtures: real databases (SQLite file and PostgreSQL server), a local Slack, bots."""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url

from bot.core.config import Settings
from bot.core.store.db import make_engine, migrate
from bot.slack.localslack import LocalSlack
from tests.fakes.service import FakeService
from tests.harness import BOB, BOT_TOKEN, CAROL, Bot, write_config

PG_ADMIN_URL = os.environ.get("TAISUN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")


def _pg_available() -> bool:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3):
            return True
    except psycopg.Error:
        return False


PG_OK = _pg_available()


_templates: dict[str, str] = {}


def _template(kind: str, tmp_factory: pytest.TempPathFactory) -> str:
    """A migrated database made once per test session; each test gets a copy (much faster than migrating)."""
    if kind not in _templates:
        if kind == "sqlite":
            url = f"sqlite:///{tmp_factory.mktemp('template') / 'template.db'}"
        else:
            name = f"taisun_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        migrate(engine)
        engine.dispose()
        _templates[kind] = url
    return _templates[kind]


def create_pg_database(template: str | None = None) -> str:
    """A fresh PostgreSQL database on the test server (a copy of `template` when given)."""
    name = f"taisun_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        if template:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{make_url(template).database}"')
        else:
            conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    name = make_url(url).database
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session", autouse=True)
def _drop_templates() -> Iterator[None]:
    yield
    url = _templates.get("postgresql")
    if url:
        drop_pg_database(url)


class _MissingTexts(logging.Handler):
    """Collects the keys t() looked up and did not find (it logs them and shows the key itself)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.keys: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "missing message key":
            self.keys.append(str(getattr(record, "key", "?")))


@pytest.fixture(autouse=True)
def _every_text_shown_is_in_the_catalogues() -> Iterator[None]:
    """A test whose bot showed a text the catalogues lack fails, whatever the test asserts itself:
    a reader would have seen the key (`home.recent`) instead of words."""
    logger = logging.getLogger("bot.core.i18n")
    handler, level = _MissingTexts(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)  # whatever LOG_LEVEL the bot under test set
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert not handler.keys, (
        f"texts missing from the catalogues (bot/*/locales/*.yml): {sorted(set(handler.keys))}"
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh, migrated database: a SQLite file, and a PostgreSQL database on the real server."""
    if request.param == "sqlite":
        template = make_url(_template("sqlite", tmp_path_factory)).database
        shutil.copyfile(template, tmp_path / "taisun.db")
        yield f"sqlite:///{tmp_path / 'taisun.db'}"
        return
    if not PG_OK:
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}; the test command should start it")
        pytest.skip("PostgreSQL not reachable")
    url = create_pg_database(template=_template("postgresql", tmp_path_factory))
    yield url
    drop_pg_database(url)


@pytest.fixture
def slack() -> Iterator[LocalSlack]:
    s = LocalSlack(token=BOT_TOKEN).start()
    s.add_usergroup("sre-leads", {BOB, CAROL})
    yield s
    s.stop()


@pytest.fixture
def service() -> Iterator[FakeService]:
    svc = FakeService().start()
    yield svc
    svc.stop()


@pytest.fixture
def settings_for(tmp_path: Path, slack: LocalSlack, service: FakeService):  # type: ignore[no-untyped-def]
    """settings_for(db_url, **overrides) -> Settings pointing at the local Slack and a test config."""

    def make(db_url: str, config_mutate=None, **overrides) -> Settings:  # type: ignore[no-untyped-def]
        cfg = write_config(
            tmp_path / f"taisun-{secrets.token_hex(3)}.yml", service_url=service.url, mutate=config_mutate
        )
        base = {
            "slack_bot_token": BOT_TOKEN,
            "slack_signing_secret": "test-signing-secret-" + secrets.token_hex(8),
            "slack_api_url": slack.url,
            "database_url": db_url,
            "taisun_config": str(cfg),
            "taisun_workers": 2,
            "github_token": "",
        }
        return Settings(**(base | overrides))

    return make


@pytest.fixture
def make_bot(settings_for, slack: LocalSlack):  # type: ignore[no-untyped-def]
    """make_bot(db_url, **settings overrides) -> a started Bot; all are stopped at the end."""
    bots: list[Bot] = []

    def make(db_url: str, start: bool = True, config_mutate=None, settings=None, **overrides) -> Bot:  # type: ignore[no-untyped-def]
        bot = Bot(
            settings or settings_for(db_url, config_mutate=config_mutate, **overrides), slack, start=start
        )
        bots.append(bot)
        return bot

    yield make
    for b in bots:
        b.stop()


GITHUB_TOKEN = "ghp_testtoken0000000000000000000000000000"  # noqa: S105 (a test token, proves redaction)


@pytest.fixture
def github(service: FakeService) -> Iterator[Any]:
    """A fake GitHub with release tags and cd.yml; the fake service reports what the last successful run deployed."""
    from tests.fakes.github import FakeGitHub

    gh = FakeGitHub("taisun/taisun-v2", token=GITHUB_TOKEN)
    gh.start()
    gh.add_releases()
    gh.run_script = ["queued", "in_progress", ("completed", "success")]
    service.version = "v1.2.2"

    def live_version() -> str:
        for run in gh.runs:  # runs of cd.yml deploy; other workflows (a smoke test) deploy nothing
            if not run["path"].endswith("/cd.yml"):
                continue
            if run["status"] == "completed" and run["conclusion"] == "success":
                return str(run["inputs"].get("version", service.version))
        return service.version

    service.version_fn = live_version
    yield gh
    assert gh.errors == []
    gh.stop()


@pytest.fixture(scope="session")
def prometheus() -> Iterator[Any]:
    """A real Prometheus with 30 days of history scraping an exporter the tests control (one per
    test process, each with a history of its own that its live samples continue: tests/prom_fixture.py)."""
    from tests.prom_fixture import running_prometheus, unavailable_reason

    why = unavailable_reason()
    if why:
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with running_prometheus() as server:
        yield server
