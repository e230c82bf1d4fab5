"""LLM Gateway: one API in front of many LLM providers, serverless on AWS Lambda."""

__version__ = "0.1.0"
