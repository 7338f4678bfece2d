"""The OpenAPI document states the rules the API enforces: the password policy, "at least one field" on
PATCH /videos/{videoId} and POST /videos/metadata, no blank names and no control characters, the upload's
content types and size range; and the API accepts integers written as 1.0, which JSON Schema counts as
integers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import hypothesis
import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode

from reelay.api.app import openapi_document
from reelay.settings import Settings
from reelay.videos import content_type_pattern
from tests.fakes import api_event
from tests.unit.test_api import ALICE, MiB, call, make_ready, services, settings, upload  # noqa: F401
from tests.unit.test_api_fuzz import FUZZ_SETTINGS, OPERATIONS, World, assert_answer_shape, world  # noqa: F401

SCHEMAS = openapi_document(Settings())["components"]["schemas"]


def valid(schema: dict[str, Any], value: Any) -> bool:
    return jsonschema.Draft202012Validator(schema).is_valid(value)


@pytest.mark.parametrize(
    ("password", "ok"),
    [
        ("Correct-Horse-9", True),
        ("Aa1!aaaaaaaa", True),
        ("Aa1!aaaaaaa", False),  # 11 characters
        ("correct-horse-9", False),  # no uppercase
        ("CORRECT-HORSE-9", False),  # no lowercase
        ("Correct-Horse-X", False),  # no digit
        ("CorrectHorse99", False),  # no symbol
        (" Correct-Horse-9", False),  # Cognito refuses whitespace at either end
        ("Correct-Horse-9 ", False),
    ],
)
def test_the_document_states_the_password_policy_on_sign_up(password, ok):
    schema = SCHEMAS["RegisterIn"]["properties"]["password"]
    assert schema["minLength"] == 12
    assert valid(schema, password) is ok
    # Logging in takes any password (the policy may have changed since sign-up)
    assert valid(SCHEMAS["LoginIn"]["properties"]["password"], "short")


def test_the_policy_in_the_document_is_the_user_pools():
    from local.aws import PASSWORD_POLICY

    assert PASSWORD_POLICY["MinimumLength"] == SCHEMAS["RegisterIn"]["properties"]["password"]["minLength"]
    assert all(
        PASSWORD_POLICY[k]
        for k in ("RequireUppercase", "RequireLowercase", "RequireNumbers", "RequireSymbols")
    )


@pytest.mark.parametrize("model", ["PatchVideoIn", "MetadataIn"])
@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({}, False),
        ({"displayName": None}, False),
        ({"displayName": None, "description": None}, False),
        ({"description": ""}, True),
        ({"displayName": "New"}, True),
    ],
)
def test_the_document_says_at_least_one_field_to_change(model, fields, ok):
    body = fields | ({"videoId": "vid1"} if model == "MetadataIn" else {})
    assert valid(SCHEMAS[model], body) is ok


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("Holiday", True),
        (" Holiday ", True),
        ("", False),
        ("   ", False),
        ("\t", False),
        ("a\x07b", False),
        ("a\nb", False),
        ("caf\u00e9 \u2603", True),
        ("a\x85b", False),
    ],
)
@pytest.mark.usefixtures("services")
def test_the_document_refuses_blank_names_and_control_characters(name, ok):
    schema = SCHEMAS["UploadIn"]["properties"]["displayName"]
    assert valid(schema, name) is ok
    # And the API agrees on each
    status, body = upload(displayName=name)
    assert (status < 300) is ok, (status, body)


@pytest.mark.parametrize(
    ("text", "ok"), [("line one\nline two\ttab", True), ("bell\x07", False), ("\x1b[31m", False)]
)
@pytest.mark.usefixtures("services")
def test_the_document_keeps_layout_but_no_other_control_characters_in_descriptions(text, ok):
    assert valid(SCHEMAS["UploadIn"]["properties"]["description"], text) is ok
    status, body = upload(description=text)
    assert (status < 300) is ok, (status, body)


@pytest.mark.usefixtures("services")
def test_integers_written_as_1_0_are_integers():
    # JSON Schema counts 1048576.0 as an integer; so does the API
    status, body = upload(sizeBytes=1048576.0)
    assert status == 201, body
    # while a boolean, a string and a fraction stay refused
    for bad in (True, "1048576", 1048576.5):
        status, body = upload(sizeBytes=bad)
        assert status == 400 and body["error"] == "invalid_input", (bad, body)


@pytest.mark.usefixtures("services")
def test_a_part_number_written_as_1_0_is_accepted():
    status, created = upload(sizeBytes=23 * MiB)
    assert status == 201, created
    video_id = created["videoId"]
    upload_id = created["multipart"]["uploadId"]
    body = {"uploadId": upload_id, "parts": [{"partNumber": 1.0, "etag": "abc"}]}
    status, out, _ = call(api_event("POST", f"/videos/{video_id}/upload/complete", body=body, claims=ALICE))
    # past validation: whatever the store says of the parts, it is not the schema's 400 on partNumber
    assert not (status == 400 and "partNumber" in str(out)), out


# Positive acceptance on the operations whose rules the document now states: every request the document
# allows, on the caller's own video, is accepted (200), as schemathesis' positive_data_acceptance wants.
METADATA_OPERATIONS = [
    pytest.param(op, id=op.label)
    for op in OPERATIONS
    if op.label in ("PATCH /videos/{videoId}", "POST /videos/metadata")
]


def test_both_metadata_operations_are_checked():
    assert len(METADATA_OPERATIONS) == 2


@pytest.mark.parametrize("operation", METADATA_OPERATIONS)
@hypothesis.settings(FUZZ_SETTINGS, max_examples=40)
@given(data=st.data())
def test_every_request_the_document_allows_is_accepted(
    world: Callable[[], World],  # noqa: F811  (the imported fixture)
    operation,
    data,
) -> None:
    here = world()
    case = data.draw(operation.as_strategy(generation_mode=GenerationMode.POSITIVE), label="case")
    mine = here.video_ids[0]  # the caller's own ready video
    if case.path_parameters and "videoId" in case.path_parameters:
        case.path_parameters["videoId"] = mine
    if isinstance(case.body, dict) and "videoId" in case.body:
        case.body["videoId"] = mine
    case.headers = {"Authorization": f"Bearer {here.token}"}
    response = case.call()
    assert_answer_shape(operation, response)
    assert response.status_code == 200, (case.body, response.text)


@pytest.mark.parametrize(
    ("content_type", "ok"),
    [
        ("video/mp4", True),
        ("VIDEO/QuickTime", True),
        (" video/webm ; codecs=vp9", True),
        ("video/x-msvideo;", True),
        ("video/mp4x", False),
        ("xvideo/mp4", False),
        ("video/mp4\n", False),  # only spaces and tabs around it
        ("video/x-matros\u212aa", False),  # KELVIN SIGN, which lowercases to k
        ("application/pdf", False),
        ("video/mp4,video/webm", False),
    ],
)
@pytest.mark.usefixtures("services")
def test_the_document_states_the_content_types_the_upload_takes(content_type, ok):
    # Given the document served with the settings in force
    status, document, _ = call(api_event("GET", "/openapi.json"))
    assert status == 200
    schema = document["components"]["schemas"]["UploadIn"]["properties"]["contentType"]
    # Then it allows exactly what the API accepts
    assert valid(schema, content_type) is ok
    status, body = upload(contentType=content_type)
    assert (status == 201) is ok, (status, body)


def test_the_content_type_rule_is_built_from_the_allow_list_in_force():
    # Each type of the setting, and nothing of a list it does not hold
    limited = Settings(allowed_content_types=("video/mp4", "video/vnd.dlna.mpeg-tts"))
    schema = openapi_document(limited)["components"]["schemas"]["UploadIn"]["properties"]["contentType"]
    assert schema["pattern"] == content_type_pattern(limited.allowed_content_types)
    assert valid(schema, "video/vnd.dlna.mpeg-tts") and valid(schema, "VIDEO/MP4")
    assert not valid(schema, "video/webm")  # a default one, not in this list
    assert not valid(schema, "video/vndxdlna.mpeg-tts")  # the dot is a dot
    for name in Settings().allowed_content_types:
        assert valid(SCHEMAS["UploadIn"]["properties"]["contentType"], name), name
    # An empty list allows nothing at all
    assert not valid({"pattern": content_type_pattern(())}, " ")


@pytest.mark.parametrize(
    ("size", "ok"), [(0, False), (-1, False), (1, True), (100 * MiB, True), (100 * MiB + 1, False)]
)
@pytest.mark.usefixtures("services")
def test_the_document_states_the_size_range_the_upload_takes(settings, size, ok):  # noqa: F811
    status, document, _ = call(api_event("GET", "/openapi.json"))
    schema = document["components"]["schemas"]["UploadIn"]["properties"]["sizeBytes"]
    assert (schema["minimum"], schema["maximum"]) == (1, settings.max_upload_bytes) == (1, 100 * MiB)
    assert valid(schema, size) is ok
    status, body = upload(sizeBytes=size)
    assert (status == 201) is ok, (status, body)


@pytest.mark.parametrize(
    ("file_name", "ok"), [("clip.mp4", True), ("", True), ("a\x1b[31mb.mp4", False), ("a\nb", False)]
)
@pytest.mark.usefixtures("services")
def test_the_document_refuses_control_characters_in_file_names(file_name, ok):
    schema = SCHEMAS["UploadIn"]["properties"]["fileName"]["anyOf"][0]
    assert valid(schema, file_name) is ok
    status, body = upload(fileName=file_name)
    assert (status == 201) is ok, (status, body)


UPLOAD = next(op for op in OPERATIONS if op.label == "POST /videos/upload")


@hypothesis.settings(FUZZ_SETTINGS, max_examples=30)
@given(data=st.data())
def test_every_upload_the_document_allows_is_accepted(
    world: Callable[[], World],  # noqa: F811  (the imported fixture: it lets the gateway see the users)
    services,  # noqa: F811
    data,
) -> None:
    token, _, _ = World._sign_up(services.identity)  # a new uploader each time: no quota in the way
    case = data.draw(UPLOAD.as_strategy(generation_mode=GenerationMode.POSITIVE), label="case")
    case.headers = {"Authorization": f"Bearer {token}"}
    response = case.call()
    assert_answer_shape(UPLOAD, response)
    assert response.status_code == 201, (case.body, response.text)


def test_the_patterns_are_python_regexes_too():
    # pydantic never compiles these (the checks are its own); the document's readers may be Python too
    for schema in (
        SCHEMAS["UploadIn"]["properties"]["displayName"],
        SCHEMAS["RegisterIn"]["properties"]["password"],
        SCHEMAS["UploadIn"]["properties"]["contentType"],
    ):
        re.compile(schema["pattern"])


@pytest.mark.parametrize(
    ("reason", "ok"), [("spam", True), ("line one\nline two", True), ("   ", False), ("\x1b[31m", False)]
)
def test_the_document_states_a_moderation_reasons_rules(reason, ok):
    from reelay.api.models import ModerationIn

    assert valid(SCHEMAS["ModerationIn"]["properties"]["reason"], reason) is ok
    # And the model agrees on each
    try:
        ModerationIn.model_validate({"reason": reason})
    except ValueError:
        accepted = False
    else:
        accepted = True
    assert accepted is ok


@pytest.mark.parametrize("model", ["StreamIn", "PatchStreamIn"])
def test_the_document_refuses_blank_stream_names_and_control_characters(model):
    schema = SCHEMAS[model]["properties"]["name"]
    schema = schema.get("anyOf", [schema])[0]
    assert valid(schema, "Gate 1") and not valid(schema, "  ") and not valid(schema, "a\x07b")


@pytest.mark.parametrize(
    ("fields", "ok"),
    [
        ({}, False),
        ({"name": None, "record": None}, False),
        ({"name": "Gate"}, True),
        ({"record": False}, True),
        ({"retentionDays": None}, True),  # null clears a recording setting: a change
    ],
)
def test_the_document_says_a_stream_patch_changes_something(fields, ok):
    assert valid(SCHEMAS["PatchStreamIn"], fields) is ok


def test_the_recording_settings_bounds_are_json_schema_keywords():
    for model in ("StreamIn", "PatchStreamIn"):
        fields = SCHEMAS[model]["properties"]
        for name, low, high in (("retentionDays", 1, 3650), ("reconnectWindowSeconds", 0, 1800)):
            schema = fields[name]["anyOf"][0]
            assert (schema["minimum"], schema["maximum"]) == (low, high), schema
            assert "ge" not in schema and "le" not in schema
    # And written as 1.0, they are integers for the API too
    from reelay.api.models import PatchStreamIn

    assert PatchStreamIn.model_validate({"retentionDays": 7.0}).retention_days == 7


@pytest.mark.parametrize(("model", "field"), [("ConfirmIn", "code"), ("MetadataIn", "videoId")])
def test_the_document_refuses_blank_ids_in_bodies(model, field):
    schema = SCHEMAS[model]["properties"][field]
    assert valid(schema, "abc") and not valid(schema, "   ")


@pytest.mark.parametrize("model", ["StreamIn", "PatchStreamIn"])
@pytest.mark.parametrize(
    ("renditions", "ok"),
    [(["720p", "360p"], True), ([], True), (["LPT1"], False), (["720p", "720p"], False), (["4k"], False)],
)
def test_the_document_states_the_renditions_a_recording_takes(model, renditions, ok):
    """The ladder's names, each once: what the catalogue's check_renditions takes, and nothing else."""
    from reelay.catalogue._stream_recording import check_renditions
    from reelay.errors import InvalidInput

    assert valid(SCHEMAS[model]["properties"]["recordRenditions"], renditions) is ok
    try:
        check_renditions(renditions)
        accepted = True
    except InvalidInput:
        accepted = False
    assert accepted is ok
