"""mailrelay core: the one submission path, its policy, models and AWS adapters.

Shipped to Lambda as a layer, installed into the bridge container, and installed
editable for tests. Nothing here knows about Lambda events or SMTP sessions.
"""
