"""Fake providers known to the conformance suite: name -> "module:Class".

Each class is a `FakeServer` subclass with:
  - `script(s: Script)`: what the next calls answer (buffered or streamed, per the request);
  - `catalog(caps: list[str]) -> (provider_entry, [model_entry])`: catalog entries pointing the
    real adapter at this fake (base URL, credential source, a model id `<provider>::<model>`);
  - `supports: frozenset[str]`: conformance features the provider supports (see
    tests/conformance/test_conformance.py for the names).
"""

FAKE_PROVIDERS: dict[str, str] = {
    # "openai": "tests.fakes.openai:FakeOpenAI",
    "anthropic": "tests.fakes.anthropic:FakeAnthropic",
    "bedrock": "tests.fakes.bedrock:FakeBedrock",
    "gemini": "tests.fakes.gemini:FakeGemini",
}
