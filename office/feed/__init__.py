"""Feed the lines: the shops' orders in (``POST /v1/orders``, JSON or CSV, or a watched
CSV folder), each routed to a line that can make it and put on that line's orders feed
(``GET .../orders?after=``); each line's master data kept and published retained."""

from office.feed.http import feed_routes, unroutable_routes
from office.feed.ledger import Ledger, Outcome, Result
from office.feed.masterdata import MasterdataInvalid, publish_masterdata

__all__ = [
    "Ledger",
    "MasterdataInvalid",
    "Outcome",
    "Result",
    "feed_routes",
    "publish_masterdata",
    "unroutable_routes",
]
