"""The web front end's security headers, shared by the web stack (CloudFront) and the local gateway.

Plain Python (no CDK import): the local platform serves the same policy without loading the CDK.
"""

from __future__ import annotations

from collections.abc import Iterable


def content_security_policy(
    *, api: str, media: str, uploads: Iterable[str] = (), upgrade_insecure: bool = True
) -> str:
    """Scripts and styles from the site only; the page may call the API, read the media CDN and PUT
    uploads to the media bucket, and nothing else; nobody may frame it."""
    connect = " ".join(dict.fromkeys(["'self'", api, media, *uploads]))  # in order, no repeats
    directives = [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        f"img-src 'self' data: {media}",
        # hls.js feeds the <video> through Media Source Extensions (blob: URLs) and a worker.
        f"media-src 'self' blob: {media}",
        "worker-src 'self' blob:",
        f"connect-src {connect}",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    if upgrade_insecure:
        directives.append("upgrade-insecure-requests")
    return "; ".join(directives)


# What CloudFront's response headers policy adds besides the CSP and HSTS (HTTPS only).
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=()"
STATIC_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "Permissions-Policy": PERMISSIONS_POLICY,
    "Cross-Origin-Opener-Policy": "same-origin",
}
