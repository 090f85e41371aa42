"""Feed the lines: the shops' orders in (``POST /v1/orders``), each routed to a line that
can make it and put on that line's orders feed (``GET .../orders?after=``)."""

from office.feed.http import feed_routes
from office.feed.ledger import Ledger, Outcome, Result

__all__ = ["Ledger", "Outcome", "Result", "feed_routes"]
