"""Reviewer web pages (PRODUCT.md §8), served by the API's own app: server-rendered HTML, no JavaScript."""
