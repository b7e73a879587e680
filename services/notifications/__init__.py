"""Notifications: per-customer subscriptions to Ferry's events, delivered as signed webhooks or
email by the notifier, a consumer of the bus (EventBridge rule → SQS → notifier)."""
