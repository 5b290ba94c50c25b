"""What the worker service tells the domain apps."""

from django.dispatch import Signal

# Sent (no arguments) once per WORKER_HOUSEKEEPING_INTERVAL by one worker at a time; a
# domain app connects a receiver that prunes its own old rows.
housekeeping = Signal()
