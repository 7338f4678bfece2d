"""The worker image installs a Debian package for every GStreamer element and typelib the code uses.

The element -> package map is not hand-written: it comes from this machine (same Debian release
as the image), by asking GStreamer which plugin file provides the element and dpkg which package
owns that file. So a new element in the pipelines without its package in the Dockerfile fails here.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import gi
import pytest

gi.require_version("Gst", "1.0")
gi.require_version("GIRepository", "2.0")
from gi.repository import GIRepository, Gst  # noqa: E402

from reelay.relay import kvssink  # noqa: E402
from reelay.relay.pipelines import AUTOPLUGGED  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "transcoder" / "Dockerfile"
CODE_DIRS = (ROOT / "reelay", ROOT / "transcoder")
# Elements Debian does not ship: the Dockerfile builds them in a stage of their own.
BUILT_IN_IMAGE = {"kvssink": "libgstkvssink.so"}
_ELEMENT = re.compile(r"^[a-z][a-z0-9_]{2,}$")


def final_stage_packages(dockerfile: str) -> set[str]:
    """Packages apt-get installs in the last stage (the runtime image)."""
    final = re.split(r"(?m)^FROM\s", dockerfile)[-1]
    joined = final.replace("\\\n", " ")
    packages: set[str] = set()
    for m in re.finditer(r"apt-get install ([^&;\n]+)", joined):
        packages |= {w for w in m.group(1).split() if not w.startswith("-")}
    return packages


def used_elements(dirs=CODE_DIRS) -> set[str]:
    """Element names in make("...")-style calls and in ' ! '-separated pipeline descriptions."""
    names: set[str] = set()
    for d in dirs:
        for path in d.rglob("*.py"):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and node.args:
                    fn = node.func
                    fname = fn.attr if isinstance(fn, ast.Attribute) else getattr(fn, "id", "")
                    first = node.args[0]
                    if (
                        "make" in fname.lower()
                        and isinstance(first, ast.Constant)
                        and isinstance(first.value, str)
                    ):
                        names.add(first.value)
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and " ! " in node.value:
                    for part in node.value.split("!"):
                        words = part.split()
                        if words:
                            names.add(words[0])
    known = {n for n in names if _ELEMENT.match(n) and Gst.ElementFactory.find(n) is not None}
    return known | {n for n in names if n in BUILT_IN_IMAGE}


def _found_in_code(pattern: str, dirs=CODE_DIRS) -> set[str]:
    return {m for d in dirs for path in d.rglob("*.py") for m in re.findall(pattern, path.read_text())}


def used_typelibs(dirs=CODE_DIRS) -> set[str]:
    return _found_in_code(r"require_version\(\s*[\"'](\w+)[\"']", dirs)


@cache
def owning_package(path: str) -> str:
    real = os.path.realpath(path)
    candidates = [real]
    if not real.startswith("/usr/"):
        candidates.append("/usr" + real)  # merged-/usr: dpkg records /usr/lib, files resolve to /lib
    else:
        candidates.append(real.removeprefix("/usr"))  # ... or records /lib (libc6)
    for candidate in candidates:
        out = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if out.returncode == 0:
            return out.stdout.split(":", 1)[0].strip()
    raise AssertionError(f"no Debian package owns {path}")


@cache
def depends_of(package: str) -> set[str]:
    out = subprocess.run(
        ["dpkg-query", "-W", "-f=${Depends},${Pre-Depends}", package], capture_output=True, text=True
    )
    return {re.split(r"[\s(:]", d.strip())[0] for d in re.split(r"[,|]", out.stdout) if d.strip()}


def covered(packages: set[str]) -> set[str]:
    return packages | {d for p in packages for d in depends_of(p)}


def element_package(element: str) -> str:
    factory = Gst.ElementFactory.find(element)
    assert factory is not None, element
    return owning_package(factory.get_plugin().get_filename())


def typelib_package(namespace: str) -> str:
    repo = GIRepository.Repository.get_default()
    version = {"Gst": "1.0", "GstPbutils": "1.0"}.get(namespace)
    repo.require(namespace, version, 0)
    return owning_package(repo.get_typelib_path(namespace))


def build_recipe(dockerfile: str) -> str:
    """The Dockerfile plus the build script it runs (the kvssink stage runs scripts/build-kvssink.sh)."""
    script = ROOT / "scripts" / "build-kvssink.sh"
    return dockerfile + (script.read_text() if "scripts/build-kvssink.sh" in dockerfile else "")


def missing_packages(dockerfile: str, elements: set[str], typelibs: set[str]) -> dict[str, str]:
    ok = covered(final_stage_packages(dockerfile))
    missing = {}
    for e in sorted(elements):
        if e in BUILT_IN_IMAGE:
            recipe = build_recipe(dockerfile)
            if BUILT_IN_IMAGE[e] not in dockerfile or "-DBUILD_GSTREAMER_PLUGIN=ON" not in recipe:
                missing[e] = "a build stage for " + BUILT_IN_IMAGE[e]
            continue
        pkg = element_package(e)
        if pkg not in ok:
            missing[e] = pkg
    for ns in sorted(typelibs):
        pkg = typelib_package(ns)
        if pkg not in ok:
            missing[ns] = pkg
    return missing


@pytest.fixture(scope="module", autouse=True)
def _gst() -> None:
    Gst.init(None)


def test_dockerfile_installs_a_package_for_every_element_the_code_uses():
    # Given the elements and GObject typelibs the transcoder and relay code use (with those parsebin and
    # decodebin pick for sources the relay takes, e.g. RTSP MJPEG: rtpjpegdepay, jpegdec)
    elements = used_elements() | set(AUTOPLUGGED)
    typelibs = used_typelibs()
    # (the transcoder must at least encode H.264 and write HLS, or this scan found nothing)
    assert {"x264enc", "hlssink2"} <= elements or {"x264enc", "splitmuxsink"} <= elements, elements

    # When they are mapped to the Debian packages that provide them on this machine
    missing = missing_packages(DOCKERFILE.read_text(), elements, typelibs)

    # Then the runtime stage of the Dockerfile installs every one of them
    assert missing == {}


def used_libraries(dirs=CODE_DIRS) -> set[str]:
    """Shared libraries the code opens itself (ctypes), named as constants like "libswscale.so.6"."""
    return _found_in_code(r"[\"'](lib[\w+-]+\.so\.\d+)[\"']", dirs)


def missing_libraries(dockerfile: str, libraries: set[str]) -> dict[str, str]:
    """Each library whose Debian package the runtime stage does not name itself (libc is in every image)."""
    named = final_stage_packages(dockerfile) | {"libc6"}
    missing = {}
    for library in sorted(libraries):
        pkg = owning_package(f"/usr/lib/x86_64-linux-gnu/{library}")
        if pkg not in named:
            missing[library] = pkg
    return missing


def test_dockerfile_names_the_package_of_every_library_the_code_opens_itself():
    # Given the shared libraries the code loads with ctypes (no element or typelib pulls them in by name)
    libraries = used_libraries()
    assert "libswscale.so.6" in libraries
    # Then the runtime stage installs each one's package by name, not by luck of another's dependencies
    assert missing_libraries(DOCKERFILE.read_text(), libraries) == {}
    # And a Dockerfile without it is caught
    assert missing_libraries(DOCKERFILE.read_text().replace("libswscale6", ""), libraries) == {
        "libswscale.so.6": "libswscale6"
    }


def test_a_dockerfile_without_the_ugly_plugins_is_caught():
    # Given a Dockerfile that forgot gstreamer1.0-plugins-ugly (where x264enc lives)
    broken = DOCKERFILE.read_text().replace("gstreamer1.0-plugins-ugly", "")

    # When the check runs for x264enc and avenc_aac
    missing = missing_packages(broken, {"x264enc", "avenc_aac"}, set())

    # Then x264enc is reported with the package it needs, and the libav one is not
    assert missing == {"x264enc": "gstreamer1.0-plugins-ugly"}


def test_a_pipeline_using_kvssink_needs_its_build_stage(tmp_path: Path):
    # Given code that uses kvssink in a pipeline description
    (tmp_path / "relay.py").write_text('DESC = "videotestsrc ! x264enc ! kvssink stream-name=cam"\n')
    elements = used_elements((tmp_path,))
    assert elements == {"videotestsrc", "x264enc", "kvssink"}

    # When the Dockerfile lacks the kvssink stage
    no_stage = DOCKERFILE.read_text().replace("libgstkvssink.so", "libsomething.so")

    # Then kvssink is reported; with the stage, nothing is
    assert missing_packages(no_stage, {"kvssink"}, set()) == {"kvssink": "a build stage for libgstkvssink.so"}
    assert missing_packages(DOCKERFILE.read_text(), elements, set()) == {}


def test_image_runs_the_worker_as_non_root_from_a_system_site_packages_venv():
    # Given the Dockerfile
    text = DOCKERFILE.read_text()
    final = re.split(r"(?m)^FROM\s", text)[-1]

    # Then the runtime is bookworm-slim with a venv that sees Debian's gi, a non-root user, the worker CMD
    assert text.count("FROM debian:bookworm-slim") == 2
    assert "venv --system-site-packages" in final
    assert re.search(r"(?m)^USER (?!root)\w+", final)
    assert 'CMD ["python3", "-m", "transcoder.worker"]' in final
    assert {"python3-gi", "python3-gst-1.0", "gstreamer1.0-rtsp"} <= final_stage_packages(text)


def test_the_plugin_registry_is_built_by_the_runtime_user_where_it_can_read_it():
    # Given the runtime stage of the Dockerfile
    final = re.split(r"(?m)^FROM\s", DOCKERFILE.read_text())[-1]
    joined = final.replace("\\\n", " ")

    # Then GST_REGISTRY points into a directory (not the user's unwritable HOME) ...
    registry = re.search(r"GST_REGISTRY=(\S+)", joined)
    assert registry, "GST_REGISTRY is not set"
    directory = registry.group(1).rsplit("/", 1)[0]
    assert directory and not directory.startswith(("/root", "/app"))
    # ... that is created and handed to the runtime user
    user = re.search(r"(?m)^USER (\w+)", final)
    assert user
    assert re.search(rf"mkdir -p [^&]*{re.escape(directory)}", joined)
    assert re.search(rf"chown {user.group(1)} [^&]*{re.escape(directory)}", joined)
    # And the registry is built (Gst.init) only after switching to that user, so it is theirs
    assert final.index(f"USER {user.group(1)}") < final.index("Gst.init(None)")


def test_gstreamer_keeps_its_registry_at_gst_registry(tmp_path: Path):
    # Given GST_REGISTRY pointing into a directory the user owns (as the image sets it)
    registry = tmp_path / "cache" / "gst-registry.bin"
    registry.parent.mkdir()
    env = {**os.environ, "GST_REGISTRY": str(registry), "HOME": str(tmp_path / "no-home")}

    # When GStreamer starts, once to build the registry and once more
    script = "import gi; gi.require_version('Gst', '1.0'); from gi.repository import Gst; Gst.init(None)"
    for _ in range(2):
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=120)

    # Then the registry is written there (and not under HOME), where the next start finds it
    assert registry.stat().st_size > 0
    assert not (tmp_path / "no-home").exists()


def test_the_kvssink_build_stage_copies_everything_the_build_script_reads():
    # Given the build script, which reads its source patches from a folder beside itself
    script = (ROOT / "scripts" / "build-kvssink.sh").read_text()
    assert '"$here"/kvssink-patches/*.patch' in script
    patches = sorted((ROOT / "scripts" / "kvssink-patches").glob("*.patch"))
    assert patches, "no kvssink patches"

    # Then the Dockerfile's kvssink stage copies the script and that folder to the same place
    stage = re.split(r"(?m)^FROM\s", DOCKERFILE.read_text())[1]
    copies = dict(re.findall(r"(?m)^COPY (\S+) (\S+)$", stage))
    assert copies.get("scripts/build-kvssink.sh") == "/src/scripts/build-kvssink.sh"
    assert copies.get("scripts/kvssink-patches/") == "/src/scripts/kvssink-patches/"
    assert stage.index("COPY scripts/kvssink-patches/") < stage.index("RUN /src/scripts/build-kvssink.sh")
    # And every patch says what it fixes (text before the diff) and changes the SDK's source only
    for patch in patches:
        head, _, diff = patch.read_text().partition("diff --git ")
        files = re.findall(r"(?m)^\+\+\+ b/(\S+)", diff)
        assert head.strip() and files and all(f.startswith("src/") for f in files), patch.name


def test_bootstrap_and_the_relay_agree_on_the_kvssink_build_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    # Given a cache root
    monkeypatch.setenv("REELAY_CACHE_DIR", str(tmp_path / "cache"))

    # When the build script says where it builds (its version and recipe name the directory)
    script = str(ROOT / "scripts" / "build-kvssink.sh")
    out = subprocess.run([script, "--print-dir"], capture_output=True, text=True, check=True, timeout=30)

    # Then the relay looks for the plugin in that same directory, so a recipe bump reaches both
    assert Path(out.stdout.strip()) == kvssink.cache_dir()
