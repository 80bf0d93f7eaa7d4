"""Reports and CSV exports the tools wrote, offered as MCP resources.

A large report or a whole export is a file under ``DATA_DIR/reports`` or ``DATA_DIR/exports``. Its
answer links it (``file_link``: a resource link, which a client can read without the file system);
``register`` serves ``tagcompliance://files/{kind}/{name}`` for those two directories only, by plain
file name (no path, no ``..``), so nothing else on the host can be read through it.
"""

from __future__ import annotations

from pathlib import Path

from mcp.server.mcpserver import MCPServer
from mcp.types import ResourceLink

from tagcompliance.errors import InvalidInputError

from .runtime import Runtime

URI_PREFIX = "tagcompliance://files"
KINDS = ("reports", "exports")
MIME_TYPES = {".csv": "text/csv", ".json": "application/json", ".md": "text/markdown"}


def file_uri(path: str | Path) -> str | None:
    """The resource URI of a file the tools wrote; None for any other path."""
    written = Path(path)
    if written.parent.name not in KINDS:
        return None
    return f"{URI_PREFIX}/{written.parent.name}/{written.name}"


def file_link(path: str) -> ResourceLink | None:
    uri = file_uri(path)
    if uri is None:
        return None
    written = Path(path)
    size = written.stat().st_size if written.exists() else None
    return ResourceLink(
        type="resource_link",
        uri=uri,
        name=written.name,
        mime_type=MIME_TYPES.get(written.suffix, "text/plain"),
        size=size,
    )


def read_written_file(data_dir: Path, kind: str, name: str) -> str:
    """A report or export by its URI's parts; a clear error for anything else."""
    if kind not in KINDS:
        raise InvalidInputError(f"no such file kind {kind!r}: use one of {', '.join(KINDS)}")
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise InvalidInputError("a file name, as the answer's resource link gives it, is required")
    path = data_dir / kind / name
    if not path.is_file():
        raise InvalidInputError(f"no {kind} file {name!r}: it may have been removed; run the tool again")
    return path.read_text(encoding="utf-8")


def register(mcp: MCPServer, runtime: Runtime) -> None:
    data_dir = Path(runtime.settings.data_dir)

    @mcp.resource(
        URI_PREFIX + "/{kind}/{name}",
        name="written_file",
        description="A report or CSV export a tool wrote (its answer links it).",
    )
    def written_file(kind: str, name: str) -> str:
        return read_written_file(data_dir, kind, name)
