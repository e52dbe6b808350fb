"""The trusted edge gateway: device keys, meter readings, a durable outbox, delivery.

Trust chain steps 1-2 of the mission, at the edge: each meter gets a key (kept here,
never sent), each measurement becomes a signed reading with a per-device monotonic
sequence number, and signed readings wait in a crash-safe outbox until the ledger
acknowledges them; nothing is lost and nothing is doubled across ``kill -9``.

Public modules: :mod:`.keystore`, :mod:`.simulator`, :mod:`.csv_import`,
:mod:`.outbox`, :mod:`.uploader`, :mod:`.gateway`, :mod:`.settings`, :mod:`.errors`.
"""

from .errors import GatewayError
from .gateway import DeviceSpec, Gateway, GatewayStatus, Organisation, default_fleet
from .keystore import Keystore
from .outbox import Outbox
from .settings import GatewaySettings
from .simulator import Measurement, MeterSpec, Simulator
from .uploader import HttpTransport, RetryPolicy, Uploader

__all__ = [
    "DeviceSpec",
    "Gateway",
    "GatewayError",
    "GatewaySettings",
    "GatewayStatus",
    "HttpTransport",
    "Keystore",
    "Measurement",
    "MeterSpec",
    "Organisation",
    "Outbox",
    "RetryPolicy",
    "Simulator",
    "Uploader",
    "default_fleet",
]
