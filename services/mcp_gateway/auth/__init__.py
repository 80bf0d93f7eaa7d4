"""OAuth 2.0 for the gateway: the JWT resource-server verifier, per-tool scopes, and a test-only IdP."""
