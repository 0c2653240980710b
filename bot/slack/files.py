"""Files the bot hands one person: a text file in their DM with the bot (files.uploadV2, which is
files.getUploadURLExternal → the upload → files.completeUploadExternal).

A DM, because what it holds (log lines) answers an ephemeral question: the channel it was asked in
may hold people it was not meant for, and the bot need not be a member there.
"""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError


@dataclass(frozen=True)
class Uploaded:
    permalink: str  # "" when the upload failed
    name: str
    error: str = ""  # Slack's error code (missing_scope, not_in_channel…) when it failed


def dm_text_file(
    client: WebClient, user_id: str, *, filename: str, title: str, content: str, comment: str
) -> Uploaded:
    """Upload `content` as a text file into the DM between the bot and `user_id`; never raises."""
    try:
        channel = client.conversations_open(users=user_id)["channel"]["id"]
        resp = client.files_upload_v2(
            channel=channel, content=content.encode("utf-8"), filename=filename, title=title,
            initial_comment=comment, snippet_type="text",
        )  # fmt: skip
    except SlackApiError as e:
        return Uploaded("", filename, str(e.response.get("error") or "error"))
    except (SlackRequestError, OSError) as e:
        return Uploaded("", filename, type(e).__name__)
    file = resp.get("file") or {}
    permalink = str(file.get("permalink") or "")
    if not permalink and file.get("id"):  # files.completeUploadExternal answers with id and title only
        try:
            permalink = str(client.files_info(file=file["id"])["file"].get("permalink") or "")
        except SlackApiError as e:
            return Uploaded("", filename, str(e.response.get("error") or "error"))
    return Uploaded(permalink, filename, "" if permalink else "no_permalink")
