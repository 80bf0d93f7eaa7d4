"""The gateway image laid out from its Dockerfile, without a docker engine.

The Dockerfile is read, not restated: its stages' ``WORKDIR``/``COPY``/``ENV``/``ENTRYPOINT``/``CMD``
lay the files out under a scratch root (container path ``/x`` is ``<root>/x``) and give the process its
environment and command. A ``COPY`` from the build context copies only what the repository's
``.dockerignore`` lets into it (docker's rules: the last matching pattern wins, ``!`` re-includes, a
pattern matching a directory matches everything under it). ``/opt/venv`` is the cached virtualenv holding ``requirements.txt`` alone
(``artifacts.gateway_virtualenv``); the project itself is installed from the copied sources with the
Dockerfile's own ``pip install --no-deps .``, into ``<root>/site-packages``, which is put on
``PYTHONPATH`` because the cached virtualenv is shared. A ``RUN`` the rehearsal cannot reproduce stops
it, naming the line.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from .artifacts import ROOT, gateway_virtualenv

DOCKERFILE = ROOT / "services" / "mcp_gateway" / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
VENV = "/opt/venv"
# RUN lines the layout reproduces (anything else fails): creating the venv and installing requirements
# (the cached virtualenv), installing the project (below), and creating the image's user (the rehearsal
# runs as the test's user).
RUN_VENV = re.compile(r"^python -m venv /opt/venv$")
RUN_REQUIREMENTS = re.compile(r"^/opt/venv/bin/pip install -r requirements\.txt$")
RUN_PROJECT = re.compile(r"^/opt/venv/bin/pip install --no-deps \.( && rm -rf (?P<cleanup>\S+))?$")
RUN_USER = re.compile(r"^groupadd .* && useradd .*$")


@dataclass
class Instruction:
    keyword: str
    arguments: str


@dataclass
class Stage:
    name: str
    instructions: list[Instruction] = field(default_factory=list)


def parse_dockerfile(text: str) -> list[Stage]:
    lines = re.sub(r"\\\n\s*", " ", text).splitlines()
    stages: list[Stage] = []
    for line in lines:
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        keyword, _, arguments = stripped.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = arguments.split()
            stages.append(
                Stage(words[2] if len(words) > 2 and words[1].upper() == "AS" else str(len(stages)))
            )
        else:
            stages[-1].instructions.append(Instruction(keyword, arguments.strip()))
    return stages


def env_pairs(arguments: str, current: dict[str, str]) -> dict[str, str]:
    """``ENV A=1 B=$A:x`` (the key=value form) with ``$NAME``/``${NAME}`` expanded from ``current``."""
    values = {}
    for word in shlex.split(arguments):
        key, _, value = word.partition("=")
        values[key] = re.sub(
            r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
            lambda match: {**current, **values}.get(match.group(1), ""),
            value,
        )
    return values


@dataclass
class GatewayImage:
    root: Path
    venv: Path
    environment: dict[str, str]
    workdir: Path
    entrypoint: list[str]
    cmd: list[str]

    def local(self, container_path: str) -> Path:
        if container_path == VENV or container_path.startswith(VENV + "/"):
            return self.venv / container_path[len(VENV) :].lstrip("/")
        return self.root / container_path.lstrip("/")

    def command(self, *cmd: str) -> list[str]:
        """ENTRYPOINT + the given command (the image's CMD when none), as ``docker run`` would run it."""
        return [*self.entrypoint, *(cmd or self.cmd)]


@dataclass(frozen=True)
class IgnoreRule:
    pattern: re.Pattern[str]
    include: bool


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A ``.dockerignore`` pattern (Go ``filepath.Match`` plus ``**``) as a regex over a relative path."""
    segments = pattern.split("/")
    regex = ""
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
            continue
        regex += "".join(
            "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char) for char in segment
        )
        regex += "" if last else "/"
    return re.compile(regex + "$")


def read_dockerignore(path: Path) -> list[IgnoreRule]:
    rules = []
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        include = stripped.startswith("!")
        pattern = stripped.lstrip("!").strip().strip("/")
        rules.append(IgnoreRule(_pattern_regex(pattern), include))
    return rules


def in_build_context(relative: str, rules: list[IgnoreRule]) -> bool:
    """Whether docker sends ``relative`` (a path under the context root): the last rule matching it or
    one of its parent directories decides."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: count + 1]) for count in range(len(parts))]
    included = True
    for rule in rules:
        if any(rule.pattern.match(candidate) for candidate in candidates):
            included = rule.include
    return included


def copy_from_context(source: Path, destination: Path, rules: list[IgnoreRule]) -> None:
    """``source`` (in the build context) copied to ``destination``, leaving out what the context lacks."""
    files = sorted(path for path in source.rglob("*") if path.is_file()) if source.is_dir() else [source]
    copied = 0
    for path in files:
        if not in_build_context(path.relative_to(ROOT).as_posix(), rules):
            continue
        target = destination / path.relative_to(source) if source.is_dir() else destination
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        copied += 1
    if not copied:
        raise AssertionError(f"COPY {source.relative_to(ROOT)}: nothing of it is in the build context")


def copy_into(source: Path, destination: Path) -> None:
    """Between stages (no build context, nothing ignored)."""
    if source.is_dir():
        shutil.copytree(source, destination, dirs_exist_ok=True)
    else:
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, destination)


def lay_out_gateway_image(root: Path, system_path: str) -> GatewayImage:
    """The image's files under ``root``; its environment from the final stage's ``ENV`` lines, on top
    of a ``PATH`` of ``system_path`` (the base image's)."""
    venv = gateway_virtualenv()
    image = GatewayImage(root, venv, {"PATH": system_path}, root, [], [])
    stages = parse_dockerfile(DOCKERFILE.read_text(encoding="utf-8"))
    ignore_rules = read_dockerignore(DOCKERIGNORE)
    stage_roots = {stage.name: root / f"stage-{stage.name}" for stage in stages}
    for index, stage in enumerate(stages):
        final = index == len(stages) - 1
        stage_root = root if final else stage_roots[stage.name]
        workdir = stage_root
        environment = {"PATH": system_path}
        for instruction in stage.instructions:
            keyword, arguments = instruction.keyword, instruction.arguments
            if keyword == "WORKDIR":
                workdir = stage_root / arguments.lstrip("/")
                workdir.mkdir(parents=True, exist_ok=True)
            elif keyword == "ENV":
                environment.update(env_pairs(arguments, environment))
            elif keyword == "COPY":
                words = [word for word in shlex.split(arguments) if not word.startswith("--chown")]
                source_stage = next(
                    (word.split("=", 1)[1] for word in words if word.startswith("--from=")), None
                )
                *sources, destination = [word for word in words if not word.startswith("--")]
                target = (
                    stage_root / destination.lstrip("/")
                    if destination.startswith("/")
                    else workdir / destination
                )
                for source in sources:
                    if source_stage is not None and source.rstrip("/") == VENV:
                        continue  # the cached virtualenv stands for /opt/venv in every stage
                    copied = target / Path(source).name if destination.endswith("/") else target
                    if source_stage:
                        copy_into(stage_roots[source_stage] / source.lstrip("/"), copied)
                    else:
                        copy_from_context(ROOT / source, copied, ignore_rules)
            elif keyword == "RUN":
                run(arguments, workdir, venv, site_packages=root / "site-packages")
            elif keyword == "ENTRYPOINT" and final:
                image.entrypoint = json.loads(arguments)
            elif keyword == "CMD" and final:
                image.cmd = json.loads(arguments)
        if final:
            image.workdir = workdir
            image.environment = {
                key: value.replace(f"{VENV}/", f"{venv}/") if key == "PATH" else value
                for key, value in environment.items()
            }
            for key, value in image.environment.items():
                if key != "PATH" and value.startswith("/"):
                    image.environment[key] = str(image.local(value))
    image.environment["PYTHONPATH"] = str(root / "site-packages")
    return image


def run(arguments: str, workdir: Path, venv: Path, *, site_packages: Path) -> None:
    if RUN_VENV.match(arguments) or RUN_REQUIREMENTS.match(arguments) or RUN_USER.match(arguments):
        return
    project = RUN_PROJECT.match(arguments)
    if project is None:
        raise AssertionError(f"the gateway rehearsal cannot reproduce the Dockerfile's RUN {arguments!r}")
    subprocess.run(
        [
            str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
            "--target", str(site_packages), str(workdir),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )  # fmt: skip
