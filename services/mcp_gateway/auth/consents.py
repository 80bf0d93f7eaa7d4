"""After the IdP: the callback, the user's consent, the MCP authorization code, remembered consents.

* ``/oauth/callback`` exchanges the IdP's code, verifies its ID token (``upstream.py``), maps the
  user (``AUTH_USER_CLAIM``, admin from ``AUTH_ADMIN_USERS`` / ``AUTH_ADMIN_GROUPS``) and shows the
  consent page (``consent.py``); only the user's Allow issues an MCP authorization code to the
  client. The Allow or Deny must carry the CSRF token of the page's cookie, and a consent request
  is answered once. An Allow is remembered per (user, client, redirect URI, exact scopes) for
  ``AUTH_CONSENT_DAYS`` (listed and revoked at ``/oauth/consents``), so a newly asked ``admin``
  asks again. The gateway never sees a password.
* Errors are redirected to a client only when the user has consented to that client and redirect
  URI (or clicked Deny on a page naming it): registration is open, so an unknown client's redirect
  URI would turn the gateway into an open redirector. Other errors are shown as a page.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from mcp.server.auth.provider import construct_redirect_uri
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from tagcompliance.store.oauth import OAuthCodeRecord, OAuthConsentRecord

from .consent import CONSENT_PATH, CSRF_COOKIE_PREFIX, consent_page, message_page
from .digests import token_hash
from .signed import CONSENT_TYPE, LOGIN_SECONDS, STATE_TYPE
from .upstream import UpstreamLoginError

if TYPE_CHECKING:
    from .authserver import GatewayAuthorizationServer

logger = logging.getLogger("tagcompliance.gateway.auth")

CALLBACK_PATH = "/oauth/callback"
CONSENTS_PATH = "/oauth/consents"
CODE_SECONDS = 300
NO_STORE = {"Cache-Control": "no-store"}


class ConsentFlow:
    """The endpoints between the IdP's answer and the MCP authorization code, and the user's view of
    the consents they gave."""

    def __init__(self, server: GatewayAuthorizationServer) -> None:
        self.server = server
        self.consent_url = server.issuer + CONSENT_PATH

    async def callback(self, request: Request) -> Response:
        """``GET /oauth/callback``: the IdP's answer. Ends with the consent page, or with the code when
        the user's consent for this client, redirect URI and scopes is remembered."""
        login = self.server.signed.read(
            request.query_params.get("state"), STATE_TYPE, self.server.callback_url, "nonce"
        )
        if login is None:
            return JSONResponse(
                {
                    "error": "invalid_request",
                    "error_description": "the login state is missing, expired or not issued by this server",
                },
                status_code=400,
                headers=NO_STORE,
            )
        if upstream_error := request.query_params.get("error"):
            logger.info("the IdP refused the login: %r", upstream_error[:100])
            return message_page("Sign-in refused", "The identity provider refused the sign-in.", 403)
        upstream_code = request.query_params.get("code")
        if not upstream_code:
            return message_page("Sign-in failed", "The identity provider sent no code.", 400)
        try:
            identity = await self.server.upstream.complete_login(
                upstream_code,
                self.server.callback_url,
                self.server.upstream_verifier(str(login["jti"])),
                str(login["nonce"]),
            )
        except UpstreamLoginError as error:
            logger.warning("IdP login refused: %s", error)
            return message_page("Sign-in failed", f"The sign-in could not be completed: {error}", 403)
        grantable = self.server.scope_policy.grantable(identity)
        scopes = [scope for scope in login["scopes"] if scope in grantable]
        if not scopes:
            description = f"{identity.user_id} may not be granted {' '.join(login['scopes'])}"
            if await self._consented_redirect(identity.user_id, login):
                return self._back_to_client(login, error="access_denied", error_description=description)
            return message_page("Access refused", description, 403)
        if self.server.consent_days > 0:
            remembered = await anyio.to_thread.run_sync(
                self.server.store.find_oauth_consent,
                identity.user_id,
                str(login["client_id"]),
                str(login["redirect_uri"]),
                scopes,
                datetime.now(UTC),
            )
            if remembered is not None:
                return await self._issue_code(login, identity.user_id, scopes, "remembered consent")
        return await self._consent_page(login, identity.user_id, scopes)

    async def _consent_page(self, login: dict[str, Any], user_id: str, scopes: list[str]) -> Response:
        client = await self.server.get_client(str(login["client_id"]))
        if client is None:  # removed (or its metadata document gone) since /authorize
            return message_page("Unknown application", "The application is no longer registered.", 400)
        csrf = secrets.token_urlsafe(32)
        request_id = uuid.uuid4().hex
        carried = (
            "client_id",
            "redirect_uri",
            "redirect_uri_explicit",
            "code_challenge",
            "state",
            "resource",
        )
        request_token = self.server.signed.sign(
            CONSENT_TYPE,
            self.consent_url,
            request_id,
            {
                "csrf": token_hash(csrf),
                "user_id": user_id,
                "scopes": scopes,
                **{name: login.get(name) for name in carried},
            },
        )
        response = consent_page(
            client_id=str(client.client_id),
            client_name=client.client_name,
            redirect_uri=str(login["redirect_uri"]),
            user_id=user_id,
            scopes=scopes,
            request_token=request_token,
            csrf_token=csrf,
        )
        response.set_cookie(
            CSRF_COOKIE_PREFIX + request_id,
            csrf,
            max_age=LOGIN_SECONDS,
            path=CONSENT_PATH,
            secure=self.server.issuer.startswith("https://"),
            httponly=True,
            samesite="strict",
        )
        return response

    async def consent(self, request: Request) -> Response:
        """``POST /oauth/consent``: the user's Allow or Deny."""
        form = await request.form()
        decision, csrf = form.get("decision"), form.get("csrf")
        token = form.get("request")
        claims = self.server.signed.read(
            token if isinstance(token, str) else None, CONSENT_TYPE, self.consent_url, "csrf"
        )
        if claims is None or decision not in ("allow", "deny") or not isinstance(csrf, str):
            return message_page(
                "Consent request invalid",
                "This consent request is missing, expired or not from this server.",
                400,
            )
        cookie_name = CSRF_COOKIE_PREFIX + str(claims["jti"])
        cookie = request.cookies.get(cookie_name, "")
        if not (
            cookie
            and hmac.compare_digest(cookie.encode(), csrf.encode())
            and hmac.compare_digest(token_hash(csrf), str(claims["csrf"]))
        ):
            logger.warning("consent answer without its CSRF cookie for client %s", claims.get("client_id"))
            return message_page("Consent refused", "This answer did not come from the consent page.", 403)
        answers = await anyio.to_thread.run_sync(
            self.server.cache.increment, f"oauth:consent:{claims['jti']}", LOGIN_SECONDS
        )
        if answers is not None and answers > 1:  # None: the cache is down; the request still expires
            return message_page("Already answered", "This consent request was already answered.", 400)
        user_id, scopes = str(claims["user_id"]), [str(scope) for scope in claims["scopes"]]
        if decision == "deny":
            logger.info("user %s denied client %s", user_id, claims["client_id"])
            response = self._back_to_client(
                claims, error="access_denied", error_description="the user denied access", status_code=303
            )
        else:
            if self.server.consent_days > 0:
                now = datetime.now(UTC)
                record = OAuthConsentRecord(
                    consent_id=uuid.uuid4().hex,
                    user_id=user_id,
                    client_id=str(claims["client_id"]),
                    redirect_uri=str(claims["redirect_uri"]),
                    scopes=scopes,
                    created_at=now,
                    expires_at=now + timedelta(days=self.server.consent_days),
                )
                await anyio.to_thread.run_sync(self.server.store.save_oauth_consent, record)
            response = await self._issue_code(claims, user_id, scopes, "consent", status_code=303)
        response.delete_cookie(cookie_name, path=CONSENT_PATH)
        return response

    async def _consented_redirect(self, user_id: str, login: dict[str, Any]) -> bool:
        """Whether the user consented to this client and redirect URI (for any scopes): only then is
        an error sent there rather than shown."""
        consents = await anyio.to_thread.run_sync(
            self.server.store.list_oauth_consents, user_id, datetime.now(UTC)
        )
        return any(
            consent.client_id == login["client_id"] and consent.redirect_uri == login["redirect_uri"]
            for consent in consents
        )

    def _back_to_client(
        self, login: dict[str, Any], *, status_code: int = 302, **params: str | None
    ) -> Response:
        location = construct_redirect_uri(
            str(login["redirect_uri"]), **params, state=login.get("state"), iss=self.server.issuer
        )
        headers = {**NO_STORE, "Referrer-Policy": "no-referrer"}
        return RedirectResponse(location, status_code=status_code, headers=headers)

    async def _issue_code(
        self, login: dict[str, Any], user_id: str, scopes: list[str], reason: str, status_code: int = 302
    ) -> Response:
        code = secrets.token_urlsafe(32)
        now = time.time()
        record = OAuthCodeRecord(
            code_hash=token_hash(code),
            grant_id=uuid.uuid4().hex,
            client_id=str(login["client_id"]),
            user_id=user_id,
            scopes=scopes,
            code_challenge=str(login["code_challenge"]),
            redirect_uri=str(login["redirect_uri"]),
            redirect_uri_provided_explicitly=bool(login["redirect_uri_explicit"]),
            resource=login.get("resource"),
            expires_at=datetime.fromtimestamp(now + CODE_SECONDS, UTC),
            created_at=datetime.fromtimestamp(now, UTC),
        )
        await anyio.to_thread.run_sync(self.server.store.save_oauth_code, record)
        await self.server.cleanup_if_due()
        logger.info(
            "user %s authorized client %r for %s (%s)", user_id, record.client_id, " ".join(scopes), reason
        )
        return self._back_to_client(login, code=code, status_code=status_code)

    # -- consents, for the user who gave them ---------------------------------------------------
    async def _bearer_user(self, request: Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.lower().startswith("bearer "):
            return None
        record = await self.server.live_session(header[7:].strip())
        return None if record is None else record.user_id

    async def list_consents(self, request: Request) -> Response:
        """``GET /oauth/consents``: the caller's remembered consents (bearer token of this gateway)."""
        user_id = await self._bearer_user(request)
        if user_id is None:
            return _unauthorized()
        consents = await anyio.to_thread.run_sync(
            self.server.store.list_oauth_consents, user_id, datetime.now(UTC)
        )
        return JSONResponse(
            {
                "consents": [
                    {
                        "consent_id": consent.consent_id,
                        "client_id": consent.client_id,
                        "redirect_uri": consent.redirect_uri,
                        "scopes": consent.scopes,
                        "created_at": consent.created_at.isoformat(),
                        "expires_at": consent.expires_at.isoformat(),
                    }
                    for consent in consents
                ]
            },
            headers=NO_STORE,
        )

    async def revoke_consent(self, request: Request) -> Response:
        """``DELETE /oauth/consents/{consent_id}``: forget the consent and revoke the caller's tokens
        of that client; the next login asks again."""
        user_id = await self._bearer_user(request)
        if user_id is None:
            return _unauthorized()
        consent_id = str(request.path_params["consent_id"])
        revoked = await anyio.to_thread.run_sync(
            self.server.store.revoke_oauth_consent, user_id, consent_id, datetime.now(UTC)
        )
        if revoked is None:
            return JSONResponse(
                {"error": "not_found", "error_description": "you have no consent with that id"},
                status_code=404,
                headers=NO_STORE,
            )
        logger.info("user %s revoked the consent of client %r", user_id, revoked.client_id)
        return Response(status_code=204, headers=NO_STORE)


def _unauthorized() -> JSONResponse:
    return JSONResponse(
        {"error": "invalid_token", "error_description": "a bearer token of this gateway is required"},
        status_code=401,
        headers={**NO_STORE, "WWW-Authenticate": 'Bearer error="invalid_token"'},
    )
