"""Online serving pieces shared by the predict function and the log archiver (Lambda-safe imports only:
numpy, onnxruntime, pydantic, Powertools, boto3)."""
