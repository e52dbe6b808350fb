"""The data window (数据橱窗): list a dataset, show the window, find a dataset's readings.

A dataset is fixed when it is listed: the owner's readings of the named devices measured
in ``(period_from, period_to]`` *among the first ``tree_size`` leaves of the log* (its
size at listing). A reading's time is the end of its interval, so this is the
inventories' rule: January's dataset holds the readings January's inventory counts.
Readings that arrive later for the same period are not part of it, so the set, and with
it the content hash recorded on chain, never changes, and the ledger can find it again
at every delivery without storing a list of leaves.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Row, func, select

from carbon_protocol.data_delivery import MAX_DELIVERY_READINGS, content_hash
from carbon_protocol.market_records import (
    DataListing,
    DataSelection,
    ListingMetadata,
    MarketChainRef,
)

from .._internal.clock import utc_text
from .._internal.db import devices, readings
from ..auth.owners import owners_of
from ..errors import NotFoundError
from ..ledger import Ledger
from ..log_records import LoggedRecord, append_record, get_record, list_records
from .contract import DataMarketClient, MarketTx, Scene
from .errors import DatasetNotFoundError, InvalidDatasetError, NoDataMarketError
from .models import ChainRef, DatasetCreate, DatasetPublic

__all__ = ["Selection", "chain_ref", "dataset_record", "get_dataset", "list_dataset",
           "market_client", "market_lock", "new_id", "selected_readings", "window"]

_LOCKS: WeakKeyDictionary[Ledger, threading.Lock] = WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def market_lock(ledger: Ledger) -> threading.Lock:
    """One lock per ledger serialising marketplace writes (check, then chain, then log),
    so two concurrent grants of one request cannot both pass the check. Across
    replicas the contract's own refusal of a second grant key is the guard."""
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(ledger, threading.Lock())


def market_client(ledger: Ledger) -> DataMarketClient:
    """The ledger's ``DataMarket``, written as its chain account."""
    if ledger.data_market_address is None:
        raise NoDataMarketError(
            "this ledger's chain has no DataMarket: open the embedded ledger with rules "
            "(`carbon-ledger serve` and the demo do) or use a deployment file written by "
            "`carbon-ledger devchain --rules`")
    return DataMarketClient(ledger.chain, ledger.data_market_address)


def new_id(ledger: Ledger, kind: str, token: str | None = None) -> str:
    """A fresh identifier ``<prefix>/<kind>.<32 hex>`` (or with the given ``token``)."""
    return f"{ledger.settings.prefix}/{kind}.{token or secrets.token_hex(16)}"


def chain_ref(ledger: Ledger, tx: MarketTx, address: str) -> MarketChainRef:
    """The ``chain`` field of a record: the transaction that recorded the step."""
    return MarketChainRef(chain_id=ledger.domain.chain_id, contract=address.lower(),
                          tx_hash=tx.tx_hash.lower(), block_number=tx.block_number)


@dataclass(frozen=True)
class Selection:
    """Which readings a dataset holds."""

    devices: tuple[str, ...]
    period_from: str
    period_to: str
    tree_size: int

    @classmethod
    def of(cls, document: Mapping[str, Any]) -> Selection:
        """The selection a listing record states."""
        sel = document["selection"]
        return cls(tuple(sel["devices"]), sel["period_from"], sel["period_to"],
                   int(sel["tree_size"]))


def selected_readings(conn: Connection, selection: Selection,
                      columns: tuple[Any, ...] = ()) -> list[Row[Any]]:
    """The selected readings in leaf order: ``leaf_index, leaf_hash`` and ``columns``."""
    query = (select(readings.c.leaf_index, readings.c.leaf_hash, *columns)
             .where(readings.c.device_id.in_(selection.devices),
                    readings.c.measured_at > selection.period_from,
                    readings.c.measured_at <= selection.period_to,
                    readings.c.leaf_index < selection.tree_size)
             .order_by(readings.c.leaf_index).limit(MAX_DELIVERY_READINGS + 1))
    return list(conn.execute(query))


def _device_summary(conn: Connection, selection: Selection) -> list[dict[str, Any]]:
    counts: dict[str, int] = {str(d): int(n) for d, n in conn.execute(
        select(readings.c.device_id, func.count())
        .where(readings.c.device_id.in_(selection.devices),
               readings.c.measured_at > selection.period_from,
               readings.c.measured_at <= selection.period_to,
               readings.c.leaf_index < selection.tree_size)
        .group_by(readings.c.device_id))}
    rows = conn.execute(select(devices.c.id, devices.c.quantity, devices.c.unit)
                        .where(devices.c.id.in_(selection.devices)).order_by(devices.c.id))
    return [{"device": d, "quantity": q, "unit": u, "readings": int(counts.get(d, 0))}
            for d, q, u in rows]


def list_dataset(ledger: Ledger, body: DatasetCreate) -> DatasetPublic:
    """List a dataset: resolve its readings, hash them, record it on chain, then log it.

    Refuses (:class:`InvalidDatasetError`) devices the owner does not own and a
    selection with no readings or more than a delivery may carry."""
    client = market_client(ledger)
    device_ids = tuple(sorted(body.devices))
    with ledger.reader.connect() as conn:
        owners = owners_of(ledger, conn, "device", device_ids)
        foreign = sorted(d for d, o in owners.items() if o != body.owner)
        if foreign:
            raise InvalidDatasetError(f"devices not registered to {body.owner}: "
                                      f"{', '.join(foreign[:10])}", devices=foreign[:50])
        selection = Selection(device_ids, body.period_from, body.period_to,
                              ledger.tree_size())
        rows = selected_readings(conn, selection)
        summary = _device_summary(conn, selection)
        conn.rollback()
    if not rows:
        raise InvalidDatasetError("the devices have no readings in that period")
    if len(rows) > MAX_DELIVERY_READINGS:
        raise InvalidDatasetError(f"a dataset holds at most {MAX_DELIVERY_READINGS} readings; "
                                  "choose fewer devices or a shorter period")
    digest = content_hash(ledger.settings.log_suite, [bytes(r.leaf_hash) for r in rows])
    dataset_id = new_id(ledger, "ds")
    with market_lock(ledger):
        tx = client.list_dataset(dataset_id, digest, body.scene, body.owner)
        _, record = append_record(ledger, kind="data_listing", record_id=dataset_id,
                                  enterprise_id=body.owner, document=DataListing(
            dataset=dataset_id, owner=body.owner, scene=body.scene, title=body.title,
            description=body.description,
            selection=DataSelection(devices=list(device_ids), period_from=body.period_from,
                                    period_to=body.period_to, tree_size=selection.tree_size),
            metadata=ListingMetadata.model_validate({
                "period_from": body.period_from, "period_to": body.period_to,
                "devices": summary, "readings": len(rows),
                "first_leaf": int(rows[0].leaf_index), "last_leaf": int(rows[-1].leaf_index)}),
            content_hash=digest.hex(), hash_suite=ledger.settings.log_suite,
            listed_at=utc_text(), chain=chain_ref(ledger, tx, client.address),
        ).model_dump(mode="json"))
    return _public(record)


def _public(record: LoggedRecord) -> DatasetPublic:
    doc = record.document
    scene: Scene = doc["scene"]
    return DatasetPublic(
        dataset_id=doc["dataset"], owner=doc["owner"], scene=scene, title=doc["title"],
        description=doc["description"], metadata=doc["metadata"],
        content_hash=doc["content_hash"], hash_suite=doc["hash_suite"],
        listed_at=doc["listed_at"], chain=ChainRef.model_validate(doc["chain"]),
        record_leaf_index=record.leaf_index)


def dataset_record(ledger: Ledger, dataset_id: str) -> LoggedRecord:
    """The listing record of ``dataset_id`` (:class:`DatasetNotFoundError` if none)."""
    try:
        record = get_record(ledger, dataset_id)
    except NotFoundError:
        record = None
    if record is None or record.kind != "data_listing":
        raise DatasetNotFoundError(f"no dataset {dataset_id}", dataset_id=dataset_id)
    return record


def get_dataset(ledger: Ledger, dataset_id: str) -> DatasetPublic:
    """One dataset as the window shows it."""
    return _public(dataset_record(ledger, dataset_id))


def window(ledger: Ledger, scene: Scene | None = None) -> list[DatasetPublic]:
    """Every listed dataset (of ``scene``), oldest first: metadata only."""
    listed = [_public(r) for r in list_records(ledger, kinds=("data_listing",))]
    return [d for d in listed if scene is None or d.scene == scene]
