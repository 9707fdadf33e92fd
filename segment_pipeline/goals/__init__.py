"""Goals: target groups, control assignment, models, forecasts and intent buckets."""
