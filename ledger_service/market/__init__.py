"""The data marketplace (数据橱窗 and 碳数据市场): list, request, grant, deliver, revoke, audit.

An enterprise lists a dataset (a set of its readings, fixed by devices, period and the
log size at listing) with a content hash recorded on chain in ``DataMarket``
(:mod:`.contract`); a buyer requests it with a purpose and an encryption key; the owner
grants or sells it until an expiry, on chain; the buyer fetches a delivery encrypted to
its key that carries exactly the dataset's readings with their proofs; the owner may
revoke. Every step, and every read, is a log record (:mod:`ledger_service.log_records`),
so who saw what and when is provable against an anchor. See ``docs/marketplace.md``.
"""
