"""Rationale's Python client for data scientists: the HTTP API as pandas DataFrames.

It talks HTTP only and imports none of the server's packages, so a notebook needs only httpx and pandas.
"""
