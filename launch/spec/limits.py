"""launch's default counts, and the limits that keep parsing and validation fast and bounded.

The limits are listed for users in docs/search-yaml.md ("Limits").
"""

DEFAULT_MAX_TRIALS = 12
DEFAULT_PARALLEL_TRIALS = 3  # Katib's DefaultTrialParallelCount
DEFAULT_MAX_FAILED_TRIALS = 3
MAX_COUNT = 2**31 - 1  # Katib's counts are int32


# Limits that keep parsing and validation fast and bounded (docs/search-yaml.md, "Limits").
MAX_SPEC_BYTES = 1024 * 1024  # a real search.yaml is a few KiB
MAX_YAML_DEPTH = 64  # a spec nests 5 levels; PyYAML's composer recurses once per level
MAX_NUMBER_CHARS = 100  # a YAML integer literal (Python's int() refuses > 4300 digits)
# Optuna's GridSampler (Katib's grid service, and what a local grid mirrors) materialises every
# combination on each suggestion; 100k trials is far beyond what any Katib cluster runs.
MAX_GRID_COMBINATIONS = 100_000
MAX_SEEDS = 100_000  # `seeds: N` and the length of a seed list
MAX_SEED = 2**32 - 1  # numpy's (and so Optuna's, hyperopt's, skopt's) seed range
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # goptuna reads int bounds with strconv.Atoi
# Katib's collector matches every metric against every tag, and launch checks them pairwise.
MAX_METRICS = 100
MAX_EI_CANDIDATES = 10_000  # TPE's candidates per suggestion (default 24)
