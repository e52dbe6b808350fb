"""The marketplace's errors: each says what was wrong and maps to one HTTP status.

All derive from :class:`MarketError`, itself a :class:`~ledger_service.errors.LedgerError`,
so the API's one handler turns them into problem JSON with a stable ``code``.
"""

from __future__ import annotations

from ..errors import LedgerError

__all__ = [
    "AlreadyGrantedError",
    "AlreadyRevokedError",
    "DatasetNotFoundError",
    "DeliveryNotReadyError",
    "GrantInactiveError",
    "GrantNotFoundError",
    "InvalidDatasetError",
    "MarketContractError",
    "MarketError",
    "NoDataMarketError",
    "NotDatasetOwnerError",
    "NotGrantBuyerError",
    "RequestNotFoundError",
]


class MarketError(LedgerError):
    """Base of every marketplace error."""

    code = "market_error"
    http_status = 500


class NoDataMarketError(MarketError):
    """This ledger's chain has no ``DataMarket`` contract."""

    code = "no_data_market"
    http_status = 422


class MarketContractError(MarketError):
    """The ``DataMarket`` contract refused a transaction (``details``: error and args)."""

    code = "market_contract_refused"
    http_status = 502


class InvalidDatasetError(MarketError):
    """A listing names devices or a period that select no readings of the owner."""

    code = "invalid_dataset"
    http_status = 422


class DatasetNotFoundError(MarketError):
    """No dataset has this id."""

    code = "dataset_not_found"
    http_status = 404


class RequestNotFoundError(MarketError):
    """No data request has this id."""

    code = "data_request_not_found"
    http_status = 404


class GrantNotFoundError(MarketError):
    """No grant has this id."""

    code = "grant_not_found"
    http_status = 404


class AlreadyGrantedError(MarketError):
    """The request was granted already: a request gets at most one grant."""

    code = "already_granted"
    http_status = 409


class AlreadyRevokedError(MarketError):
    """The grant was revoked already."""

    code = "already_revoked"
    http_status = 409


class NotDatasetOwnerError(MarketError):
    """The caller's enterprise does not own the dataset (or request, or grant)."""

    code = "not_dataset_owner"
    http_status = 403


class NotGrantBuyerError(MarketError):
    """The caller's enterprise is not the buyer the grant was made to."""

    code = "not_grant_buyer"
    http_status = 403


class GrantInactiveError(MarketError):
    """The grant was revoked or has expired (``details["reason"]``), locally or on chain."""

    code = "grant_inactive"
    http_status = 410


class DeliveryNotReadyError(MarketError):
    """The dataset's readings are not yet covered by a final anchor."""

    code = "delivery_not_anchored"
    http_status = 409
