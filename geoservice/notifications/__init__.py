"""Notifications that are never lost (docs/notifications.md).

A trigger queues every logged step, a fan-out writes inboxes and an outbox in one transaction, a
delivery loop sends SMS and signed webhooks with retries.
"""
