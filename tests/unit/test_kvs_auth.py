"""The stand-in's credential issuer: keys rotate at half-life, and expired, revoked or unknown keys fail."""

from __future__ import annotations

import pytest

from local.kvs.auth import CredentialIssuer, Forbidden


def sigv4(key_id: str) -> str:
    return f"AWS4-HMAC-SHA256 Credential={key_id}/20261201/us-east-1/kinesisvideo/aws4_request, Signature=ab"


def test_the_same_key_is_served_until_half_its_life_then_a_new_one():
    now = [1000.0]
    issuer = CredentialIssuer(80, clock=lambda: now[0])
    first = issuer.current()
    now[0] += 39
    assert issuer.current() is first
    now[0] += 1
    second = issuer.current()
    assert second.access_key_id != first.access_key_id
    # And the document is what botocore's container provider reads
    doc = second.container_json()
    assert set(doc) >= {"AccessKeyId", "SecretAccessKey", "Token", "Expiration"}
    assert doc["Expiration"].endswith("Z")


def test_requests_pass_only_with_a_current_key_and_its_token():
    now = [1000.0]
    issuer = CredentialIssuer(60, clock=lambda: now[0])
    key = issuer.current()
    assert issuer.check(sigv4(key.access_key_id), key.session_token) == key.access_key_id

    for authorization, token in [
        (None, key.session_token),  # unsigned
        (sigv4("ASIAUNKNOWN"), key.session_token),  # unknown key
        (sigv4(key.access_key_id), "another-token"),  # wrong token
    ]:
        with pytest.raises(Forbidden):
            issuer.check(authorization, token)

    # When the key's time is up, Then it is refused as expired
    now[0] += 60
    with pytest.raises(Forbidden, match="ExpiredTokenException"):
        issuer.check(sigv4(key.access_key_id), key.session_token)


def test_expire_and_revoke_switches():
    issuer = CredentialIssuer(3600)
    a = issuer.current()
    assert issuer.expire() == [a.access_key_id]
    assert not issuer.is_valid(a.access_key_id)
    b = issuer.current()  # an expired current key is past half its life: a new one is issued
    assert b.access_key_id != a.access_key_id and issuer.is_valid(b.access_key_id)
    issuer.revoke(b.access_key_id)
    with pytest.raises(Forbidden, match="revoked"):
        issuer.check(sigv4(b.access_key_id), b.session_token)
