"""The numbers a manager runs the line by: ISO 22400 KPIs per station, operator and line on
the line's calendar, cost per order, reports, bottlenecks and drift, and retention."""
