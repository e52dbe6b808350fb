"""Third-party verification of inventories (issue 6, item 2).

Only the verifiable sample exists so far (:mod:`.sampling`); opening verifications,
findings and attestations come later.
"""
