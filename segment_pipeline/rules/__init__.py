"""Segment rules: the past-segment compiler to SQL, its plain-Python reference, vocabulary warnings."""

from segment_pipeline.rules.compiler import (
    CompiledQuery,
    compile_past_segments,
    evaluate_past_segments,
)

__all__ = ["CompiledQuery", "compile_past_segments", "evaluate_past_segments"]
