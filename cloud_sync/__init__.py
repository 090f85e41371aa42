"""The hub link: wire models of shared/contract and the MQTT/in-memory transports.

A leaf package: it imports nothing from ``gateway`` or ``drivers``; the gateway provides
the small ports declared in :mod:`cloud_sync.ports`.
"""
