"""The station desk: what an operator does at a station (badge, scans, tasks, packing, defects,
labels) and what the screen shows.
"""
