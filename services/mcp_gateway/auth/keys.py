"""The gateway's token-signing key.

In AWS the RSA private key (PEM) lives in Secrets Manager (``AUTH_SIGNING_KEY_SECRET_ARN``), so
every task signs and verifies with the same key. Locally a 2048-bit key is generated once and kept
in ``DATA_DIR/oauth-signing-key.pem`` (mode 0600), so tokens survive a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

from joserfc.errors import JoseError
from joserfc.jwk import RSAKey

from tag_compliance_mcp.settings import GatewaySettings
from tagcompliance.errors import TagComplianceError

logger = logging.getLogger("tagcompliance.gateway.auth")
KEY_FILE_NAME = "oauth-signing-key.pem"


def _with_kid(pem: bytes | str) -> RSAKey:
    key = RSAKey.import_key(pem)
    if not key.is_private:
        raise TagComplianceError("the access-token signing key must be an RSA private key")
    return RSAKey.import_key(pem, parameters={"kid": key.thumbprint(), "use": "sig", "alg": "RS256"})


def load_signing_key(settings: GatewaySettings) -> RSAKey:
    if settings.auth_signing_key_secret_arn:
        pem = settings.read_secret(settings.auth_signing_key_secret_arn, "access-token signing key")
        if pem.lstrip().startswith("{"):  # a JSON document holding the PEM under "private_key"
            try:
                pem = str(json.loads(pem)["private_key"])
            except (ValueError, KeyError, TypeError):
                raise TagComplianceError(
                    f"the secret {settings.auth_signing_key_secret_arn} is JSON without a private_key PEM"
                ) from None
        try:
            return _with_kid(pem)
        except (JoseError, ValueError, TypeError) as error:
            raise TagComplianceError(
                f"the secret {settings.auth_signing_key_secret_arn} is not a PEM RSA private key "
                f"({type(error).__name__})"
            ) from None
    path = Path(settings.data_dir) / KEY_FILE_NAME
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = RSAKey.generate_key(2048, private=True).as_pem(private=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process created it first: use theirs
        else:
            with os.fdopen(fd, "wb") as handle:
                handle.write(pem)
            logger.info("generated the access-token signing key %s", path)
    try:
        return _with_kid(path.read_bytes())
    except (JoseError, ValueError, TypeError) as error:
        raise TagComplianceError(
            f"{path} is not a PEM RSA private key ({type(error).__name__}); delete it to generate a new one"
        ) from None


def derived_secret(key: RSAKey, purpose: str) -> bytes:
    """A 32-byte secret for ``purpose`` derived from the signing key (HMAC keys, PKCE verifiers)."""
    return hashlib.sha256(b"tag-compliance/" + purpose.encode() + b"/" + key.as_pem(private=True)).digest()
