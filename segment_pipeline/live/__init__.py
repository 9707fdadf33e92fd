"""Live segments: evaluation with durable state (``engine``) and webhook delivery (``outbox``).

Free of dagster, so a sensor, a notebook or another orchestrator can drive it.
"""

from segment_pipeline.live.engine import ProcessResult, flush_deadlines, process_events
from segment_pipeline.live.outbox import DeliveryResult, Entry, deliver

__all__ = ["DeliveryResult", "Entry", "ProcessResult", "deliver", "flush_deadlines", "process_events"]
