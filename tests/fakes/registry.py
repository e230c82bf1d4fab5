"""Fake providers known to the conformance suite: name -> "module:Class".

Each class is a `FakeServer` subclass with:
  - `script(s: Script)`: what the next calls answer (buffered or streamed, per the request);
  - `catalog(caps: list[str]) -> (provider_entry, [model_entry])`: catalog entries pointing the
    real adapter at this fake (base URL, credential source, a model id `<provider>::<model>`);
  - `supports: frozenset[str]`: conformance features the provider supports (see
    tests/conformance/scenarios.py for the names and the optional members).
"""

FAKE_PROVIDERS: dict[str, str] = {
    "openai": "tests.fakes.openai:FakeOpenAI",
    "openai_compatible": "tests.fakes.openai:FakeOpenAICompatible",
    "anthropic": "tests.fakes.anthropic:FakeAnthropic",
    "bedrock": "tests.fakes.bedrock:FakeBedrock",
    "gemini": "tests.fakes.gemini:FakeGemini",
}
