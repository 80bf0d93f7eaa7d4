"""The demo's AWS: a moto server on 127.0.0.1 holding the estate, with Cost Explorer answering from it.

The product reaches it only through ``AWS_ENDPOINT_URL`` (see ``DemoAws.environment``). moto keeps
its state in module globals, so there is one demo AWS per process: starting a second one, or using
moto's in-process ``mock_aws`` in the same process, shares (and resets) the same backends.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from moto.server import ThreadedMotoServer

from .cost_explorer import CostModel, install_cost_model
from .estate import Estate, build_estate
from .seed import ACCOUNT_ID, CREDENTIALS, DemoClients, seed_estate

# Read by moto while it serves: no default AMIs, because moto gives them snapshots the account
# appears to own, which are not in the estate. (MOTO_PORT, for moto's callbacks to itself such as
# Step Functions tasks calling Lambda, is set once the port is known.)
_MOTO_ENVIRONMENT = {"MOTO_EC2_LOAD_DEFAULT_AMIS": "false"}


@dataclass
class DemoAws:
    """A running demo AWS. ``arns`` maps estate keys to the ARNs moto gave the resources."""

    endpoint_url: str
    estate: Estate
    arns: dict[str, str]
    cost_model: CostModel
    clients: DemoClients
    account_id: str = ACCOUNT_ID
    _server: ThreadedMotoServer | None = field(default=None, repr=False)
    _saved_environment: dict[str, str | None] = field(default_factory=dict, repr=False)

    @property
    def regions(self) -> tuple[str, ...]:
        return self.estate.regions

    @property
    def environment(self) -> dict[str, str]:
        """Environment variables that point boto3 (and so the product) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": CREDENTIALS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": CREDENTIALS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": self.regions[0],
        }

    def client(self, service: str, region: str | None = None) -> Any:
        """A cached boto3 client for this server (first estate region unless ``region`` is given)."""
        return self.clients(service, region or self.regions[0])

    def reset_and_reseed(self) -> None:
        """Wipe every moto backend and create the estate again (for tests that mutate it).

        Resources get new ids, so ``arns`` is replaced; Cost Explorer request counts are kept.
        """
        request = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        self.arns = seed_estate(self.estate, self.endpoint_url, self.clients)

    def stop(self) -> None:
        """Stop the server and restore the environment variables it set."""
        if self._server is not None:
            self._server.stop()
            self._server = None
        for name, value in self._saved_environment.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved_environment.clear()


def start_demo_aws(seed: int = 7, port: int | None = None) -> DemoAws:
    """Start moto on 127.0.0.1, install the cost model and seed the estate for ``seed``.

    Without ``port`` the server binds 127.0.0.1:0, so the OS picks a free port with no race
    between choosing and binding. Sets ``MOTO_PORT`` and ``MOTO_EC2_LOAD_DEFAULT_AMIS=false`` in
    ``os.environ`` until ``stop()``.
    """
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    saved = {name: os.environ.get(name) for name in (*_MOTO_ENVIRONMENT, "MOTO_PORT")}
    os.environ.update(_MOTO_ENVIRONMENT)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port or 0, verbose=False)
    server.start()
    host, bound_port = server.get_host_and_port()
    os.environ["MOTO_PORT"] = str(bound_port)
    estate = build_estate(seed)
    endpoint_url = f"http://{host}:{bound_port}"
    demo = DemoAws(
        endpoint_url=endpoint_url,
        estate=estate,
        arns={},
        cost_model=install_cost_model(estate),
        clients=DemoClients(endpoint_url),
        _server=server,
        _saved_environment=saved,
    )
    try:
        # Reset first: backends created earlier in this process may predate the environment above.
        demo.reset_and_reseed()
    except BaseException:
        demo.stop()
        raise
    return demo
