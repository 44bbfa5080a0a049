"""Contracts and routing of events: inbound storage events, the router, our own outbound events.

`events` may import `pipeline`; never `infra` or `functions`.
"""
