"""Per-client suppression lists: addresses a client's mail is not sent to, and the rules that add them."""
