"""``python -m infra.playback_keys``: make the key pair that signs private playback.

CloudFront checks private videos' signed URLs with the public key, which the storage stack puts in
the playback key group; the API signs with the private key, which it reads from the stack's
``PlaybackSigningKey`` secret in Secrets Manager. This writes a new public key where the config
points (``playback_public_key_path``) and the private key to a file only you can read, and prints
the two commands that finish the job. The key in the repository has no private half anywhere:
until you run this and deploy, private videos answer without a playback URL (nothing leaks).
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
    print("  make deploy")
    print(
        "  aws secretsmanager put-secret-value --secret-id <the storage stack's PlaybackSigningKeyArn>"
        f" --secret-string file://{args.private} && rm {args.private}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
