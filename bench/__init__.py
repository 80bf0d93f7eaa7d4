"""``make bench``: speed, API economy, latency under load and memory, each figure against its target.

One module per measurement; each exposes ``run(...) -> dict`` returning ``{"name", "figures",
"details"}``. ``python -m bench`` runs them all and writes ``bench/results/latest.json`` and
``bench/results/latest.md``. The smoke test (``tests/bench``) runs each one at tiny sizes.
"""
