"""Third-party verification of inventories (issue 6, item 2): a verifier samples an
inventory's readings with a seed nobody chose, checks them back to an anchored tree
head, records findings and signs a verdict; every step is a log record, so the
verification's whole history is provable.

* :mod:`.keys`: verifier organisations' public keys (record ``verifier_key``);
* :mod:`.workflow`: open (record ``verification_opened``, then an anchor mines the seed
  block), findings (``verification_finding``), the attestation (``attestation``, checked
  against the registered key, the seed's sample and the recorded findings), status,
  and :func:`~.workflow.attested_periods` for finance;
* :mod:`.sampling`: the seed block from the chain, and the sample algorithm
  ``carbon-ledger/sample/v1`` (:mod:`carbon_protocol.sampling`);
* :mod:`.evidence`: the sample with every reading's proof, for the verifier to check;
* :mod:`.verifier`: the verifier's side (check the evidence, sign the attestation),
  shared by ``carbon-ledger verification check|attest`` and the tests;
* :mod:`.regulator`: the regulator's overview of every enterprise.

Wire formats (records, attestation, evidence) are in :mod:`carbon_protocol.attestation`;
``docs/verification.md`` describes them for an independent implementation.
"""
