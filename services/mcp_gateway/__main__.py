"""``tag-compliance-mcp --transport stdio|http [--host H] [--port P]`` (``python -m tag_compliance_mcp``).

Transport rules: stdio needs no token (it is the user's own process). HTTP requires OAuth bearer
tokens when ``AUTH_IDP_ISSUER_URL`` is set (the gateway is then the OAuth authorization server too,
users logging in at that IdP) or ``AUTH_ISSUER_URL`` (tokens from another authorization server);
without either HTTP is refused, except on a loopback address with ``--allow-unauthenticated-loopback``
(or ``AUTH_ALLOW_UNAUTHENTICATED_LOOPBACK=true``), which ``/health`` then reports.
"""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn
from pydantic import ValidationError

from tagcompliance.errors import TagComplianceError
from tagcompliance.settings import LogSettings

from .auth.config import build_auth, check_http_exposure
from .auth.logfilter import configure_logging
from .runtime import build_runtime
from .server import build_server
from .sessions import http_app
from .settings import GatewaySettings
from .shutdown import GracefulServer, exit_now
from .tracing import instrument


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tag-compliance-mcp", description=__doc__)
    parser.add_argument("--transport", choices=["stdio", "http"], default="stdio")
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="HTTP bind address (non-loopback needs AUTH_IDP_ISSUER_URL or AUTH_ISSUER_URL)",
    )
    parser.add_argument("--port", type=int, default=8080, help="HTTP port")
    parser.add_argument(
        "--allow-unauthenticated-loopback",
        action="store_true",
        help="serve HTTP on a loopback address without OAuth (local development only)",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port must be 1-65535, got {args.port}")
    return args


def startup_error(error: Exception) -> str:
    """Why the gateway cannot start, naming the setting to change (settings errors by their variable)."""
    if isinstance(error, ValidationError):
        return "; ".join(
            f"{'.'.join(str(part) for part in item['loc']) or 'settings'}: {item['msg']}"
            for item in error.errors()
        )
    if isinstance(error, OSError):  # a file the gateway writes: the store, the imported policy, the spool
        return f"{error} (DATA_DIR and POLICY_PATH name where the gateway writes)"
    return str(error)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # stdout carries the MCP protocol on stdio: every log line goes to stderr, redacted and escaped.
    try:
        log_settings = LogSettings()
    except ValidationError as error:
        print(f"tag-compliance gateway cannot start: {error}", file=sys.stderr)
        return 2
    configure_logging(args.log_level, sys.stderr, log_settings.log_format, log_settings.environment_name)
    try:
        settings = GatewaySettings()
        if args.transport == "http" and not (settings.auth_idp_issuer_url or settings.auth_issuer_url):
            check_http_exposure(settings, args.host, None, args.allow_unauthenticated_loopback)
        runtime = build_runtime(settings, args.transport)
    except (TagComplianceError, ValidationError, ValueError, OSError) as error:
        print(f"tag-compliance gateway cannot start: {startup_error(error)}", file=sys.stderr)
        return 2
    try:
        auth = None
        auth_mode = "none: stdio (the user's own process)"
        if args.transport == "http":
            auth = build_auth(settings, args.host, args.port, runtime.store, runtime.cache)
            auth_mode = check_http_exposure(settings, args.host, auth, args.allow_unauthenticated_loopback)
    except (TagComplianceError, ValidationError, ValueError) as error:
        runtime.close()
        print(f"tag-compliance gateway cannot start: {startup_error(error)}", file=sys.stderr)
        return 2
    runtime.auth_mode = auth_mode
    logging.getLogger("tagcompliance.gateway").info("starting: %s", runtime.health())
    server = build_server(runtime, auth)
    try:
        if args.transport == "stdio":
            server.run()
        else:
            app = http_app(server, settings, args.host, auth, runtime.cache)
            if settings.xray_daemon_address:
                app = instrument(app, settings.xray_daemon_address)
            # log_config=None: uvicorn's records (access log included) go through the root handler
            config = uvicorn.Config(
                app, host=args.host, port=args.port, log_level=args.log_level.lower(), log_config=None
            )
            GracefulServer(config, settings.shutdown_grace_seconds).run()
    finally:
        runtime.close()
    return 0


def run() -> None:
    """The ``tag-compliance-mcp`` command (pyproject's ``[project.scripts]``)."""
    exit_now(main())


if __name__ == "__main__":
    run()
