"""The office's receiving ends: HTTP and MQTT, both through :mod:`office.receive.intake`."""
