"""``python -m infra.playback_keys``: make a key pair of your own that signs private playback.

Not needed for a normal deployment: the storage stack makes the pair at deploy time (the private key
in its ``PlaybackSigningKey`` secret, the public key in CloudFront's playback key group). Use this to
bring your own key, or to rotate: it writes a new public key (commit it and point the config's
``playback_public_key_path`` at it) and the private key to a file only you can read, and prints the
commands that finish the job. CloudFront checks private videos' signed URLs with the public key; the
API signs with the private key, which it reads from the secret.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

ROOT = Path(__file__).resolve().parents[1]


def make_pair(public_path: Path, private_path: Path) -> None:
    """A 2048-bit RSA pair, as CloudFront takes: public PEM to public_path, private (0600) to private_path."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(private)
    public_path.write_bytes(public)


def _config_path(public: Path) -> str:
    """The public key's path as the config takes it: from the repository root when inside it."""
    resolved = public.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m infra.playback_keys", description=__doc__.splitlines()[0])
    p.add_argument("--public", type=Path, default=ROOT / "infra" / "playback_public_key.pem")
    p.add_argument("--private", type=Path, default=Path("playback_private_key.pem"))
    args = p.parse_args(argv)
    if args.private.exists():
        print(f"playback_keys: {args.private} exists; move it away first (it may be the key in use)")
        return 1
    make_pair(args.public, args.private)
    print(f"wrote {args.public} (commit it) and {args.private} (keep it secret). Then:")
    print(f'  set "playback_public_key_path": "{_config_path(args.public)}" in cdk.json\'s "reelay" context')
    print("  make deploy")
    print(
        "  aws secretsmanager put-secret-value --secret-id <the storage stack's PlaybackSigningKeyArn>"
        f" --secret-string file://{args.private} && rm {args.private}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
