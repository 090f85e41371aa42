"""Recorded device streams the driver tests replay."""
