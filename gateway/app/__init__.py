"""The running process: the composition root, the hub link's wiring, systemd health, room on
disk.
"""
