"""Device drivers: pure codecs and transports for the line's printers, scales and readers."""
