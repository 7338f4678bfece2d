"""Lambda packaging without Docker: pip installs Linux wheels into a cached directory."""

from __future__ import annotations

from pathlib import Path

import pytest

from infra.bundling import LambdaBundle, LocalPythonBundling


@pytest.fixture(scope="module")
def bundled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # The real repository, the real pip, the shared .build cache (a minute the first time).
    output = tmp_path_factory.mktemp("asset")
    assert LocalPythonBundling(LambdaBundle()).try_bundle(str(output), image=None) is True
    return output


def test_asset_holds_handlers_domain_core_and_linux_wheels(bundled):
    # Given the asset directory the local bundler produced
    # Then it contains the handlers, the domain core and compiled dependencies built for Lambda's Linux
    assert (bundled / "lambdas" / "api" / "handler.py").is_file()
    assert (bundled / "reelay" / "__init__.py").is_file()
    assert (bundled / "reelay" / "settings.py").is_file()
    cores = list((bundled / "pydantic_core").glob("_pydantic_core.*.so"))
    assert [c.name for c in cores] == ["_pydantic_core.cpython-311-x86_64-linux-gnu.so"]
    assert (bundled / "aws_lambda_powertools").is_dir()
    assert (bundled / "pymysql").is_dir()


def test_asset_leaves_out_tests_tooling_and_bytecode(bundled):
    # Given the asset directory
    # Then nothing but code and dependencies went in
    for unwanted in ("tests", "infra", "node_modules", ".venv", "web", "cdk.out", "local", "bin"):
        assert not (bundled / unwanted).exists(), unwanted
    assert not list((bundled / "reelay").rglob("__pycache__"))


def _fake_repo(root: Path) -> Path:
    (root / "reelay").mkdir(parents=True)
    (root / "reelay" / "__init__.py").write_text("")
    (root / "lambdas" / "api").mkdir(parents=True)
    (root / "lambdas" / "api" / "handler.py").write_text("def lambda_handler(e, c): return 1\n")
    (root / "requirements.txt").write_text("pydantic==2.13.4\n")
    return root


def test_source_hash_follows_code_and_requirements_only(tmp_path):
    # Given a repository and its bundle hash
    bundle = LambdaBundle(_fake_repo(tmp_path / "repo"))
    first = bundle.source_hash()
    # When bytecode or unrelated files appear, the hash stays
    (tmp_path / "repo" / "reelay" / "__pycache__").mkdir()
    (tmp_path / "repo" / "reelay" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"junk")
    (tmp_path / "repo" / "README.md").write_text("docs")
    assert bundle.source_hash() == first
    # When a handler changes, it changes
    (tmp_path / "repo" / "lambdas" / "api" / "handler.py").write_text("def lambda_handler(e, c): return 2\n")
    second = bundle.source_hash()
    assert second != first
    # When requirements change, it changes too
    (tmp_path / "repo" / "requirements.txt").write_text("pydantic==2.13.3\n")
    assert bundle.source_hash() != second


def test_dependency_cache_is_keyed_by_requirements_and_platform(tmp_path):
    # Given the same requirements for two platforms
    root = _fake_repo(tmp_path / "repo")
    x86 = LambdaBundle(root, platform="manylinux2014_x86_64")
    arm = LambdaBundle(root, platform="manylinux2014_aarch64")
    # Then they never share a cache directory
    assert x86.dependencies_key() != arm.dependencies_key()


def test_cached_dependencies_are_reused_without_pip(tmp_path, monkeypatch):
    # Given a cache directory already holding this key's install
    root = _fake_repo(tmp_path / "repo")
    bundle = LambdaBundle(root, cache_dir=tmp_path / "cache")
    cached = tmp_path / "cache" / f"lambda-deps-{bundle.dependencies_key()}"
    (cached / "pydantic").mkdir(parents=True)
    (cached / "pydantic" / "__init__.py").write_text("# cached\n")

    def no_pip(*args, **kwargs):
        raise AssertionError("pip must not run when the cache is warm")

    monkeypatch.setattr("infra.bundling.subprocess.run", no_pip)
    # When the asset is assembled
    out = tmp_path / "out"
    bundle.assemble(out)
    # Then it comes from the cache, with the code beside it
    assert (out / "pydantic" / "__init__.py").read_text() == "# cached\n"
    assert (out / "lambdas" / "api" / "handler.py").is_file()


def test_unresolvable_requirements_are_a_clear_error_and_leave_no_cache(tmp_path):
    # Given requirements naming a version that does not exist
    root = _fake_repo(tmp_path / "repo")
    (root / "requirements.txt").write_text("pydantic==0.0.0.0.1\n")
    bundle = LambdaBundle(root, cache_dir=tmp_path / "cache")
    # When the asset is assembled
    with pytest.raises(RuntimeError, match=r"pip could not install requirements\.txt"):
        bundle.assemble(tmp_path / "out")
    # Then no half-built cache entry is left to be mistaken for a good one
    assert list((tmp_path / "cache").iterdir()) == []
