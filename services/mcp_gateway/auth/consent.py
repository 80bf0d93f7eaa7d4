"""The consent page: what a user sees after logging in at the IdP and before any code is issued.

Registration is open, so a client's name proves nothing: the page says so, and shows what the user
can check instead: where the browser goes next (the redirect URI's host), and for a client
identified by a metadata document, the host that published it. Allow and Deny post back with a
CSRF token that must match a cookie set with the page (``SameSite=Strict``: another site cannot
post it). The page may not be framed (``frame-ancestors 'none'``, ``X-Frame-Options: DENY``), so
it cannot be overlaid to trick a click, and it never sends a ``Referer`` (its URL carries the
IdP's code).
"""

from __future__ import annotations

from html import escape
from urllib.parse import urlsplit

from starlette.responses import HTMLResponse

from .clients import is_metadata_document_id
from .scopes import ADMIN_SCOPE, READ_SCOPE, WRITE_SCOPE

CONSENT_PATH = "/oauth/consent"
CSRF_COOKIE_PREFIX = "oauth_consent_"

SCOPE_DESCRIPTIONS = {
    READ_SCOPE: "Read tag compliance data: resources, their tags, violations, costs and reports.",
    ADMIN_SCOPE: "Administer: change the active tag policy, create and change scheduled audits, and read "
    "every user's requests. Only allow this for an application you fully trust.",
    WRITE_SCOPE: "Write tags: add, change and remove tags on your AWS resources (each change confirmed "
    "first, journaled and undoable).",
}

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; "
    "base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def redirect_destination(redirect_uri: str) -> str:
    """What the page names as the destination: ``scheme://host[:port]``, or the app's scheme."""
    parts = urlsplit(redirect_uri)
    if parts.scheme in ("http", "https"):
        return f"{parts.scheme}://{parts.netloc}"
    return f"the application registered for {parts.scheme}:"


def consent_page(
    *,
    client_id: str,
    client_name: str | None,
    redirect_uri: str,
    user_id: str,
    scopes: list[str],
    request_token: str,
    csrf_token: str,
) -> HTMLResponse:
    name = escape(client_name or "an unnamed application")
    if is_metadata_document_id(client_id):
        publisher = escape(urlsplit(client_id).netloc)
        identity = (
            f"<p>Its identity document was published by <strong>{publisher}</strong> "
            f"(<code>{escape(client_id)}</code>).</p>"
        )
    else:
        identity = (
            "<p>This name was chosen by the application itself when it registered; "
            "<strong>nobody has verified it</strong>.</p>"
        )
    destination = escape(redirect_destination(redirect_uri))
    scope_items = "".join(
        f"<li><code>{escape(scope)}</code>: {escape(SCOPE_DESCRIPTIONS.get(scope, scope))}</li>"
        for scope in scopes
    )
    body = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Allow access to Tag Compliance?</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 2rem auto; padding: 0 1rem; }}
.name {{ font-size: 1.2rem; }}
.warn {{ background: #fff4e5; border-left: 4px solid #e67e22; padding: .5rem 1rem; }}
button {{ font-size: 1rem; padding: .5rem 1.5rem; margin-right: 1rem; }}
code {{ word-break: break-all; }}
</style></head>
<body>
<h1>Allow access to Tag Compliance?</h1>
<p>You are signed in as <strong>{escape(user_id)}</strong>.</p>
<p class="name">An application calling itself <strong id="client-name">&ldquo;{name}&rdquo;</strong>
(self-asserted name) asks for access to your account.</p>
{identity}
<div class="warn">
<p>If you allow, you will be sent to <strong id="redirect-host">{destination}</strong>
with a code that gives access. Allow only if you started this sign-in yourself, from an application
you trust, and you recognise that destination.</p>
<p><small>Full address: <code>{escape(redirect_uri)}</code></small></p>
</div>
<p>It will be able to:</p>
<ul id="scopes">{scope_items}</ul>
<form method="post" action="{CONSENT_PATH}">
<input type="hidden" name="request" value="{escape(request_token)}">
<input type="hidden" name="csrf" value="{escape(csrf_token)}">
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form>
</body></html>
"""
    return HTMLResponse(body, headers=PAGE_HEADERS)


def message_page(title: str, message: str, status_code: int) -> HTMLResponse:
    """An error shown to the user instead of a redirect to a URI the user has not approved."""
    body = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title></head>'
        f"<body><h1>{escape(title)}</h1><p>{escape(message)}</p></body></html>"
    )
    return HTMLResponse(body, status_code=status_code, headers=PAGE_HEADERS)
