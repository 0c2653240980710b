"""GitHubBackend against FakeGitHub: real PyGithub, real HTTP on loopback, no mocks."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from bot.backends.github import (
    GitHubBackend,
    GitHubError,
    GitHubRateLimited,
    GitHubUnavailable,
    version_key,
)
from tests.fakes.github import FakeGitHub

REPO = "taisun/taisun-v2"
TOKEN = "ghp_test_token_0123456789abcdef"
PATTERN = r"^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"
INPUTS = ["environment", "version", "rollback"]

MakeBackend = Callable[..., GitHubBackend]


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub(REPO, token=TOKEN) as fake:
        fake.declare_workflow("cd.yml", inputs=INPUTS, required=["environment", "version"])
        yield fake
        assert fake.errors == []


@pytest.fixture
def make_backend(gh: FakeGitHub) -> Iterator[MakeBackend]:
    made: list[GitHubBackend] = []

    def make(**overrides: object) -> GitHubBackend:
        kwargs: dict[str, object] = {
            "token": TOKEN,
            "api_url": gh.url,
            "repository": REPO,
            "workflow": "cd.yml",
            "ref": "main",
            "tag_pattern": PATTERN,
            "timeout": 5.0,
        } | overrides
        backend = GitHubBackend(**kwargs)  # type: ignore[arg-type]
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.close()


@pytest.fixture
def backend(make_backend: MakeBackend) -> GitHubBackend:
    return make_backend()


def deploy_inputs(version: str = "v1.2.3") -> dict[str, str]:
    return {"environment": "production", "version": version, "rollback": "false"}


# ---------------------------------------------------------------- tags


def test_latest_tags_are_newest_semver_first_with_prereleases_below_their_release(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    for name in ["v1.9.0", "v1.10.0-rc.1", "v1.10.0", "v1.2.3", "v1.10.0-rc.2", "v2.0.0-beta.1"]:
        gh.add_tag(name)

    names = [t.name for t in backend.latest_tags()]

    assert names == ["v2.0.0-beta.1", "v1.10.0", "v1.10.0-rc.2", "v1.10.0-rc.1", "v1.9.0", "v1.2.3"]


def test_latest_tags_leave_out_names_outside_the_tag_pattern(gh: FakeGitHub, backend: GitHubBackend) -> None:
    for name in ["v1.0.0", "latest", "v1.1", "release-2024-01-01", "v1.1.0", "1.2.0", "v1.2.0.post1"]:
        gh.add_tag(name)

    assert [t.name for t in backend.latest_tags()] == ["v1.1.0", "v1.0.0"]


def test_latest_tags_read_every_page_because_github_does_not_list_them_in_version_order(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    # 150 tags: by name "v1.99.0" comes first, but v1.149.0 (on page 2) is the newest.
    for minor in range(150):
        gh.add_tag(f"v1.{minor}.0")

    tags = backend.latest_tags(limit=3)

    assert [t.name for t in tags] == ["v1.149.0", "v1.148.0", "v1.147.0"]
    pages = gh.requests_to("/tags", "GET")
    assert len(pages) == 2 and "page=2" in pages[1].path


def test_latest_tags_give_the_commit_sha_of_annotated_tags(gh: FakeGitHub, backend: GitHubBackend) -> None:
    sha = gh.add_tag("v3.0.0", annotated=True)

    assert [(t.name, t.sha) for t in backend.latest_tags(limit=1)] == [("v3.0.0", sha)]


def test_version_key_follows_semver_precedence() -> None:
    ordered = [
        "v1.0.0-alpha",
        "v1.0.0-alpha.1",
        "v1.0.0-alpha.beta",
        "v1.0.0-beta",
        "v1.0.0-beta.2",
        "v1.0.0-beta.11",
        "v1.0.0-rc.1",
        "v1.0.0",
        "v1.0.1",
        "v1.2.0",
        "v1.10.0",
        "v10.0.0",
    ]
    assert sorted(reversed(ordered), key=version_key) == ordered
    assert version_key("not-a-version") < version_key("v0.0.1")


def test_resolve_tag_of_a_lightweight_tag_is_its_commit(gh: FakeGitHub, backend: GitHubBackend) -> None:
    sha = gh.add_tag("v1.2.3")

    assert backend.resolve_tag("v1.2.3") == sha


def test_resolve_tag_of_an_annotated_tag_is_the_commit_not_the_tag_object(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    sha = gh.add_tag("v1.2.3", annotated=True)

    assert backend.resolve_tag("v1.2.3") == sha
    assert gh.requests_to("/git/tags/", "GET"), "the tag object should have been dereferenced"


def test_resolve_tag_of_a_missing_tag_is_none(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.add_tag("v1.2.3")

    assert backend.resolve_tag("v9.9.9") is None
    assert backend.resolve_tag("") is None


def test_resolve_tag_sees_a_moved_tag(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.add_tag("v1.2.3")
    fixed = gh.add_commit("Hotfix the hotfix")
    gh.move_tag("v1.2.3", fixed)

    assert backend.resolve_tag("v1.2.3") == fixed


def test_resolve_tag_in_a_repository_the_token_cannot_see_is_an_error_not_a_missing_tag(
    make_backend: MakeBackend,
) -> None:
    backend = make_backend(repository="taisun/typo")

    with pytest.raises(GitHubError, match="repository taisun/typo not found") as err:
        backend.resolve_tag("v1.2.3")
    assert err.value.status == 404


# ---------------------------------------------------------------- compare


def test_compare_counts_commits_and_lists_first_lines_newest_first(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    gh.add_tag("v1.0.0")
    gh.add_commit("Fix login redirect\n\nLonger explanation that must not show.")
    gh.add_commit("Add /version endpoint")
    gh.add_tag("v1.1.0", message="Release v1.1.0")

    result = backend.compare("v1.0.0", "v1.1.0")

    assert result.total_commits == 3
    assert result.titles == ["Release v1.1.0", "Add /version endpoint", "Fix login redirect"]
    assert result.html_url == f"https://github.com/{REPO}/compare/v1.0.0...v1.1.0"


def test_compare_of_a_long_range_shows_the_newest_twenty_titles(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    base = gh.add_tag("v1.0.0")
    for n in range(205):
        gh.add_commit(f"Change {n}")

    result = backend.compare(base, gh.head)

    assert result.total_commits == 205
    assert result.titles == [f"Change {n}" for n in range(204, 184, -1)]


def test_compare_of_a_rollback_target_has_no_commits(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.add_tag("v1.0.0")
    gh.add_tag("v1.1.0")

    result = backend.compare("v1.1.0", "v1.0.0")

    assert (result.total_commits, result.titles) == (0, [])


def test_compare_with_an_unknown_ref_says_which_refs(backend: GitHubBackend) -> None:
    with pytest.raises(GitHubError) as err:
        backend.compare("v0.0.1", "main")

    assert err.value.status == 404
    assert "v0.0.1" in str(err.value)


# ---------------------------------------------------------------- dispatch and runs


def test_dispatch_sends_exactly_the_inputs_on_the_configured_ref(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    backend.dispatch(deploy_inputs())

    assert gh.dispatches == [{"ref": "main", "inputs": deploy_inputs()}]
    assert gh.runs[0]["inputs"] == deploy_inputs()
    assert gh.runs[0]["event"] == "workflow_dispatch"


def test_dispatch_with_an_undeclared_input_names_it_and_says_where_to_fix_it(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    with pytest.raises(GitHubError) as err:
        backend.dispatch(deploy_inputs() | {"requested_by": "U123"})

    message = str(err.value)
    assert err.value.status == 422
    assert not isinstance(err.value, GitHubUnavailable)
    assert 'Unexpected inputs provided: ["requested_by"]' in message
    assert "github.inputs" in message and "cd.yml" in message
    assert gh.runs == []


def test_dispatch_on_a_ref_that_does_not_exist_points_at_the_config(make_backend: MakeBackend) -> None:
    backend = make_backend(ref="mian")

    with pytest.raises(GitHubError) as err:
        backend.dispatch(deploy_inputs())

    assert err.value.status == 422
    assert "No ref found for: mian" in str(err.value) and "github.ref" in str(err.value)


def test_dispatch_missing_a_required_input_is_explained(backend: GitHubBackend) -> None:
    with pytest.raises(GitHubError, match="Required input 'version' not provided"):
        backend.dispatch({"environment": "production"})


def test_dispatch_to_a_missing_workflow_names_it(make_backend: MakeBackend) -> None:
    backend = make_backend(workflow="deploy.yml")

    with pytest.raises(GitHubError, match="workflow deploy.yml not found") as err:
        backend.dispatch(deploy_inputs())
    assert err.value.status == 404


def test_dispatch_answered_502_after_starting_a_run_is_sent_once_and_the_run_is_still_found(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    before = datetime.now(UTC)
    gh.fail_next("/dispatches", 502, after_effect=True)

    with pytest.raises(GitHubUnavailable) as err:
        backend.dispatch(deploy_inputs())

    assert err.value.status == 502
    assert "not re-sent" in str(err.value)
    assert len(gh.dispatches) == 1, "a POST answered 5xx must never be retried"
    run = backend.find_run(before)
    assert run is not None and run.id == gh.runs[0]["id"]
    assert len(gh.runs) == 1


def test_dispatch_answered_503_before_any_effect_is_not_retried_either(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    gh.fail_next("/dispatches", 503)

    with pytest.raises(GitHubUnavailable):
        backend.dispatch(deploy_inputs())

    assert len(gh.dispatches) == 1
    assert backend.find_run(datetime.now(UTC)) is None


def test_dispatch_that_times_out_is_not_resent_and_its_run_can_be_found(
    gh: FakeGitHub, make_backend: MakeBackend
) -> None:
    backend = make_backend(timeout=1.0)
    before = datetime.now(UTC)
    gh.stall_next("/dispatches", 1.5)

    with pytest.raises(GitHubUnavailable, match="did not answer"):
        backend.dispatch(deploy_inputs())

    assert len(gh.dispatches) == 1
    assert backend.find_run(before) is not None


def test_dispatch_returns_no_run_id_unless_run_details_are_asked_for(
    gh: FakeGitHub, make_backend: MakeBackend
) -> None:
    assert make_backend().dispatch(deploy_inputs()) is None

    run_id = make_backend(return_run_details=True).dispatch(deploy_inputs())

    assert run_id == gh.runs[0]["id"]
    assert gh.dispatches[-1]["return_run_details"] is True


def test_find_run_ignores_runs_created_before_the_dispatch(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.add_run(created_at=datetime.now(UTC) - timedelta(minutes=5), status="in_progress")
    dispatched_at = datetime.now(UTC)

    assert backend.find_run(dispatched_at) is None

    backend.dispatch(deploy_inputs())
    run = backend.find_run(dispatched_at)
    assert run is not None and run.id == gh.runs[0]["id"]


def test_find_run_allows_for_github_clock_being_a_few_seconds_behind(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    run_id = gh.add_run(created_at=datetime.now(UTC) - timedelta(seconds=5), status="queued")

    run = backend.find_run(datetime.now(UTC))

    assert run is not None and run.id == run_id


def test_find_run_skips_excluded_runs_and_returns_the_next_newest(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    dispatched_at = datetime.now(UTC)
    backend.dispatch(deploy_inputs("v1.0.0"))
    backend.dispatch(deploy_inputs("v1.0.1"))
    newest, older = (r["id"] for r in gh.runs)

    assert backend.find_run(dispatched_at).id == newest  # type: ignore[union-attr]
    assert backend.find_run(dispatched_at, exclude_ids={newest}).id == older  # type: ignore[union-attr]
    assert backend.find_run(dispatched_at, exclude_ids={newest, older}) is None


def test_find_run_ignores_other_branches_and_events(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.add_tag("v1.0.0")
    now = datetime.now(UTC)
    gh.add_run(created_at=now, event="push", status="queued")
    gh.add_run(created_at=now, branch="v1.0.0", status="queued")

    assert backend.find_run(now) is None


def test_find_run_is_none_until_github_lists_the_new_run(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.run_list_lag = 2
    dispatched_at = datetime.now(UTC)
    backend.dispatch(deploy_inputs())

    assert backend.find_run(dispatched_at) is None
    assert backend.find_run(dispatched_at) is None
    assert backend.find_run(dispatched_at) is not None


def test_find_run_can_match_the_run_name_of_concurrent_dispatches(
    gh: FakeGitHub, make_backend: MakeBackend
) -> None:
    gh.declare_workflow(
        "cd.yml", inputs=[*INPUTS, "job_id"], run_name="Deploy {version} to {environment} (job {job_id})"
    )
    backend = make_backend()
    dispatched_at = datetime.now(UTC)
    backend.dispatch(deploy_inputs() | {"job_id": "17"})
    backend.dispatch(deploy_inputs() | {"environment": "staging", "job_id": "18"})

    run = backend.find_run(dispatched_at, title_contains="(job 17)")

    assert run is not None
    assert run.display_title == "Deploy v1.2.3 to production (job 17)"
    assert run.id == gh.runs[1]["id"]


def test_find_run_for_a_missing_workflow_names_it(make_backend: MakeBackend) -> None:
    with pytest.raises(GitHubError, match="workflow nope.yml not found"):
        make_backend(workflow="nope.yml").find_run(datetime.now(UTC))


def test_get_run_follows_the_run_from_queued_to_success(gh: FakeGitHub, backend: GitHubBackend) -> None:
    dispatched_at = datetime.now(UTC)
    backend.dispatch(deploy_inputs())
    found = backend.find_run(dispatched_at)
    assert found is not None

    states = [(r.status, r.conclusion) for r in (backend.get_run(found.id) for _ in range(4))]

    assert states == [
        ("queued", None),
        ("in_progress", None),
        ("completed", "success"),
        ("completed", "success"),
    ]
    run = backend.get_run(found.id)
    assert run.head_branch == "main"
    assert run.created_at.tzinfo is not None and run.created_at.utcoffset() == timedelta(0)
    assert run.html_url == f"https://github.com/{REPO}/actions/runs/{found.id}"


def test_get_run_reports_a_scripted_failure(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.run_script = ["in_progress", ("completed", "failure")]
    dispatched_at = datetime.now(UTC)
    backend.dispatch(deploy_inputs())
    run_id = backend.find_run(dispatched_at).id  # type: ignore[union-attr]

    assert backend.get_run(run_id).status == "in_progress"
    assert (backend.get_run(run_id).status, backend.get_run(run_id).conclusion) == ("completed", "failure")


def test_get_run_sees_a_run_completed_by_the_test(gh: FakeGitHub, backend: GitHubBackend) -> None:
    run_id = gh.add_run(status="in_progress", conclusion=None)
    gh.complete_run(run_id, "cancelled")

    assert backend.get_run(run_id).conclusion == "cancelled"


def test_get_run_of_an_unknown_id_is_a_404_github_error(backend: GitHubBackend) -> None:
    with pytest.raises(GitHubError, match="run 42 does not exist") as err:
        backend.get_run(42)
    assert err.value.status == 404


# ---------------------------------------------------------------- failures


def test_a_get_answered_502_once_is_retried_and_succeeds(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.add_tag("v1.0.0")
    gh.fail_next("/tags", 502)

    assert [t.name for t in backend.latest_tags()] == ["v1.0.0"]
    assert len(gh.requests_to("/tags")) == 2


def test_a_get_that_keeps_failing_is_github_unavailable(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.fail_next("/actions/runs/", 503, times=5)

    with pytest.raises(GitHubUnavailable) as err:
        backend.get_run(1)

    assert err.value.status == 503
    assert len(gh.requests_to("/actions/runs/")) == 3  # the first try and two retries


def test_429_is_rate_limited_with_retry_after(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.rate_limit_next("/tags", retry_after=42)

    with pytest.raises(GitHubRateLimited) as err:
        backend.latest_tags()

    assert err.value.retry_after == 42
    assert err.value.status == 429
    assert len(gh.requests_to("/tags")) == 1, "rate limits are surfaced, not slept through"


def test_403_with_an_exhausted_quota_is_rate_limited_until_the_reset(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    reset = int(time.time()) + 120
    gh.fail_next(
        "/dispatches",
        403,
        body={"message": "API rate limit exceeded for installation ID 7."},
        headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)},
    )

    with pytest.raises(GitHubRateLimited) as err:
        backend.dispatch(deploy_inputs())

    assert 100 <= err.value.retry_after <= 121
    assert len(gh.dispatches) == 1


def test_403_without_rate_limit_names_the_missing_permission(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.fail_next("/dispatches", 403, body={"message": "Resource not accessible by integration"})

    with pytest.raises(GitHubError, match="actions:write") as err:
        backend.dispatch(deploy_inputs())

    assert not isinstance(err.value, GitHubRateLimited)


def test_a_bad_token_is_reported_without_the_token(gh: FakeGitHub, make_backend: MakeBackend) -> None:
    wrong = "ghp_wrong_secret_value_987654321"
    backend = make_backend(token=wrong)

    with pytest.raises(GitHubError) as err:
        backend.dispatch(deploy_inputs())

    assert err.value.status == 401
    assert "GITHUB_TOKEN" in str(err.value)
    for text in (str(err.value), repr(err.value), repr(err.value.args), repr(backend)):
        assert wrong not in text
    assert gh.runs == []


def test_a_token_echoed_back_by_github_is_scrubbed(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.fail_next("/compare/", 422, body={"message": f"weird ref {TOKEN}"})

    with pytest.raises(GitHubError) as err:
        backend.compare("main", "main")

    assert TOKEN not in str(err.value) and "***" in str(err.value)


def test_unreachable_github_is_unavailable(make_backend: MakeBackend) -> None:
    with socket.socket() as s:  # a port that was free a moment ago: connection refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    backend = make_backend(api_url=f"http://127.0.0.1:{port}")

    with pytest.raises(GitHubUnavailable, match="could not reach GitHub"):
        backend.resolve_tag("v1.0.0")


# ---------------------------------------------------------------- deployments


def test_deployment_round_trip(gh: FakeGitHub, backend: GitHubBackend) -> None:
    sha = gh.add_tag("v1.2.3")

    dep_id = backend.create_deployment("v1.2.3", "production", "v1.2.3 by @alice, approved by @bob")
    backend.set_deployment_status(dep_id, "in_progress", log_url="https://github.com/x/actions/runs/1")
    backend.set_deployment_status(
        dep_id, "success", environment_url="https://taisun.example", log_url="https://l/1"
    )

    [dep] = gh.deployments
    assert dep["id"] == dep_id and dep["sha"] == sha and dep["environment"] == "production"
    # The words stay; a zero-width joiner after each @ keeps GitHub from mentioning alice or bob.
    assert dep["description"] == "v1.2.3 by @\u200dalice, approved by @\u200dbob"
    # No merge of the default branch into the tag, no gating on commit statuses.
    assert dep["request"]["auto_merge"] is False and dep["request"]["required_contexts"] == []
    assert [(s["state"], s["environment_url"], s["log_url"]) for s in dep["statuses"]] == [
        ("in_progress", "", "https://github.com/x/actions/runs/1"),
        ("success", "https://taisun.example", "https://l/1"),
    ]


def test_deployment_of_an_unknown_ref_is_a_github_error(backend: GitHubBackend) -> None:
    with pytest.raises(GitHubError, match="No ref found for: v9.9.9") as err:
        backend.create_deployment("v9.9.9", "staging", "nope")
    assert err.value.status == 422


def test_deployment_status_with_an_unknown_state_is_refused_before_calling_github(
    gh: FakeGitHub, backend: GitHubBackend
) -> None:
    with pytest.raises(ValueError, match="deployment state"):
        backend.set_deployment_status(1, "done")
    assert gh.requests == []


def test_deployment_status_for_a_missing_deployment_is_a_404(backend: GitHubBackend) -> None:
    with pytest.raises(GitHubError, match="deployment 77 does not exist") as err:
        backend.set_deployment_status(77, "success")
    assert err.value.status == 404


# ---------------------------------------------------------------- check


def test_check_reports_the_repository_and_workflow(backend: GitHubBackend) -> None:
    assert backend.check() == f"repo {REPO} reachable (default branch main), workflow cd.yml active"


def test_check_verifies_the_inputs_against_the_workflow_file(backend: GitHubBackend) -> None:
    assert "inputs environment, rollback, version declared" in backend.check(INPUTS)

    with pytest.raises(GitHubError, match="does not declare input\\(s\\) requested_by"):
        backend.check([*INPUTS, "requested_by"])
    with pytest.raises(GitHubError, match="requires input\\(s\\) version"):
        backend.check(["environment"])


def test_check_fails_for_a_disabled_or_missing_workflow(gh: FakeGitHub, make_backend: MakeBackend) -> None:
    gh.declare_workflow("cd.yml", inputs=INPUTS, state="disabled_manually")

    with pytest.raises(GitHubError, match="disabled_manually"):
        make_backend().check()
    with pytest.raises(GitHubError, match="workflow nope.yml not found"):
        make_backend(workflow="nope.yml").check()


def test_check_fails_for_a_workflow_without_workflow_dispatch(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.declare_workflow("cd.yml", inputs=INPUTS, dispatchable=False)

    with pytest.raises(GitHubError, match="workflow_dispatch"):
        backend.check(["environment"])


def test_check_with_a_bad_token_fails_without_the_token(make_backend: MakeBackend) -> None:
    wrong = "ghp_definitely_not_right_42"

    with pytest.raises(GitHubError) as err:
        make_backend(token=wrong).check()

    assert err.value.status == 401 and wrong not in str(err.value)


def test_check_reads_a_hand_written_workflow_file(gh: FakeGitHub, backend: GitHubBackend) -> None:
    gh.declare_workflow("cd.yml", source="name: CD\non: [push, workflow_dispatch]\njobs: {}\n")

    with pytest.raises(GitHubError, match="does not declare input\\(s\\) environment"):
        backend.check(["environment"])


# ---------------------------------------------------------------- the fake itself, on the wire


def test_fake_speaks_github_wire_protocol(gh: FakeGitHub) -> None:
    for minor in range(3):
        gh.add_tag(f"v0.{minor}.0")
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=gh.url, headers=auth) as client:
        page = client.get(f"/repos/{REPO}/tags", params={"per_page": 2})
        assert page.status_code == 200 and len(page.json()) == 2
        assert 'rel="next"' in page.headers["link"] and page.headers["link"].startswith(f"<{gh.url}/")

        ok = client.post(f"/repos/{REPO}/actions/workflows/cd.yml/dispatches", json={"ref": "main"})
        assert ok.status_code == 422  # environment and version are required

        ok = client.post(
            f"/repos/{REPO}/actions/workflows/cd.yml/dispatches",
            json={"ref": "main", "inputs": {"environment": "dev", "version": "v0.2.0"}},
        )
        assert ok.status_code == 204 and ok.content == b""

        listed = client.get(
            f"/repos/{REPO}/actions/runs", params={"created": ">=2000-01-01", "event": "workflow_dispatch"}
        )
        assert listed.json()["total_count"] == 1
        assert listed.json()["workflow_runs"][0]["url"].startswith(gh.url)

        assert client.get(f"/repos/{REPO}", headers={"Authorization": "token nope"}).status_code == 401
        assert client.get("/repos/someone/else").status_code == 404
