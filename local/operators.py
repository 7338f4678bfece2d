"""``python -m local make-operator EMAIL``: make a user of the running platform an operator.
``python -m local make-moderator EMAIL``: the same for moderators, who may unpublish and delete any
video (``--group`` names another group, for either).

Operators manage live relay streams: they are the members of the Cognito group ``operators`` (in
AWS: ``aws cognito-idp admin-add-user-to-group --group-name operators``). Locally the user pool lives
in moto, so this command reads moto's address and the pool from ``.state/endpoints.json`` (written by
``make up``), creates the group if it is missing, and adds the user. The group reaches the API in the
ID token's ``cognito:groups`` claim, so the user logs in again afterwards to get a token that has it.
The group is recorded with the user (local/users.py) at their next login and restored with them
after a restart.
"""

from __future__ import annotations

import argparse
import contextlib
import json
from pathlib import Path

import boto3
from botocore.exceptions import ClientError

from local.config import LocalSettings
from reelay.settings import Settings


class OperatorError(Exception):
    """Something the person running the command can fix; the message says what."""


# The two roles: the group's setting, and what the group is for (its Cognito description).
ROLES = {
    "operator": ("operators_group", "Manage live relay streams"),
    "moderator": ("moderators_group", "Unpublish and delete any video (audited)"),
}


def make_operator(email: str, *, state_dir: Path, group: str | None = None) -> str:
    """Add ``email`` to the operators group of the running platform's user pool. Returns the group."""
    return add_to_group(email, state_dir=state_dir, role="operator", group=group)


def make_moderator(email: str, *, state_dir: Path, group: str | None = None) -> str:
    """Add ``email`` to the moderators group of the running platform's user pool. Returns the group."""
    return add_to_group(email, state_dir=state_dir, role="moderator", group=group)


def add_to_group(email: str, *, state_dir: Path, role: str, group: str | None = None) -> str:
    setting, description = ROLES[role]
    group = group or getattr(Settings(), setting)
    path = state_dir / "endpoints.json"
    try:
        endpoints = json.loads(path.read_text())
        endpoint, pool_id = endpoints["moto"], endpoints["userPoolId"]
    except (OSError, ValueError, KeyError):
        raise OperatorError(f"{path} is missing or incomplete: start the platform first (make up)") from None
    # Pool ids are "<region>_<id>".
    idp = boto3.client(
        "cognito-idp",
        endpoint_url=endpoint,
        region_name=pool_id.split("_", 1)[0],
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
    try:
        with contextlib.suppress(idp.exceptions.GroupExistsException):
            idp.create_group(GroupName=group, UserPoolId=pool_id, Description=description)
        idp.admin_add_user_to_group(UserPoolId=pool_id, Username=email, GroupName=group)
    except idp.exceptions.UserNotFoundException:
        raise OperatorError(
            f"no user {email} in the running platform: sign up first (users are gone after a restart)"
        ) from None
    except (ClientError, OSError) as exc:
        raise OperatorError(f"the platform's user pool at {endpoint} did not answer: {exc}") from None
    return group


def main(argv: list[str], role: str = "operator") -> int:
    what = {
        "operator": "an operator (the Cognito group that manages streams)",
        "moderator": "a moderator (the Cognito group that may unpublish and delete any video)",
    }[role]
    p = argparse.ArgumentParser(
        prog=f"python -m local make-{role}",
        description=f"Make a user of the running platform {what}. Log in again afterwards: the group "
        "travels in the ID token.",
    )
    p.add_argument("email", help="the user's sign-up email")
    p.add_argument("--group", help=f"the group's name (default: the {ROLES[role][0]} setting)")
    p.add_argument(
        "--state-dir",
        type=Path,
        default=LocalSettings().state_dir,
        help="the running platform's state directory, holding endpoints.json [REELAY_LOCAL_STATE_DIR]",
    )
    args = p.parse_args(argv)
    try:
        group = add_to_group(args.email, state_dir=args.state_dir, role=role, group=args.group)
    except OperatorError as exc:
        print(f"make-{role}: {exc}")
        return 1
    print(f"{args.email} is now in the {group!r} group: log in again to get a token that says so")
    return 0
