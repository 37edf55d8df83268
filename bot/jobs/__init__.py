"""A job's life in the core: the runner (Segmind: wait for a slot, submit, poll,
download), the journal (what costs money, recorded first), the driver (one stored job to
its end), the service (hands jobs over, resumes, purges) and the delivery protocol the
Discord layer implements."""

from .cache import ResultCache
from .delivery import Delivery, Ending, Sent, Undeliverable
from .driver import JobDriver
from .journal import StoreJournal
from .runner import JobJournal, JobRequest, JobResult, JobRunner, Phase, Progress
from .service import DeliveryFactory, JobService

__all__ = [
    "Delivery",
    "DeliveryFactory",
    "Ending",
    "JobDriver",
    "JobJournal",
    "JobRequest",
    "JobResult",
    "JobRunner",
    "JobService",
    "Phase",
    "Progress",
    "ResultCache",
    "Sent",
    "StoreJournal",
    "Undeliverable",
]
