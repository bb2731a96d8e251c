"""The data-scientist toolkit (issue #18): which version was live when, drift, importance, performance,
fairness. Each module computes its figures from aggregate queries or chunked streams (storage/analytics.py)."""
