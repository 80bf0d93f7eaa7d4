"""OAuth 2.0 for the gateway: the authorization server of the MCP flow (login delegated to the
company IdP over OIDC), the JWT resource-server verifier, per-tool scopes, and a test/demo-only IdP."""
