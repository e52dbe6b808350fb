"""Industry accounting rules, executable bit-identically in Python and on chain.

The foundation of issue 4: an association publishes versioned methodologies (emission
factors with provenance and plausible ranges, the GWP set, units) to the
``RuleRegistry`` contract; gateways fetch them and compute inventories offline; anyone
recomputes a line on chain and gets the same number to the last digit.

Public surface:

- :mod:`carbon_rules.fixed_point`: the one number representation (18-decimal fixed
  point in ``[0, 2**128 - 1]``, round half up after every product, decimal strings in
  and out);
- :mod:`carbon_rules.formulas`: ``E = AD x EF`` (with case 18's data-source priority),
  fuel combustion ``sum FC x NCV x CC x OF x 44/12``, process emissions with GWP, and
  CCER-style project reductions, mirroring ``contracts/EmissionFormulas.sol``;
- :mod:`carbon_rules.models`: factors, methodology versions and their history, and the
  offline twin of the contract's rule-bound computations;
- :mod:`carbon_rules.factors`: the shipped default factors (data files with sources);
- :mod:`carbon_rules.registry_client`: the contract client;
- :mod:`carbon_rules.errors`: one error family whose contract-mirroring members are
  raised identically by Python and by a decoded revert.

The EVM plumbing lives in ``carbon_rules._internal``.
"""
