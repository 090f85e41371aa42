"""Tests of gateway.access: who may do what (issue 12)."""
