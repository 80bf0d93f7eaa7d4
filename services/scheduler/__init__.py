"""Scheduling Lambdas: EventBridge sync (the daily snapshot schedule included), scheduled run results."""
