"""Protocol-true stand-ins for the world around a line: a hub, its orders, its operators."""
