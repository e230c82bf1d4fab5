"""OpenAI Chat Completions adapter (`POST {base_url}/chat/completions`).

Maps the normalized request to OpenAI's messages (system/user/assistant/tool roles,
`image_url` parts, assistant `tool_calls`, `tool` messages for results), tools and
`tool_choice`, `response_format: json_schema` for structured output, and generation
parameters; maps the answer, usage (cached and reasoning token detail) and errors back.
Streaming always sets `stream_options.include_usage`, so the last chunk has exact usage.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx

from llm_gateway.api.errors import GatewayError
from llm_gateway.outbound.client import provider_status_error
from llm_gateway.outbound.credentials import resolve_credential
from llm_gateway.providers.base import ChatResult, ProviderAdapter, ProviderCall, StreamDelta, TokenUsage
from llm_gateway.providers.sse import iter_sse

FINISH = {"stop": "stop", "length": "length", "tool_calls": "tool_calls", "function_call": "tool_calls", "content_filter": "content_filter"}


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class OpenAIAdapter(ProviderAdapter):
    kind = "openai"
    accepted_parts = frozenset({"text", "image", "tool_call", "tool_result"})
    max_tokens_field = "max_completion_tokens"

    # ------------------------------------------------------------ request translation

    def _messages(self, call: ProviderCall) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for message in call.request.messages:
            role = message.role
            texts: list[str] = []
            parts: list[dict[str, Any]] = []
            tool_calls: list[dict[str, Any]] = []
            for part in message.content:
                kind = part.type
                if kind == "text":
                    texts.append(part.text)
                    parts.append({"type": "text", "text": part.text})
                elif kind == "image":
                    parts.append({"type": "image_url", "image_url": {"url": call.extra.get("media", {}).get(part.url, part.url)}})
                elif kind == "tool_call":
                    tc = part.tool_call
                    tool_calls.append({"id": tc.id, "type": "function", "function": {"name": tc.name, "arguments": _dumps(tc.arguments)}})
                elif kind == "tool_result":
                    out.append({"role": "tool", "tool_call_id": part.tool_result.tool_call_id, "content": part.tool_result.content})
            if role == "tool":
                if texts:  # stray text in a tool message: keep it as user-visible context
                    out.append({"role": "user", "content": "".join(texts)})
                continue
            if role in ("system", "assistant"):
                entry: dict[str, Any] = {"role": role, "content": "".join(texts) if texts else None}
                if tool_calls:
                    entry["tool_calls"] = tool_calls
                if entry["content"] is None and role == "system":
                    entry["content"] = ""
                out.append(entry)
            else:
                if not parts:
                    continue
                only_text = all(p["type"] == "text" for p in parts)
                out.append({"role": "user", "content": "".join(texts) if only_text else parts})
        return out

    def build_body(self, call: ProviderCall, *, stream: bool) -> dict[str, Any]:
        req = call.request
        body: dict[str, Any] = {"model": call.model.provider_model, "messages": self._messages(call)}
        if call.tools:
            body["tools"] = [
                {"type": "function", "function": {"name": t["name"], "description": t.get("description", ""), "parameters": t.get("parameters") or {"type": "object", "properties": {}}}}
                for t in call.tools
            ]
        choice = req.tool_choice
        if choice is not None:
            body["tool_choice"] = choice if isinstance(choice, str) else {"type": "function", "function": {"name": choice.name}}
        schema = call.response_schema
        if schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": call.extra.get("schema_name", "response"), "schema": schema, "strict": bool(call.extra.get("strict_schema", False))},
            }
        if req.max_tokens is not None:
            body[self.max_tokens_field] = req.max_tokens
        for name in ("temperature", "top_p", "seed"):
            value = getattr(req, name)
            if value is not None:
                body[name] = value
        if req.stop:
            body["stop"] = req.stop
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    def headers(self) -> dict[str, str]:
        key = resolve_credential(self.provider.id, self.provider.credential)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        org = self.provider.options.get("organization")
        if org:
            headers["OpenAI-Organization"] = org
        return headers

    def _url(self) -> str:
        return self.http.url(self.provider.base_url or "https://api.openai.com/v1", "/chat/completions")

    def _timeout(self, call: ProviderCall) -> httpx.Timeout:
        first = max(0.001, call.deadline.first_token_remaining())
        return httpx.Timeout(first, connect=min(first, 10.0))

    # ------------------------------------------------------------ response translation

    def raise_for_error(self, resp: httpx.Response) -> None:
        if resp.status_code < 400:
            return
        try:
            resp.read()
            err = resp.json().get("error") or {}
            message = err.get("message") if isinstance(err, dict) else str(err)
            kind = err.get("type") if isinstance(err, dict) else None
            code = err.get("code") if isinstance(err, dict) else None
        except (ValueError, AttributeError):
            message, kind, code = resp.text[:500], None, None
        if code == "context_length_exceeded":
            message = f"context length exceeded: {message}"
        raise provider_status_error(self.provider.id, resp.status_code, message or resp.reason_phrase, resp.headers,
                                    kind="rate_limit" if kind == "rate_limit_exceeded" else None)

    @staticmethod
    def usage_from(raw: dict[str, Any] | None) -> TokenUsage:
        if not raw:
            return TokenUsage()
        prompt_details = raw.get("prompt_tokens_details") or {}
        completion_details = raw.get("completion_tokens_details") or {}
        return TokenUsage(
            input_tokens=raw.get("prompt_tokens", 0) or 0,
            output_tokens=raw.get("completion_tokens", 0) or 0,
            cached_input_tokens=prompt_details.get("cached_tokens", 0) or 0,
            reasoning_tokens=completion_details.get("reasoning_tokens", 0) or 0,
        )

    def parse_result(self, data: dict[str, Any]) -> ChatResult:
        choices = data.get("choices") or []
        if not choices:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no choices.", provider=self.provider.id)
        choice = choices[0]
        message = choice.get("message") or {}
        content: list[dict[str, Any]] = []
        text = message.get("content")
        if isinstance(text, str) and text:
            content.append({"type": "text", "text": text})
        refusal = message.get("refusal")
        if refusal:
            content.append({"type": "text", "text": refusal})
        tool_calls = []
        for tc in message.get("tool_calls") or []:
            fn = tc.get("function") or {}
            tool_calls.append({"id": tc.get("id", ""), "name": fn.get("name", ""), "arguments": self._arguments(fn.get("arguments"))})
        finish = FINISH.get(choice.get("finish_reason") or "stop", "stop")
        if refusal and finish == "stop":
            finish = "content_filter"
        return ChatResult(content=content, tool_calls=tool_calls, finish_reason=finish,
                          usage=self.usage_from(data.get("usage")), provider_response_id=data.get("id"))

    def _arguments(self, raw: Any) -> dict[str, Any]:
        if isinstance(raw, dict):
            return raw
        if not raw:
            return {}
        try:
            value = json.loads(raw)
        except ValueError:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned tool arguments that are not JSON.",
                               provider=self.provider.id) from None
        return value if isinstance(value, dict) else {"value": value}

    # ------------------------------------------------------------ calls

    def chat(self, call: ProviderCall) -> ChatResult:
        body = self.build_body(call, stream=False)
        timeout = httpx.Timeout(max(0.001, call.deadline.remaining()), connect=min(10.0, max(0.001, call.deadline.remaining())))
        resp = self.http.request(self.provider.id, "POST", self._url(), json=body, headers=self.headers(), timeout=timeout)
        self.raise_for_error(resp)
        try:
            data = resp.json()
        except ValueError:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned a body that is not JSON.", provider=self.provider.id) from None
        return self.parse_result(data)

    def stream(self, call: ProviderCall) -> Iterator[StreamDelta]:
        body = self.build_body(call, stream=True)
        with self.http.stream(self.provider.id, "POST", self._url(), json=body, headers=self.headers(), timeout=self._timeout(call)) as resp:
            self.raise_for_error(resp)
            yield from self.parse_stream(resp.iter_lines())

    def parse_stream(self, lines: Any) -> Iterator[StreamDelta]:
        finish: str | None = None
        usage: TokenUsage | None = None
        done = False
        for event in iter_sse(lines):
            if event.data == "[DONE]":
                done = True
                break
            try:
                data = json.loads(event.data)
            except ValueError:
                raise GatewayError("provider_error", f"Provider '{self.provider.id}' sent a malformed stream chunk.", provider=self.provider.id) from None
            if "error" in data and not data.get("choices"):
                err = data["error"] if isinstance(data["error"], dict) else {"message": str(data["error"])}
                raise GatewayError("provider_error", f"Provider '{self.provider.id}' failed mid-stream: {err.get('message', '')}", provider=self.provider.id)
            if data.get("usage"):
                usage = self.usage_from(data["usage"])
            for choice in data.get("choices") or ():
                delta = choice.get("delta") or {}
                text = delta.get("content")
                tcs = delta.get("tool_calls")
                if text or tcs:
                    out_tcs = None
                    if tcs:
                        out_tcs = []
                        for tc in tcs:
                            item: dict[str, Any] = {"index": tc.get("index", 0)}
                            if tc.get("id"):
                                item["id"] = tc["id"]
                            fn = tc.get("function") or {}
                            f: dict[str, str] = {}
                            if fn.get("name"):
                                f["name"] = fn["name"]
                            if fn.get("arguments") is not None:
                                f["arguments"] = fn["arguments"]
                            if f:
                                item["function"] = f
                            out_tcs.append(item)
                    yield StreamDelta(text=text or None, tool_calls=out_tcs)
                if choice.get("finish_reason"):
                    finish = FINISH.get(choice["finish_reason"], "stop")
        if not done and finish is None:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' ended the stream before it was complete.", provider=self.provider.id)
        yield StreamDelta(finish_reason=finish or "stop", usage=usage or TokenUsage())
