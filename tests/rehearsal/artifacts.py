"""Deployable artifacts built from ``requirements.txt`` alone, cached in ``build/rehearsal/``.

The rehearsals never borrow the dev virtualenv: the Lambda dependency layer is built with the
Makefile's own ``lambda-deps`` pip flags (for the running interpreter's version, so it can run here),
and the gateway gets a fresh virtualenv with ``requirements.txt`` only, as its Dockerfile does. Each
is kept under a key hashed from what it is built from, so only a change of requirements rebuilds it.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIREMENTS = ROOT / "requirements.txt"
CACHE = ROOT / "build" / "rehearsal"
PIP_TIMEOUT_SECONDS = 900


def makefile_variable(name: str) -> list[str]:
    """The words of a ``NAME := ...`` line of the Makefile (continuation lines joined)."""
    text = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(rf"^{re.escape(name)}\s*:?=(.*)$", text, re.MULTILINE)
    if match is None:
        raise AssertionError(f"the Makefile defines no {name}")
    return shlex.split(match.group(1))


def interpreter_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def cached(kind: str, inputs: list[str], build: Callable[[Path], None]) -> Path:
    """``build/rehearsal/<kind>-<hash of inputs and requirements.txt>``, built once; older builds of
    the same kind are removed. A build goes to a scratch directory first, so an interrupted one is
    never mistaken for a finished one."""
    digest = hashlib.sha256("\0".join([*inputs, REQUIREMENTS.read_text(encoding="utf-8")]).encode())
    target = CACHE / f"{kind}-{digest.hexdigest()[:16]}"
    if target.is_dir():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    scratch = CACHE / f".{kind}-{uuid.uuid4().hex}"
    try:
        build(scratch)
        for stale in CACHE.glob(f"{kind}-*"):
            shutil.rmtree(stale, ignore_errors=True)
        try:
            scratch.rename(target)
        except OSError:
            if not target.is_dir():  # not another run finishing the same build first
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def run_pip(arguments: list[str], what: str) -> None:
    result = subprocess.run(arguments, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS)
    if result.returncode != 0:
        pytest.fail(f"building {what} failed (pip needs its package index):\n{result.stderr[-3000:]}")


def lambda_dependency_layer() -> Path:
    """The dependencies layer (``<dir>/python/...``) as ``make lambda-deps`` builds it, for this interpreter."""
    flags = makefile_variable("LAMBDA_DEPS_PIP_FLAGS")
    version = interpreter_version()

    def build(directory: Path) -> None:
        run_pip(
            [
                sys.executable, "-m", "pip", "install", "--quiet", *flags, "--python-version", version,
                "--target", str(directory / "python"), "-r", str(REQUIREMENTS),
            ],
            "the Lambda dependencies layer",
        )  # fmt: skip

    return cached("lambda-deps", [*flags, version], build)


def gateway_virtualenv() -> Path:
    """A virtualenv holding ``requirements.txt`` and nothing else (the image's ``/opt/venv`` before the
    project itself is installed into it)."""

    def build(directory: Path) -> None:
        subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True, timeout=300)
        run_pip(
            [str(directory / "bin" / "python"), "-m", "pip", "install", "--quiet", "-r", str(REQUIREMENTS)],
            "the gateway's virtualenv",
        )

    return cached("gateway-venv", [sys.version], build)
