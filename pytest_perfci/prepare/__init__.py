"""Host preparation: what a suite needs on a host (perf...), how each image's package manager installs it,
and the truthful record of what happened (installed with its version, or a named reason why not)."""
