"""The CDK app of the LLM Gateway: `app.py` -> `stack.py` -> one construct per concern."""
