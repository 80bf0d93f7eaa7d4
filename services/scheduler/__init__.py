"""Scheduling Lambdas: EventBridge sync, the daily snapshot, notifications, scheduled run results."""
