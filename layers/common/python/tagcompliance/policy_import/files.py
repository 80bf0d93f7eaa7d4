"""Saving an imported policy: where it may be written, and written whole or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

from tagcompliance.errors import InvalidInputError, PolicyError
from tagcompliance.policy import (
    TaggingPolicy,
    load_policy,
)

DEFAULT_POLICY_FILENAME = "tagging_policy.json"


def _inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


MAX_NAME_BYTES = 255  # NAME_MAX of Linux and macOS file systems
MAX_PATH_BYTES = 4095  # PATH_MAX less its terminating NUL


def resolve_output_path(output_path: str | Path | None, policies_dir: Path) -> Path:
    """Where to write a policy file: a ``.json`` file inside ``policies_dir``, symlinks resolved.

    A relative path is read like ``POLICY_PATH`` (from the working directory) when that lands
    inside ``policies_dir`` ("policies/tagging_policy.json"), else inside ``policies_dir``
    ("tagging_policy.json"). ``..``, other directories and other suffixes are refused.
    """
    raw = str(output_path) if output_path is not None else DEFAULT_POLICY_FILENAME
    if not raw.strip() or "\x00" in raw:
        raise InvalidInputError("output_path is empty")
    candidate = Path(raw)
    if ".." in candidate.parts:
        raise InvalidInputError(f"output_path {raw!r} must not contain '..'")
    if candidate.suffix.lower() != ".json":
        raise InvalidInputError(f"output_path {raw!r} must name a .json file")
    longest = max(len(os.fsencode(part)) for part in candidate.parts)
    if longest > MAX_NAME_BYTES:
        raise InvalidInputError(
            f"output_path is too long: one of its names has {longest} bytes, at most {MAX_NAME_BYTES}"
        )
    root = policies_dir.resolve()
    try:
        if not candidate.is_absolute():
            from_cwd = (Path.cwd() / candidate).resolve()
            candidate = from_cwd if _inside(from_cwd.parent, root) else root / candidate
        resolved = candidate.resolve()
        if len(os.fsencode(str(resolved))) > MAX_PATH_BYTES:
            raise InvalidInputError(f"output_path is too long: at most {MAX_PATH_BYTES} bytes in all")
        # The caller sees neither the resolved path nor the directory: server paths stay private.
        if not _inside(resolved.parent, root):
            raise InvalidInputError(
                f"output_path {raw!r} is outside the policies directory: give a .json file name "
                "inside it, such as finance.json"
            )
        if resolved.exists() and not resolved.is_file():
            raise InvalidInputError(f"output_path {raw!r} is not a regular file")
    except OSError as error:  # e.g. a symlink loop: still the caller's path, not a server fault
        raise InvalidInputError(f"output_path {raw!r} cannot be used: {error.strerror or error}") from None
    return resolved


def write_policy_file(policy: TaggingPolicy, path: Path) -> bool:
    """Write ``policy`` to ``path`` atomically, after checking it loads back unchanged.

    The JSON goes to a temporary file in the same directory, which ``load_policy`` must read back
    as the same policy before it replaces ``path``: a reader sees the old file or the new one,
    never a partial one. Returns whether a file was replaced.
    """
    text = json.dumps(policy.model_dump(mode="json", exclude_none=True), indent=2, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    replaced = path.exists()
    mode = path.stat().st_mode & 0o777 if replaced else 0o644
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    temporary_path = Path(temporary)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        temporary_path.chmod(mode)
        loaded = load_policy(temporary_path)
        if loaded.policy != policy:
            raise PolicyError(f"the converted policy does not load back unchanged from {path}: not saved")
        temporary_path.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary_path.unlink()
        raise
    return replaced
