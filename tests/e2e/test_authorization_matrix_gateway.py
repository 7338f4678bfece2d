"""The authorization matrix (tests/unit/test_authorization_matrix.py), a subset, through the local gateway.

Real Cognito ID tokens (moto) checked by the gateway's JWT authorizer, the operators group set
with ``make-operator`` and the moderators group with ``make-moderator``: the same rows must hold as
against the resolver in-process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import Api, PlatformProcess, new_email
from tests.e2e.test_relay_platform import operator_token
from tests.e2e.test_upload_to_playback import upload, wait_until_ready
from tests.unit.test_authorization_matrix import MATRIX, World

pytestmark = [pytest.mark.mysql, pytest.mark.media]

# Mutating routes last, and the owner last on each, so earlier cells see the world unchanged.
SUBSET = (
    ("GET", "/videos/{videoId}"),
    ("GET", "/me/videos"),
    ("GET", "/me/videos/{videoId}"),
    ("GET", "/moderation/audit"),
    ("POST", "/videos/metadata"),
    ("PATCH", "/videos/{videoId}"),
    ("GET", "/streams"),
    ("GET", "/streams/{streamId}"),
    ("PATCH", "/streams/{streamId}"),
    ("DELETE", "/videos/{videoId}"),
)
ORDER = ("anonymous", "other", "operator", "moderator", "owner")


def test_the_gateway_answers_each_caller_as_the_matrix_says(platform: PlatformProcess, clip: Path) -> None:
    api = Api(platform)
    # Given Alice's ready video, Bob, and Olga the operator with a stream of her own
    tokens: dict[str, str | None] = {"anonymous": None, "owner": api.sign_up(new_email())}
    tokens["other"] = api.sign_up(new_email())
    _, tokens["operator"] = operator_token(platform, api)
    moderator = new_email()
    api.sign_up(moderator)
    done = subprocess.run(
        [sys.executable, "-m", "local", "make-moderator", moderator, "--state-dir", str(platform.state_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    tokens["moderator"] = api.login(moderator)
    video_id = upload(api, str(tokens["owner"]), clip)
    wait_until_ready(api, video_id)
    r = api.call(
        "POST", "/streams", token=tokens["operator"], json={"name": "Gate", "sourceUrl": "rtsp://10.0.0.5/x"}
    )
    assert r.status_code == 201, r.text
    world = World(
        video_id=video_id,
        pending_id="",
        upload_id="",
        stream_id=r.json()["streamId"],
        refresh_token="",
        dave_code="",
    )
    # When each caller calls each route of the subset, Then the status is the matrix's
    wrong = []
    for route in SUBSET:
        request, row = MATRIX[route]
        path, body = request(world)
        for who in ORDER:
            r = api.call(route[0], path, token=tokens[who], json=body)
            if r.status_code != row[who]:
                wrong.append(f"{route[0]} {path} as {who}: {r.status_code}, matrix says {row[who]}: {r.text}")
            if r.status_code >= 400:
                assert set(r.json()) == {"error", "message"}, r.text
    assert not wrong, "\n".join(wrong)
