"""Delivery events: derived from committed state changes of the messages table, stored, published, fed."""
