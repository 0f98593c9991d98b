"""steptrail: run multi-step jobs and see, live and exactly, what every step logged.

This is the API for people who write jobs; everything under
``steptrail.domain``, ``steptrail.projections``, ``steptrail.api`` and
``steptrail.ui`` is internal and may change without notice::

    from steptrail import JobDefinition, Param, Step, StepContext
"""

from steptrail.domain.context import Cancelled, SkipStep, StepContext
from steptrail.domain.definitions import JobDefinition, Param, Step

__all__ = ["Cancelled", "JobDefinition", "Param", "SkipStep", "Step", "StepContext"]
