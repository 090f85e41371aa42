"""Close the loop with the WMS and the shops: the lines' events to their webhooks (a durable
outbox, signed, retried, sent once per key), the WMS's stock in, and the orders no line
answered."""

from office.hooks.http import hook_routes
from office.hooks.outbox import Failed, State
from office.hooks.project import HookProjector
from office.hooks.sender import HookTally, Sender
from office.hooks.sign import SIGNATURE_HEADER, sign, verify
from office.hooks.spec import UNANSWERED, HookSpec, hook_specs
from office.hooks.unanswered import Unanswered, UnansweredWatch

__all__ = [
    "SIGNATURE_HEADER",
    "UNANSWERED",
    "Failed",
    "HookProjector",
    "HookSpec",
    "HookTally",
    "Sender",
    "State",
    "Unanswered",
    "UnansweredWatch",
    "hook_routes",
    "hook_specs",
    "sign",
    "verify",
]
