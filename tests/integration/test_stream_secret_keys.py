"""The keys that seal source secrets, read from Secrets Manager (moto) as in AWS."""

from __future__ import annotations

import boto3

from reelay.relay.secrets import SourceSecrets
from reelay.settings import Settings
from reelay.wiring import Services


def test_services_read_the_keys_from_the_secret_and_seal_with_the_first(moto_url: str) -> None:
    # Given the secret as the API stack makes it (letters and digits), with a newer key put first
    sm = boto3.client("secretsmanager", endpoint_url=moto_url, region_name="us-east-1")
    old, new = "a" * 64, "B7" * 32
    arn = sm.create_secret(Name="reelay-stream-keys", SecretString=f"{new},{old}")["ARN"]
    settings = Settings(stream_secret_arn=arn, aws_endpoint_url=moto_url, aws_region="us-east-1")
    # When the services build their source secrets
    secrets = Services(settings).source_secrets
    sealed = secrets.seal({"password": "Cam3ra-Pa55word"})
    # Then they open what the old key sealed, and seal with the new key (the old one alone cannot open it)
    assert secrets.open(SourceSecrets([old]).seal({"password": "x"})) == {"password": "x"}
    assert SourceSecrets([new]).open(sealed) == {"password": "Cam3ra-Pa55word"}
    assert sealed is not None and "Cam3ra" not in sealed
