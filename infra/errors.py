"""Errors of the local stack tooling. They end the CLI with a message and a non-zero exit."""

from registry.core.errors import FeatureStoreError


class InfraError(FeatureStoreError):
    """A service could not be fetched, started, checked or stopped."""
