"""``python -m identifier_resolver``: the resolver's command line."""

from ._cli import main

main()
