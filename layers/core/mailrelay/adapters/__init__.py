"""The only modules that touch boto3. Each takes an optional client and creates a default lazily."""
