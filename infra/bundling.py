"""Lambda packaging without Docker.

One code asset (reelay/ + lambdas/ + requirements.txt installed for the Lambda platform) is shared
by every function. The local bundler pip-installs Linux wheels with ``--platform``, so synth needs
no Docker; the install is cached in .build/ keyed by requirements.txt and the target platform.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

from infra.constants import (
    BUILD_CACHE_DIR,
    LAMBDA_EXCLUDES,
    LAMBDA_PIP_PLATFORM,
    LAMBDA_PYTHON_VERSION,
    LAMBDA_SOURCE_DIRS,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo")


def _tree_digest(digest: Any, root: Path, relative_to: Path) -> None:
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in {".pyc", ".pyo"}:
            digest.update(str(path.relative_to(relative_to)).encode())
            digest.update(b"\0")
            digest.update(path.read_bytes())


class LambdaBundle:
    """Where the shared code asset comes from, and the hashes that key its caches."""

    def __init__(
        self,
        root: Path = REPO_ROOT,
        *,
        platform: str = LAMBDA_PIP_PLATFORM,
        python_version: str = LAMBDA_PYTHON_VERSION,
        cache_dir: Path | None = None,
    ) -> None:
        self.root = root
        self.platform = platform
        self.python_version = python_version
        self.cache_dir = cache_dir or root / BUILD_CACHE_DIR
        self.requirements = root / "requirements.txt"

    def dependencies_key(self) -> str:
        digest = hashlib.sha256(self.requirements.read_bytes())
        digest.update(f"{self.platform}|cp{self.python_version}".encode())
        return digest.hexdigest()[:16]

    def source_hash(self) -> str:
        """Changes when the handlers, the domain core or the dependencies change, and only then."""
        digest = hashlib.sha256(self.dependencies_key().encode())
        for name in LAMBDA_SOURCE_DIRS:
            if (self.root / name).is_dir():
                _tree_digest(digest, self.root / name, self.root)
        return digest.hexdigest()

    def dependencies_dir(self) -> Path:
        """requirements.txt installed for the Lambda platform, built once per key."""
        target = self.cache_dir / f"lambda-deps-{self.dependencies_key()}"
        if target.is_dir():
            return target
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="lambda-deps-", dir=self.cache_dir))
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "-r",
            str(self.requirements),
            "--target",
            str(staging),
            "--platform",
            self.platform,
            "--only-binary=:all:",
            "--python-version",
            self.python_version,
            "--implementation",
            "cp",
        ]
        result = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise RuntimeError(
                f"pip could not install requirements.txt for {self.platform}:\n{result.stderr}"
            )
        try:
            staging.rename(target)  # atomic: a half-built cache never looks complete
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)  # another synth won the race
        return target

    def assemble(self, output_dir: Path) -> None:
        deps = self.dependencies_dir()
        shutil.copytree(deps, output_dir, dirs_exist_ok=True, ignore=shutil.ignore_patterns("bin"))
        for name in LAMBDA_SOURCE_DIRS:
            shutil.copytree(self.root / name, output_dir / name, dirs_exist_ok=True, ignore=_IGNORED)


@jsii.implements(ILocalBundling)
class LocalPythonBundling:
    """CDK's local bundling hook: builds the asset in-process, so Docker is never needed."""

    def __init__(self, bundle: LambdaBundle) -> None:
        self.bundle = bundle

    def try_bundle(self, output_dir: str, *, image: DockerImage | None = None, **_: object) -> bool:
        self.bundle.assemble(Path(output_dir))
        return True


_DEFAULT_BUNDLE = LambdaBundle()


def lambda_code(bundle: LambdaBundle = _DEFAULT_BUNDLE) -> lambda_.Code:
    """A new Code for one stack (a code asset cannot be shared across stacks; bundling is cached)."""
    runtime_image = lambda_.Runtime.PYTHON_3_11.bundling_image
    docker_command = (
        f"pip install --no-compile -r requirements.txt -t /asset-output && "
        f"cp -r {' '.join(LAMBDA_SOURCE_DIRS)} /asset-output/"
    )
    return lambda_.Code.from_asset(
        str(bundle.root),
        asset_hash_type=AssetHashType.CUSTOM,
        asset_hash=bundle.source_hash(),
        exclude=list(LAMBDA_EXCLUDES),
        bundling=BundlingOptions(
            image=runtime_image,
            command=["bash", "-c", docker_command],
            local=LocalPythonBundling(bundle),
            environment={"PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        ),
    )
