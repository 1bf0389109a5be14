"""System-under-test backends (docker, local, external), registered by name."""
