"""HTTP simulators of the GitHub, Jira Cloud and Slack Web APIs, served on loopback.

``Sandbox(world)`` starts them; ``World`` is what they serve; ``serve()`` is the
``syncd sandbox`` command. See ``syncd/sandbox/README.md`` for the world-file format.
"""

from syncd.sandbox.faults import Fault, Faults
from syncd.sandbox.recording import RequestLog, Write, Writes
from syncd.sandbox.server import Sandbox, serve
from syncd.sandbox.webhooks import Delivery, Webhooks
from syncd.sandbox.world import Change, World, WorldError

__all__ = ["Change", "Delivery", "Fault", "Faults", "RequestLog", "Sandbox", "Webhooks", "World",
           "WorldError", "Write", "Writes", "serve"]
