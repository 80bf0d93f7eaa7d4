"""Fixtures shared by the whole test suite.

``demo_aws`` is the demo AWS (``services.demo.aws.start_demo_aws(seed=7)``): a moto server on
127.0.0.1 holding the demo estate, with Cost Explorer answering from the estate's definition. It
starts once per test session (about 10 s) and stops at its end.

While it runs it sets ``MOTO_PORT`` and ``MOTO_EC2_LOAD_DEFAULT_AMIS=false`` in ``os.environ``
(restored on stop) and nothing else global: ``AWS_ENDPOINT_URL`` is NOT set. To point the product
at it, use ``monkeypatch.setenv`` with each item of ``demo_aws.environment``, or pass
``demo_aws.endpoint_url`` explicitly; ``demo_aws.client(service, region)`` gives a ready client.

It is shared: a test that changes resources must call ``demo_aws.reset_and_reseed()`` before it
ends (ARNs change then, so read ``demo_aws.arns`` when needed rather than caching it), and a test
that changes ``demo_aws.cost_model.page_size`` must restore it. moto keeps its state per process,
so an in-process ``moto.mock_aws()`` in the same session would reset the demo estate.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.demo.aws import DemoAws, start_demo_aws


@pytest.fixture(scope="session")
def demo_aws() -> Iterator[DemoAws]:
    demo = start_demo_aws(seed=7)
    try:
        yield demo
    finally:
        demo.stop()
