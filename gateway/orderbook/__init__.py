"""The line's order book: orders in, work orders, units and tasks, kitting, alarms, KPIs,
traceability.
"""
