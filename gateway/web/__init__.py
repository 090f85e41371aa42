"""The station API over HTTP."""
