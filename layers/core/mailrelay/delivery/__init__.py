"""Delivery: the queue consumer that hands queued messages to the configured upstream SMTP servers."""
