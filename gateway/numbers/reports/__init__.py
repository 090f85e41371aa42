"""A period's report: a web page, a printable PDF and the data (CSV, XLSX, JSON), in
Chinese and English, kept on the gateway under the data folder's ``reports/``.

``data`` is what a report is made from (its input, kept as ``report.json``); ``maker``
makes one when a period closes (or on request) by running ``render`` in a child process
at a low priority, keeps the files and tells the hub (``report.published``); ``store``
reads the kept reports for the web pages. ``render`` (WeasyPrint, openpyxl) never runs in
the gateway's own process.
"""
