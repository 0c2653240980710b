"""The worker benchmark's remote services, in a process of their own behind the processes measured.

In production Slack, GitHub, S3 and the deployed service are other machines: their CPU is never the
bot's host's. Here their stand-ins (the local Slack ×2, FakeGitHub, moto's S3, FakeService) share the
same two cores, so they run in a session of their own at niceness NICE (its autogroup too, through
the bot's own bot.core.priority) and under SCHED_IDLE, every thread of them, as the worker's job
threads are: what they cost is not charged to the acks being measured.

    python -m benchmarks.remotes NICE

prints one JSON line of URLs, serves until its stdin is closed, then prints {"dispatches": n}.
"""

from __future__ import annotations

import json
import logging
import sys

from benchmarks.common import BOT_TOKEN, GITHUB_TOKEN
from bot.core.priority import idle_thread, yield_cpu
from bot.slack.localslack import LocalSlack
from tests.fakes.github import FakeGitHub
from tests.fakes.service import FakeService


def main() -> int:
    yield_cpu(int(sys.argv[1]))
    idle_thread()  # before any server starts: all their threads inherit it
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()

    github = FakeGitHub("taisun/taisun-v2", token=GITHUB_TOKEN)
    github.start()
    github.add_releases()
    github.run_script = ["queued"] + ["in_progress"] * 100_000  # followed for as long as the run lasts

    slack = LocalSlack(token=BOT_TOKEN).start()
    slack.add_usergroup("sre-leads", {"U0BOB", "U0CAROL"})
    bare_slack = LocalSlack(token=BOT_TOKEN).start()
    service = FakeService().start()
    urls = {
        "s3": f"http://{host}:{port}", "github": github.url, "slack": slack.url, "bare_slack": bare_slack.url,
        "service": service.url,
    }  # fmt: skip
    print(json.dumps(urls), flush=True)
    sys.stdin.read()  # until the benchmark is done
    print(json.dumps({"dispatches": len(github.dispatches)}), flush=True)
    for stop in (service.stop, bare_slack.stop, slack.stop, github.stop, moto.stop):
        stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
