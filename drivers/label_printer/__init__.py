"""Thermal label printer: ZPL II rendering of travellers and shipping labels."""
