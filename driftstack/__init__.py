"""driftstack: Spark-trained models served from Lambda via ONNX, watched for drift, retrained safely."""

__version__ = "0.1.0"
