"""The office: the hub end of the wire for every line (issue 16).

It receives the lines' events over MQTT and HTTP, keeps each ``(gateway_id, seq)`` once in
one store (SQLite embedded, PostgreSQL at scale) and serves the lines' orders and master
data. It shares ``cloud_sync``'s wire models and imports nothing of the gateway.
"""
