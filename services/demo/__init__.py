"""The demo AWS account: a deterministic estate (``estate``), seeded into moto (``seed``, ``aws``),
with Cost Explorer answering from the estate's definition (``cost_explorer``)."""
