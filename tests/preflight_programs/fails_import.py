"""A trainer that cannot even start: it imports a module that does not exist."""

import no_such_module_for_preflight  # noqa: F401

print("never reached")
