"""The demo AWS account: a deterministic estate (``estate``), seeded into moto (``seed``, ``aws``),
with Cost Explorer answering from the estate's definition (``cost_explorer``); and the test OIDC
provider the demo's ``--auth`` mode and the tests log in through (``testidp``).

Development only: pyproject's packages leave it out and the gateway image's build context
(``.dockerignore``) does not hold it. It imports the gateway, never the other way round.
"""
