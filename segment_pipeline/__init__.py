"""segment_pipeline: predictive / intent-based segments on your own event data."""
