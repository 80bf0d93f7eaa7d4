"""``python -m services.mcp_gateway --transport stdio|http [--host H] [--port P]``."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys

import uvicorn
from pydantic import ValidationError

from tagcompliance.errors import TagComplianceError
from tagcompliance.settings import Settings

from .runtime import build_runtime
from .server import build_server


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.mcp_gateway", description=__doc__)
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument(
        "--host", default="127.0.0.1", help="HTTP bind address (loopback only until OAuth lands)"
    )
    parser.add_argument("--port", type=int, default=8080, help="HTTP port")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1-65535, got {args.port}")
    if args.transport == "http" and not _is_loopback(args.host):
        parser.error(
            f"refusing to serve HTTP on {args.host} without authentication: bind to 127.0.0.1 "
            "(OAuth for other interfaces is configured separately)"
        )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # stdout carries the MCP protocol on stdio: every log line goes to stderr.
    logging.basicConfig(
        stream=sys.stderr, level=args.log_level, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    try:
        runtime = build_runtime(Settings(), args.transport)
    except (TagComplianceError, ValidationError) as error:
        print(f"tag-compliance gateway cannot start: {error}", file=sys.stderr)
        return 2
    logging.getLogger("tagcompliance.gateway").info("starting: %s", runtime.health())
    server = build_server(runtime)
    try:
        if args.transport == "stdio":
            server.run()
        else:
            app = server.streamable_http_app(host=args.host)
            uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level.lower())
    finally:
        runtime.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
