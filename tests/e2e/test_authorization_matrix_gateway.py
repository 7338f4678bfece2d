"""The authorization matrix (tests/unit/test_authorization_matrix.py), every route and every caller,
through the local gateway.

Real Cognito ID tokens (moto) checked by the gateway's JWT authorizer, the operators group set
with ``make-operator`` and the moderators group with ``make-moderator``, a real recording of the
demo camera (a finalized session with an MP4 export, and a session recording now): the same rows
must hold as against the resolver in-process. The table is the unit test's ``MATRIX``, so a route
added there is called here too.

The resolver test gives each cell a fresh world; here the world is made once, so the cells run in
two waves. First, all at once, every cell that cannot change anything: a GET, or a request the
matrix refuses. Then, one at a time in the table's order, every cell that succeeds in changing
something, on the shared world except where ``OWN`` says it uses up what it acts on.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from reelay.api.routes import ROUTES
from tests.e2e.conftest import MULTIPART_THRESHOLD, Api, PlatformProcess, new_email, own_platform
from tests.e2e.test_relay_platform import endpoints, operator_token
from tests.e2e.test_upload_to_playback import upload, wait_until_ready
from tests.relay_fixtures import wait_until
from tests.unit.test_authorization_matrix import CALLERS, MATRIX, PASSWORD, World

pytestmark = [pytest.mark.mysql, pytest.mark.media]

Route = tuple[str, str]
Cell = tuple[Route, str]


@dataclasses.dataclass
class Stage:
    """The platform, a token for each caller, and how to make more of what the cells act on."""

    api: Api
    tokens: dict[str, str | None]
    world: World
    make: dict[str, Callable[[], dict[str, object]]]


# Cells that succeed in using up what they act on get their own, made just before (field names of
# World, made by Stage.make): a user is confirmed once, an upload completed once, a video or a
# stream deleted once.
OWN: dict[Route, str] = {
    ("POST", "/auth/confirm-register"): "dave",
    ("POST", "/videos/{videoId}/upload/complete"): "pending",
    ("DELETE", "/videos/{videoId}"): "video",
    ("POST", "/moderation/videos/{videoId}/delete"): "video",
    ("DELETE", "/streams/{streamId}"): "stream",
}


@pytest.fixture(scope="module")
def camera_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PlatformProcess]:
    env = {"REELAY_MULTIPART_THRESHOLD_BYTES": str(MULTIPART_THRESHOLD)}
    with own_platform(tmp_path_factory, "reelay_matrix", env=env, extra_args=("--camera", "rtsp")) as p:
        yield p


def _moderator(platform: PlatformProcess, api: Api) -> str:
    email = new_email()
    api.sign_up(email)
    done = subprocess.run(
        [sys.executable, "-m", "local", "make-moderator", email, "--state-dir", str(platform.state_dir)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return api.login(email)


def _unconfirmed(platform: PlatformProcess, api: Api) -> dict[str, object]:
    email = new_email()
    mark = len(platform.lines)
    r = api.call("POST", "/auth/register", json={"email": email, "password": PASSWORD})
    assert r.status_code == 201, r.text
    return {"dave_email": email, "dave_code": platform.code_for(email, after=mark)}


def _pending(api: Api, token: str, clip: Path) -> dict[str, object]:
    """A multipart upload with its parts PUT (real ETags), not completed."""
    body = api.start_upload(token, "big", clip.stat().st_size)
    multipart, data = body["multipart"], clip.read_bytes()
    step, parts = multipart["partSizeBytes"], []
    for part in multipart["parts"]:
        n = part["partNumber"]
        r = requests.put(part["url"], data=data[(n - 1) * step : n * step], timeout=30)
        assert r.status_code == 200, r.text
        parts.append({"partNumber": n, "etag": r.headers["ETag"]})
    return {"pending_id": body["videoId"], "upload_id": multipart["uploadId"], "parts": tuple(parts)}


def _recording(api: Api, token: str, camera: str) -> dict[str, object]:
    """Olga's stream recording the demo camera: a session recorded, stopped, finalized and exported,
    then a second session recording now (with its live playlist's token)."""

    def call(method: str, path: str, **kw: object) -> requests.Response:
        r = api.call(method, path, token=token, **kw)  # type: ignore[arg-type]
        assert r.status_code < 300, r.text
        return r

    body = {"name": "Gate", "sourceUrl": camera, "record": True, "relay": False}
    sid = call("POST", "/streams", json=body).json()["streamId"]

    def session(state: str, other_than: str = "") -> str | None:
        items = call("GET", f"/streams/{sid}/sessions").json()["items"]
        return next(
            (s["sessionId"] for s in items if s["state"] == state and s["sessionId"] != other_than), None
        )

    call("POST", f"/streams/{sid}/start")
    first = wait_until(lambda: session("recording"), 60, "a recording session")
    time.sleep(3)  # a few seconds recorded, enough for a 2-second export
    call("POST", f"/streams/{sid}/stop")
    wait_until(lambda: call("GET", f"/streams/{sid}").json()["state"] == "stopped", 60, "the stream to stop")
    call("POST", f"/streams/{sid}/sessions/{first}/finalize")
    call("POST", f"/streams/{sid}/start")
    live = wait_until(lambda: session("recording", other_than=first), 60, "a second recording session")
    wait_until(lambda: session("ready") == first, 120, "the first session to be finalized")
    exports = f"/streams/{sid}/sessions/{first}/exports"
    export_id = call("POST", exports, json={"start": 0, "end": 2}).json()["exportId"]
    live_url = wait_until(
        lambda: call("GET", f"/streams/{sid}/sessions/{live}").json()["livePlaylistUrl"],
        30,
        "a live playlist",
    )
    wait_until(lambda: requests.get(live_url, timeout=10).status_code == 200, 60, "the live playlist")
    return {
        "stream_id": sid,
        "session_id": first,
        "live_session_id": live,
        "export_id": export_id,
        "live_token": parse_qs(urlsplit(live_url).query)["token"][0],
    }


@pytest.fixture(scope="module")
def stage(camera_platform: PlatformProcess, clip: Path, large_clip: Path) -> Stage:
    platform, api = camera_platform, Api(camera_platform)
    with ThreadPoolExecutor(8) as pool:
        # Alice, Bob, Olga and Oscar the operators, Mo the moderator, and Carol with a refresh token
        owner, other = pool.submit(api.sign_up, new_email()), pool.submit(api.sign_up, new_email())
        operator, other_operator = (pool.submit(operator_token, platform, api) for _ in range(2))
        moderator = pool.submit(_moderator, platform, api)
        carol = new_email()
        pool.submit(api.sign_up, carol, PASSWORD).result()
        refresh = api.call("POST", "/auth/login", json={"email": carol, "password": PASSWORD})
        assert refresh.status_code == 200, refresh.text
        tokens: dict[str, str | None] = {
            "anonymous": None,
            "owner": owner.result(),
            "other": other.result(),
            "operator": operator.result()[1],
            "other operator": other_operator.result()[1],
            "moderator": moderator.result(),
        }
        alice, olga = str(tokens["owner"]), str(tokens["operator"])

        def video() -> dict[str, object]:
            video_id = upload(api, alice, clip)
            wait_until_ready(api, video_id)
            return {"video_id": video_id}

        # Alice's ready videos (one shared, two to delete) while Olga's camera records
        videos = [pool.submit(video) for _ in range(3)]
        recording = pool.submit(_recording, api, olga, endpoints(platform)["demoCamera"])
        fields = {
            **videos[0].result(),
            **_pending(api, alice, large_clip),
            **_unconfirmed(platform, api),
            **recording.result(),
        }
        spare = [v.result() for v in videos[1:]]
    world = World(refresh_token=refresh.json()["refreshToken"], carol_email=carol, **fields)  # type: ignore[arg-type]

    def stream() -> dict[str, object]:
        r = api.call("POST", "/streams", token=olga, json={"name": "Spare", "sourceUrl": "rtsp://10.0.0.5/x"})
        assert r.status_code == 201, r.text
        return {"stream_id": r.json()["streamId"]}

    make = {
        "dave": lambda: _unconfirmed(platform, api),
        "pending": lambda: _pending(api, alice, large_clip),
        "video": lambda: spare.pop() if spare else video(),
        "stream": stream,
    }
    return Stage(api, tokens, world, make)


def test_the_gateway_answers_each_caller_as_the_matrix_says(stage: Stage) -> None:
    def changes(cell: Cell) -> bool:
        (method, _), who = cell
        return method != "GET" and MATRIX[cell[0]][1][who] < 400

    def run(cell: Cell, world: World) -> str | None:
        (method, _), who = cell
        request, row = MATRIX[cell[0]]
        path, body = request(world)
        r = stage.api.call(method, path, token=stage.tokens[who], json=body)
        if r.status_code >= 400 and set(r.json()) != {"error", "message"}:
            return f"{method} {path} as {who}: {r.status_code} without an error and a message: {r.text}"
        if r.status_code != row[who]:
            return f"{method} {path} as {who}: {r.status_code}, matrix says {row[who]}: {r.text[:300]}"
        return None

    # Every route of the API's table, every caller (the unit test holds MATRIX to ROUTES too)
    assert set(MATRIX) == {(r.method, r.path) for r in ROUTES} and set(OWN) <= set(MATRIX)
    cells = [(route, who) for route in MATRIX for who in CALLERS]
    # When every cell that changes nothing is called at once
    with ThreadPoolExecutor(16) as pool:
        wrong = [
            w for w in pool.map(lambda c: run(c, stage.world), [c for c in cells if not changes(c)]) if w
        ]
    # And then each one that changes something, one at a time, on its own objects where OWN says
    for cell in filter(changes, cells):
        own = OWN.get(cell[0])
        world = dataclasses.replace(stage.world, **stage.make[own]()) if own else stage.world  # type: ignore[arg-type]
        if w := run(cell, world):
            wrong.append(w)
    # Then each status is the matrix's
    assert not wrong, "\n".join(wrong)
