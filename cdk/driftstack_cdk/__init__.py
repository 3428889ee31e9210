"""CDK constructs for driftstack."""
