"""Lambda handlers of the audit pipeline (thin adapters over ``tagcompliance.audits``)."""
