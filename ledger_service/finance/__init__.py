"""What banks read (issue 6, item 3): green grade, integrity code, signed financing code,
loan-project tracking.

* :mod:`.grading`: 深绿 / 中绿 / 浅绿 / 非绿 from carbon intensity against a benchmark;
* :mod:`.integrity`: the red / yellow / green code from data-integrity rules;
* :mod:`.facts`: the integrity facts the ledger database can supply;
* :mod:`.issuing`: the signed code, its configuration hash and its QR image;
* :mod:`.tracking`: a financed project's quarterly reductions against its plan.

Everything here is a typed function over typed inputs; routes and authentication sit on
top. The wire format and the offline verifier are :mod:`carbon_protocol.financing_code`.
"""
