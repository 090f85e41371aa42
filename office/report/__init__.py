"""What the office tells of the lines: gaps that persist (logged), ``GET /v1/lines`` and
``GET /metrics`` for readers (operations, Prometheus)."""
