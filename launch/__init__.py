"""launch: from a git branch and a search space to a running, tracked sweep."""
