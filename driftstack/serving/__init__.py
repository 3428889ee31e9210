"""Online serving pieces shared by the predict and replay functions (Lambda-safe imports only:
numpy, onnxruntime, pydantic, Powertools, boto3)."""
