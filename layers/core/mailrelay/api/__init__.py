"""The HTTP API's logic, independent of Lambda: operations, problem documents, OpenAPI."""
