"""Handlers that need numpy from a layer (not from the host: runtime processes are isolated)."""


def handler(event, context):
    import numpy as np  # imported here so a missing layer surfaces as ModuleNotFoundError

    values = np.arange(1, event.get("n", 10) + 1, dtype=np.float64)
    return {"sum_of_squares": float(np.dot(values, values)), "numpy_file": np.__file__,
            "numpy_version": np.__version__}
