"""The App Home tab: environments, pending approvals the viewer may act on, incidents, own actions."""

from __future__ import annotations

from bot.slack import signing
from tests.harness import ALICE, BOB, text_of


def _open_home(bot, user):
    body, ctype = signing.event_callback(
        {"type": "app_home_opened", "user": user, "tab": "home", "channel": "D1"}, event_id=f"Ev-home-{user}"
    )
    assert bot.post(body, ctype)[0] == 200


def test_home_shows_environments_approvals_the_viewer_may_act_on_and_their_actions(
    db_url, make_bot, slack, service
):
    service.version = "v3.1.4"
    bot = make_bot(db_url)
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.command("lock stg load test", user=BOB)
    bot.settle()
    _open_home(bot, BOB)
    bot.settle()
    view = slack.wait_for(
        lambda: "v3.1.4" in text_of({"blocks": slack.home.get(BOB, {}).get("blocks", [])}) and slack.home[BOB]
    )
    text = text_of({"blocks": view["blocks"]})
    assert "production" in text and "🟢" in text  # live health, refreshed after the first publish
    assert "locked by <@U0BOB>" in text and "load test" in text
    assert "Waiting for your approval* (1)" in text and "taisun.job.approve" in text
    assert "lock.acquired" in text  # bob's own recent action
    _open_home(bot, ALICE)
    bot.settle()
    alice_view = text_of({"blocks": slack.home[ALICE]["blocks"]})
    assert "Waiting for your approval* (0)" in alice_view  # she asked; she cannot approve it


def test_home_refreshes_for_recent_viewers_after_a_job_changes(db_url, make_bot, slack):
    bot = make_bot(db_url)
    _open_home(bot, BOB)
    bot.settle()
    before = slack.count("views.publish")
    bot.svc.home._published.clear()  # the debounce window has passed
    bot.command("deploy prod v1.2.3", user=ALICE)
    bot.settle()
    # a burst of changes (checking → waiting for approval) ends with the final state shown
    slack.wait_for(
        lambda: "Waiting for your approval* (1)" in text_of({"blocks": slack.home[BOB]["blocks"]}), timeout=15
    )
    assert slack.count("views.publish") > before
