"""Segment outputs: memberships per day, tag history, overlaps, score trees."""
