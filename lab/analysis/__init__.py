"""What the rows mean: per-row metrics, series, the capacity plan, run comparison.
"""
