"""Data access: DynamoDB, S3, Secrets Manager, Step Functions. Only this package uses boto3."""
