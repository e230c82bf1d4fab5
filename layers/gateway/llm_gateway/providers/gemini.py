"""Google Gemini API adapter (`POST {base_url}/models/{model}:generateContent`, and
`:streamGenerateContent?alt=sse` for streams), API key in the `x-goog-api-key` header.

Request mapping
- system messages -> `systemInstruction.parts[]`; user -> role `user`, assistant -> role `model`;
  consecutive turns of the same role are merged into one `contents[]` entry.
- text -> `{"text"}`; media -> `inlineData` (mimeType + base64, from the bytes the pipeline put in
  `call.extra["media"][url]` or a `data:` URL) or `fileData` (fileUri + mimeType, for `gs://`,
  Gemini Files API URIs, and YouTube URLs on video parts). Any other URL without inline bytes is
  `capability_not_supported` before any call. Fetched media too large to go inline (over the
  model's `inline_media_max_bytes` per call, default 14 MB) is uploaded with the Files API first
  and sent as `fileData` (`gemini_files.py`: options, wire format, processing wait, deletion).
- assistant `tool_call` parts -> `functionCall` parts (role `model`); `tool_result` parts ->
  `functionResponse` parts (role `user`). Gemini matches results to calls by function *name*,
  so the adapter maps `tool_call_id` -> name from the history; an unknown id is a
  `validation_error`. A result whose content is a JSON object is sent as that object, any other
  string as `{"result": <content>}`.
- Gemini's `thoughtSignature` on a `functionCall` part (mandatory to echo back on Gemini 3) is
  carried inside the tool call id (`<id>~sig~<signature>`), so the gateway stays stateless.
- tools -> one `functionDeclarations` tool; `tool_choice` -> `toolConfig.functionCallingConfig`
  (`auto`->AUTO, `none`->NONE, `required`->ANY, a named tool -> ANY + `allowedFunctionNames`).
- `response_schema` -> `generationConfig.responseMimeType: application/json` + `responseSchema`.
- JSON Schemas (tool parameters and `response_schema`) are converted to Gemini's OpenAPI 3.0
  subset by `to_gemini_schema` (rules in its docstring); what the subset cannot express is a
  `validation_error` naming the schema path, never a provider 400. A model whose catalog entry
  sets `"options": {"schema_mode": "json_schema"}` (Gemini 2.5+) gets the JSON Schema unchanged
  in `responseJsonSchema` / `parametersJsonSchema` instead.
- `max_tokens`, `temperature`, `top_p`, `stop` (at most 5), `seed` -> `generationConfig`.

Response mapping
- `candidates[0].content.parts`: text parts joined (parts with `thought: true` skipped);
  `functionCall` parts -> tool calls (arguments as objects; id = Gemini's `id` when it sends
  one, else a deterministic `call_<hash>`).
- `finishReason`: STOP -> stop (tool_calls when the answer has function calls), MAX_TOKENS ->
  length, SAFETY / RECITATION / BLOCKLIST / PROHIBITED_CONTENT / SPII / IMAGE_SAFETY ->
  content_filter; `promptFeedback.blockReason` (no candidates) -> content_filter.
  MALFORMED_FUNCTION_CALL / UNEXPECTED_TOOL_CALL / TOO_MANY_TOOL_CALLS are `provider_error`s.
- `usageMetadata`: input = promptTokenCount (which already includes cached content) +
  toolUsePromptTokenCount; cached_input = cachedContentTokenCount; output = candidatesTokenCount
  + thoughtsTokenCount (thinking is billed as output); reasoning = thoughtsTokenCount.
- errors `{"error": {"code", "message", "status", "details"}}`: RESOURCE_EXHAUSTED ->
  rate_limited (Retry-After from the header or `google.rpc.RetryInfo.retryDelay`),
  UNAUTHENTICATED / PERMISSION_DENIED / API_KEY_INVALID -> provider_error naming the
  credentials, INVALID_ARGUMENT about the token limit -> validation_error, INTERNAL /
  UNAVAILABLE -> provider_error, DEADLINE_EXCEEDED -> provider_timeout.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

import httpx

from llm_gateway.api.errors import GatewayError
from llm_gateway.outbound.client import provider_status_error
from llm_gateway.outbound.credentials import resolve_credential
from llm_gateway.providers.base import ChatResult, ProviderAdapter, ProviderCall, StreamDelta, TokenUsage
from llm_gateway.providers.gemini_files import GeminiFiles, Media, fetched_media, to_upload
from llm_gateway.providers.sse import iter_sse

DEFAULT_BASE_URL = "https://generativelanguage.googleapis.com/v1beta"
MAX_STOP_SEQUENCES = 5
SIGNATURE_MARK = "~sig~"

FILTERED = frozenset({"SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
                      "IMAGE_PROHIBITED_CONTENT", "IMAGE_RECITATION"})
FAILED = frozenset({"MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "TOO_MANY_TOOL_CALLS"})
TOOL_CHOICE_MODE = {"auto": "AUTO", "none": "NONE", "required": "ANY"}

_CONTEXT_LIMIT = re.compile(r"input token count.*exceeds|exceeds the maximum number of tokens|too many tokens|context window", re.I | re.S)
_GEMINI_FILE = re.compile(r"^https://generativelanguage\.googleapis\.com/[^/]+/files/[^/?#]+")
_YOUTUBE = re.compile(r"^https://(www\.)?(youtube\.com/watch\?|youtu\.be/)")
_DEFAULT_MIME = {"document": "application/pdf"}


def _media_error(provider_id: str, detail: str) -> GatewayError:
    return GatewayError("capability_not_supported", detail, provider=provider_id)


def _invalid(path: str, message: str) -> GatewayError:
    return GatewayError("validation_error", f"{path}: {message}", errors=[{"path": path, "message": message}])


# ---------------------------------------------------------------- JSON Schema -> Gemini Schema

_TYPES = {"string": "STRING", "number": "NUMBER", "integer": "INTEGER", "boolean": "BOOLEAN",
          "array": "ARRAY", "object": "OBJECT", "null": "NULL"}
_FORMATS = {"STRING": frozenset({"date-time", "enum"}), "NUMBER": frozenset({"float", "double"}),
            "INTEGER": frozenset({"int32", "int64"})}
_COPIED = ("title", "description", "pattern", "minLength", "maxLength", "minItems", "maxItems",
           "minProperties", "maxProperties", "minimum", "maximum", "default", "example", "propertyOrdering")
_REJECTED = {
    "$ref": "must be resolved before the request reaches the provider (inline the referenced schema)",
    "$dynamicRef": "must be resolved before the request reaches the provider",
    "not": "'not' has no equivalent in Gemini's schema subset",
    "if": "conditional schemas (if/then/else) have no equivalent in Gemini's schema subset",
    "then": "conditional schemas (if/then/else) have no equivalent in Gemini's schema subset",
    "else": "conditional schemas (if/then/else) have no equivalent in Gemini's schema subset",
    "patternProperties": "'patternProperties' has no equivalent in Gemini's schema subset",
    "propertyNames": "'propertyNames' has no equivalent in Gemini's schema subset",
    "dependentSchemas": "'dependentSchemas' has no equivalent in Gemini's schema subset",
    "dependentRequired": "'dependentRequired' has no equivalent in Gemini's schema subset",
    "dependencies": "'dependencies' has no equivalent in Gemini's schema subset",
    "prefixItems": "tuple arrays ('prefixItems') have no equivalent in Gemini's schema subset",
    "additionalItems": "tuple arrays ('additionalItems') have no equivalent in Gemini's schema subset",
    "contains": "'contains' has no equivalent in Gemini's schema subset",
}
_MAX_DEPTH = 48


def to_gemini_schema(schema: Any, path: str = "$") -> dict[str, Any]:
    """Convert a JSON Schema to Gemini's `Schema` (a subset of the OpenAPI 3.0 schema object).

    - `type` -> upper case (`STRING`, `NUMBER`, `INTEGER`, `BOOLEAN`, `ARRAY`, `OBJECT`, `NULL`);
      `type: [T, "null"]` -> `T` + `nullable: true`; several non-null types -> `anyOf`; a missing
      type is inferred from `properties` (OBJECT), `items` (ARRAY) or a string `enum` (STRING).
    - `anyOf` is kept, `oneOf` becomes `anyOf` (Gemini has no exclusive union), a `{"type":
      "null"}` member becomes `nullable: true`; `allOf` is merged into one schema (conflicting
      members are an error).
    - `const` -> a one-value `enum`; enum values must be strings (`null` -> `nullable`).
    - kept: properties, required, items, title, description, pattern, min/maxLength,
      min/maxItems, min/maxProperties, minimum, maximum, default, example, propertyOrdering;
      `examples[0]` -> example; `exclusiveMinimum`/`exclusiveMaximum` -> minimum/maximum (+1/-1
      for integers); `format` only where Gemini accepts it (date-time/enum, float/double,
      int32/int64); objects get `propertyOrdering` in the schema's own key order.
    - dropped (annotations, or constraints the subset cannot enforce and the gateway's own
      validation still can): `$schema`, `$id`, `$defs`, `definitions`, `$comment`,
      `additionalProperties`, `unevaluatedProperties`, `uniqueItems`, `multipleOf`, other formats,
      `readOnly`/`writeOnly`/`deprecated`, `content*`, unknown keywords.
    - rejected with `validation_error` (the subset cannot express them): `$ref`, `not`,
      if/then/else, `patternProperties`, `propertyNames`, `dependent*`, tuple arrays, `contains`,
      non-string enum values, and schemas that accept any value (`{}` / `true`).
    """
    return _convert(schema, path, 0)


def _merge_all_of(schema: dict[str, Any], path: str) -> dict[str, Any]:
    merged = {k: v for k, v in schema.items() if k != "allOf"}
    members = schema["allOf"]
    if not isinstance(members, list):
        raise _invalid(f"{path}.allOf", "must be a list of schemas")
    for i, sub in enumerate(members):
        if not isinstance(sub, dict):
            raise _invalid(f"{path}.allOf[{i}]", "must be a schema object")
        if "allOf" in sub:
            sub = _merge_all_of(sub, f"{path}.allOf[{i}]")
        for key, value in sub.items():
            if key == "properties" and isinstance(value, dict):
                props = merged.setdefault("properties", {})
                for name, prop in value.items():
                    if name in props and props[name] != prop:
                        raise _invalid(f"{path}.allOf[{i}].properties.{name}", "conflicts with another allOf member (cannot be merged for Gemini)")
                    props[name] = prop
            elif key == "required" and isinstance(value, list):
                req = merged.setdefault("required", [])
                req.extend(n for n in value if n not in req)
            elif key in merged and merged[key] != value:
                if key in ("title", "description"):
                    continue
                raise _invalid(f"{path}.allOf[{i}].{key}", "conflicts with another allOf member (cannot be merged for Gemini)")
            else:
                merged[key] = value
    return merged


def _is_null_schema(s: Any) -> bool:
    return isinstance(s, dict) and s.get("type") == "null" and all(k in ("type", "description", "title") for k in s)


def _convert(s: Any, path: str, depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        raise _invalid(path, "schema is nested too deeply")
    if s is True or (isinstance(s, dict) and not s):
        raise _invalid(path, "a schema that accepts any value cannot be expressed in Gemini's schema subset (give it a type)")
    if not isinstance(s, dict):
        raise _invalid(path, "must be a schema object")
    if "allOf" in s:
        s = _merge_all_of(s, path)
    for key in s:
        reason = _REJECTED.get(key)
        if reason is not None:
            raise _invalid(f"{path}.{key}", reason)

    out: dict[str, Any] = {}
    nullable = s.get("nullable") is True
    typ = s.get("type")

    if isinstance(typ, list):
        names = [t for t in typ if t != "null"]
        nullable = nullable or len(names) < len(typ)
        if not names:
            typ = "null"
        elif len(names) == 1:
            typ = names[0]
        else:
            rest = {k: v for k, v in s.items() if k not in ("type", "title", "description", "nullable")}
            out["anyOf"] = [_convert({**rest, "type": t}, f"{path}.type[{i}]", depth + 1) for i, t in enumerate(names)]
            for key in ("title", "description"):
                if key in s:
                    out[key] = s[key]
            if nullable:
                out["nullable"] = True
            return out

    union_key = "anyOf" if "anyOf" in s else ("oneOf" if "oneOf" in s else None)
    if union_key and "anyOf" in s and "oneOf" in s:
        raise _invalid(f"{path}.oneOf", "a schema with both anyOf and oneOf cannot be expressed in Gemini's schema subset")
    if union_key:
        variants = s[union_key]
        if not isinstance(variants, list) or not variants:
            raise _invalid(f"{path}.{union_key}", "must be a non-empty list of schemas")
        kept = [(i, v) for i, v in enumerate(variants) if not _is_null_schema(v)]
        nullable = nullable or len(kept) < len(variants)
        converted = [_convert(v, f"{path}.{union_key}[{i}]", depth + 1) for i, v in kept]
        if len(converted) == 1 and typ is None and not any(k in s for k in ("properties", "items", "enum", "const")):
            out.update(converted[0])
        elif converted:
            out["anyOf"] = converted
        elif typ is None:
            typ = "null"

    enum = [s["const"]] if "const" in s else s.get("enum")
    if enum is not None:
        if not isinstance(enum, list) or not enum:
            raise _invalid(f"{path}.enum", "must be a non-empty list")
        if None in enum:
            nullable = True
            enum = [v for v in enum if v is not None]
        if any(not isinstance(v, str) for v in enum):
            raise _invalid(f"{path}.{'const' if 'const' in s else 'enum'}", "Gemini's schema subset only takes string enum values")
        if typ is None:
            typ = "string"
        elif typ != "string":
            raise _invalid(f"{path}.enum", f"Gemini's schema subset only takes enums of type string, not {typ}")

    if typ is None and "anyOf" not in out and "type" not in out:
        if "properties" in s:
            typ = "object"
        elif "items" in s:
            typ = "array"
        else:
            raise _invalid(path, "a schema without a type cannot be expressed in Gemini's schema subset")
    if typ is not None:
        gtype = _TYPES.get(typ) if isinstance(typ, str) else None
        if gtype is None:
            raise _invalid(f"{path}.type", f"unknown type {typ!r}")
        out["type"] = gtype
    if enum is not None:
        out["enum"] = enum

    for key in _COPIED:
        if key in s:
            out[key] = s[key]
    if "example" not in out and isinstance(s.get("examples"), list) and s["examples"]:
        out["example"] = s["examples"][0]
    for key, bound, step in (("exclusiveMinimum", "minimum", 1), ("exclusiveMaximum", "maximum", -1)):
        value = s.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[bound] = value + step if typ == "integer" and float(value).is_integer() else value
    fmt = s.get("format")
    if isinstance(fmt, str) and fmt in _FORMATS.get(out.get("type", ""), ()):
        out["format"] = fmt

    props = s.get("properties")
    if props is not None:
        if not isinstance(props, dict):
            raise _invalid(f"{path}.properties", "must be an object")
        out["properties"] = {name: _convert(sub, f"{path}.properties.{name}", depth + 1) for name, sub in props.items()}
        if len(props) > 1 and "propertyOrdering" not in out:
            out["propertyOrdering"] = list(props)
    required = s.get("required")
    if isinstance(required, list) and required:
        out["required"] = [n for n in required if isinstance(n, str)]
    if "items" in s:
        items = s["items"]
        if isinstance(items, list):
            raise _invalid(f"{path}.items", "tuple arrays (a list of item schemas) have no equivalent in Gemini's schema subset")
        out["items"] = _convert(items, f"{path}.items", depth + 1)
    if nullable:
        out["nullable"] = True
    return out


# ---------------------------------------------------------------- helpers


def split_tool_call_id(tool_call_id: str) -> tuple[str, str | None]:
    """`(id, thoughtSignature)` from a gateway tool call id."""
    base, mark, signature = tool_call_id.partition(SIGNATURE_MARK)
    return (base, signature) if mark and signature else (tool_call_id, None)


def _tool_response(content: str) -> dict[str, Any]:
    if content[:1] == "{":
        try:
            value = json.loads(content)
        except ValueError:
            value = None
        if isinstance(value, dict):
            return value
    return {"result": content}


def _retry_delay(details: Any) -> float | None:
    """Seconds from a `google.rpc.RetryInfo` detail (`"retryDelay": "37s"` / `"1.5s"`)."""
    if not isinstance(details, list):
        return None
    for d in details:
        if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.RetryInfo"):
            raw = str(d.get("retryDelay", "")).strip().removesuffix("s")
            try:
                return max(0.0, float(raw))
            except ValueError:
                return None
    return None


def _error_reason(details: Any) -> str | None:
    if isinstance(details, list):
        for d in details:
            if isinstance(d, dict) and str(d.get("@type", "")).endswith("google.rpc.ErrorInfo"):
                return d.get("reason")
    return None


def usage_from(raw: dict[str, Any] | None) -> TokenUsage:
    """Gemini `usageMetadata` -> normalized usage (thinking counted as output, as it is billed)."""
    if not raw:
        return TokenUsage()
    thoughts = raw.get("thoughtsTokenCount") or 0
    return TokenUsage(
        input_tokens=(raw.get("promptTokenCount") or 0) + (raw.get("toolUsePromptTokenCount") or 0),
        output_tokens=(raw.get("candidatesTokenCount") or 0) + thoughts,
        cached_input_tokens=raw.get("cachedContentTokenCount") or 0,
        reasoning_tokens=thoughts,
    )


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class GeminiAdapter(ProviderAdapter):
    kind = "gemini"
    accepted_parts = frozenset({"text", "image", "audio", "video", "document", "tool_call", "tool_result"})

    # ------------------------------------------------------------ request translation

    def check(self, call: ProviderCall) -> None:
        super().check(call)
        for mi, message in enumerate(call.request.messages):
            for pi, part in enumerate(message.content):
                if part.type in ("image", "audio", "video", "document"):
                    self._media_part(part, call, f"messages[{mi}].content[{pi}]")

    def _media_part(self, part: Any, call: ProviderCall, path: str, files: dict[str, Any] | None = None) -> dict[str, Any]:
        url: str = part.url
        uploaded = files.get(url) if files else None
        if uploaded is not None:  # too large to go inline: uploaded with the Files API (gemini_files.py)
            return {"fileData": {"mimeType": uploaded.mime_type, "fileUri": uploaded.uri}}
        supplied = (call.extra.get("media") or {}).get(url)
        if isinstance(supplied, dict) and supplied.get("data"):
            mime = supplied.get("media_type") or self._guess_mime(part, path)
            return {"inlineData": {"mimeType": mime, "data": supplied["data"]}}
        data_url = supplied if isinstance(supplied, str) and supplied.startswith("data:") else url
        if data_url.startswith("data:"):
            header, sep, payload = data_url[5:].partition(",")
            if not sep:
                raise _invalid(f"{path}.url", "malformed data: URL")
            mime, _, enc = header.partition(";")
            data = payload if enc.endswith("base64") else base64.b64encode(unquote_to_bytes(payload)).decode()
            return {"inlineData": {"mimeType": mime or self._guess_mime(part, path), "data": data}}
        if url.startswith("gs://") or _GEMINI_FILE.match(url) or (part.type == "video" and _YOUTUBE.match(url)):
            file_data: dict[str, Any] = {"fileUri": url}
            mime = supplied.get("media_type") if isinstance(supplied, dict) else None
            mime = mime or self._guess_mime(part, path, required=False)
            if mime:
                file_data["mimeType"] = mime
            return {"fileData": file_data}
        raise _media_error(
            self.provider.id,
            f"Provider '{self.provider.id}' (gemini) takes {part.type} parts as inline bytes, gs:// or Gemini Files API URIs; "
            f"'{url.split('?', 1)[0][:120]}' was not fetched by the gateway, so it cannot be sent.",
        )

    def _guess_mime(self, part: Any, path: str, required: bool = True) -> str | None:
        import mimetypes

        mime = mimetypes.guess_type(part.url.split("?", 1)[0])[0] or _DEFAULT_MIME.get(part.type)
        if mime is None and required:
            raise _invalid(f"{path}.url", f"the media type of this {part.type} could not be determined (Gemini needs it)")
        return mime

    def _contents(self, call: ProviderCall, files: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        contents: list[dict[str, Any]] = []
        system: list[dict[str, Any]] = []
        names: dict[str, str] = {}
        for mi, message in enumerate(call.request.messages):
            if message.role == "system":
                for pi, part in enumerate(message.content):
                    if part.type != "text":
                        raise _invalid(f"messages[{mi}].content[{pi}]", "system messages may only hold text for Gemini (systemInstruction)")
                    system.append({"text": part.text})
                continue
            default_role = "model" if message.role == "assistant" else "user"
            for pi, part in enumerate(message.content):
                kind = part.type
                role = default_role
                if kind == "text":
                    gpart: dict[str, Any] = {"text": part.text}
                elif kind == "tool_call":
                    tc = part.tool_call
                    names[tc.id] = tc.name
                    gpart = {"functionCall": {"name": tc.name, "args": tc.arguments}}
                    _, signature = split_tool_call_id(tc.id)
                    if signature:
                        gpart["thoughtSignature"] = signature
                    role = "model"
                elif kind == "tool_result":
                    tr = part.tool_result
                    name = names.get(tr.tool_call_id)
                    if name is None:
                        raise _invalid(f"messages[{mi}].content[{pi}].tool_result.tool_call_id",
                                       f"'{tr.tool_call_id[:80]}' matches no earlier tool_call in the conversation (Gemini pairs results with calls by function name)")
                    gpart = {"functionResponse": {"name": name, "response": _tool_response(tr.content)}}
                    role = "user"
                else:
                    gpart = self._media_part(part, call, f"messages[{mi}].content[{pi}]", files)
                if contents and contents[-1]["role"] == role:
                    contents[-1]["parts"].append(gpart)
                else:
                    contents.append({"role": role, "parts": [gpart]})
        if not contents:
            raise _invalid("messages", "Gemini needs at least one user or assistant message besides the system prompt")
        return contents, system

    def _native_schema(self, call: ProviderCall) -> bool:
        return call.model.options.get("schema_mode") == "json_schema"

    def build_body(self, call: ProviderCall, files: dict[str, Any] | None = None) -> dict[str, Any]:
        """The `generateContent` body; `files` maps media URLs to their Files API uploads."""
        req = call.request
        contents, system = self._contents(call, files)
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": system}
        native = self._native_schema(call)
        if call.tools:
            decls = []
            for i, tool in enumerate(call.tools):
                decl: dict[str, Any] = {"name": tool["name"]}
                if tool.get("description"):
                    decl["description"] = tool["description"]
                params = tool.get("parameters")
                if params:
                    if native:
                        decl["parametersJsonSchema"] = params
                    else:
                        converted = to_gemini_schema(params, f"tools[{i}].parameters")
                        if converted.get("type") != "OBJECT":
                            raise _invalid(f"tools[{i}].parameters", "tool parameters must be an object schema")
                        if converted.get("properties"):
                            decl["parameters"] = converted
                decls.append(decl)
            body["tools"] = [{"functionDeclarations": decls}]
            choice = req.tool_choice
            if choice is not None:
                if isinstance(choice, str):
                    fcc: dict[str, Any] = {"mode": TOOL_CHOICE_MODE[choice]}
                else:
                    if not any(t["name"] == choice.name for t in call.tools):
                        raise _invalid("tool_choice.name", f"'{choice.name[:80]}' is not one of the request's tools")
                    fcc = {"mode": "ANY", "allowedFunctionNames": [choice.name]}
                body["toolConfig"] = {"functionCallingConfig": fcc}
        gen: dict[str, Any] = {}
        if req.max_tokens is not None:
            gen["maxOutputTokens"] = req.max_tokens
        if req.temperature is not None:
            gen["temperature"] = req.temperature
        if req.top_p is not None:
            gen["topP"] = req.top_p
        if req.seed is not None:
            gen["seed"] = req.seed
        if req.stop:
            if len(req.stop) > MAX_STOP_SEQUENCES:
                raise _invalid("stop", f"Gemini takes at most {MAX_STOP_SEQUENCES} stop sequences")
            gen["stopSequences"] = list(req.stop)
        schema = call.response_schema
        if schema is not None:
            if call.tools and not call.model.options.get("tools_with_structured_output"):
                raise GatewayError(
                    "capability_not_supported",
                    f"Model '{call.model.id}' cannot combine tools with response_schema (Gemini's function calling does not "
                    "take a JSON response type); send one or the other.",
                    provider=self.provider.id,
                )
            gen["responseMimeType"] = "application/json"
            if native:
                gen["responseJsonSchema"] = {k: v for k, v in schema.items() if k not in ("$schema", "$id")}
            else:
                gen["responseSchema"] = to_gemini_schema(schema, "response_schema.json_schema")
        if gen:
            body["generationConfig"] = gen
        return body

    def headers(self) -> dict[str, str]:
        key = resolve_credential(self.provider.id, self.provider.credential)
        headers = {"Content-Type": "application/json"}
        if key:
            headers["x-goog-api-key"] = key
        return headers

    def _url(self, call: ProviderCall, *, stream: bool) -> str:
        model = call.model.provider_model
        if not model.startswith(("models/", "tunedModels/")):
            model = "models/" + model
        method = ":streamGenerateContent?alt=sse" if stream else ":generateContent"
        return self.http.url(self.provider.base_url or DEFAULT_BASE_URL, f"/{model}{method}")

    # ------------------------------------------------------------ response translation

    def error_from(self, status: int, text: str, headers: httpx.Headers | None) -> GatewayError:
        err: dict[str, Any] = {}
        try:
            data = json.loads(text)
            if isinstance(data, list) and data:
                data = data[0]
            if isinstance(data, dict) and isinstance(data.get("error"), dict):
                err = data["error"]
        except ValueError:
            pass
        return self._error(status, err, headers, fallback=text[:500])

    def _error(self, status: int, err: dict[str, Any], headers: httpx.Headers | None, fallback: str = "") -> GatewayError:
        message = str(err.get("message") or fallback or "no message")
        gstatus = str(err.get("status") or "")
        details = err.get("details")
        reason = _error_reason(details)
        kind = None
        if gstatus == "RESOURCE_EXHAUSTED" or status == 429:
            kind, status = "rate_limit", 429
        elif gstatus == "UNAUTHENTICATED" or reason in ("API_KEY_INVALID", "API_KEY_EXPIRED"):
            status = 401
        elif gstatus == "PERMISSION_DENIED":
            status = 403
        elif gstatus == "DEADLINE_EXCEEDED":
            status = 504
        elif status < 400:  # an error event inside a 200 stream
            code = err.get("code")
            status = code if isinstance(code, int) and code >= 400 else {"INVALID_ARGUMENT": 400, "UNAVAILABLE": 503, "INTERNAL": 500}.get(gstatus, 502)
        if status == 400 and _CONTEXT_LIMIT.search(message):
            message = f"context length exceeded: {message}"
        hdrs = httpx.Headers(headers or {})
        if "retry-after" not in hdrs:
            delay = _retry_delay(details)
            if delay is not None:
                hdrs["retry-after"] = str(delay)
        label = f"{gstatus}: {message}" if gstatus else message
        return provider_status_error(self.provider.id, status, label, hdrs, kind=kind)

    def _tool_call(self, fc: dict[str, Any], signature: str | None, index: int, call: ProviderCall) -> dict[str, Any]:
        name = fc.get("name") or ""
        base = fc.get("id")
        if not base:
            base = "call_" + hashlib.sha256(f"{call.request_id}:{index}:{name}".encode()).hexdigest()[:24]
        args = fc.get("args")
        if not isinstance(args, dict):
            args = {} if args is None else {"value": args}
        return {"id": f"{base}{SIGNATURE_MARK}{signature}" if signature else base, "name": name, "arguments": args}

    def _finish(self, reason: str | None, has_tools: bool, message: str | None = None) -> str:
        if reason in FAILED:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' ended the answer with {reason}"
                               + (f": {message}" if message else "."), provider=self.provider.id)
        if reason == "MAX_TOKENS":
            return "length"
        if reason in FILTERED or reason == "BLOCKED":
            return "content_filter"
        return "tool_calls" if has_tools else "stop"

    def parse_result(self, data: dict[str, Any], call: ProviderCall) -> ChatResult:
        usage = usage_from(data.get("usageMetadata"))
        candidates = data.get("candidates") or []
        if not candidates:
            if (data.get("promptFeedback") or {}).get("blockReason"):
                return ChatResult(content=[], tool_calls=[], finish_reason="content_filter", usage=usage,
                                  provider_response_id=data.get("responseId"))
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no candidates.", provider=self.provider.id)
        cand = candidates[0]
        texts: list[str] = []
        tool_calls: list[dict[str, Any]] = []
        for part in (cand.get("content") or {}).get("parts") or ():
            if part.get("thought"):
                continue
            if "text" in part:
                texts.append(part["text"])
            elif "functionCall" in part:
                tool_calls.append(self._tool_call(part["functionCall"], part.get("thoughtSignature"), len(tool_calls), call))
        finish = self._finish(cand.get("finishReason"), bool(tool_calls), cand.get("finishMessage"))
        text = "".join(texts)
        return ChatResult(content=[{"type": "text", "text": text}] if text else [], tool_calls=tool_calls,
                          finish_reason=finish, usage=usage, provider_response_id=data.get("responseId"))

    def parse_stream(self, lines: Iterable[str], call: ProviderCall) -> Iterator[StreamDelta]:
        """Each SSE `data:` line is a whole GenerateContentResponse; usageMetadata is cumulative,
        so the last one seen is the exact total."""
        finish: str | None = None
        finish_message: str | None = None
        usage_raw: dict[str, Any] | None = None
        n_tools = 0
        loads = json.loads
        for event in iter_sse(lines):
            try:
                data = loads(event.data)
            except ValueError:
                raise GatewayError("provider_error", f"Provider '{self.provider.id}' sent a malformed stream chunk.", provider=self.provider.id) from None
            if isinstance(data, list):  # tolerate array framing
                data = data[0] if data else {}
            err = data.get("error")
            if err is not None:
                raise self._error(0, err if isinstance(err, dict) else {"message": str(err)}, None)
            um = data.get("usageMetadata")
            if um:
                usage_raw = um
            candidates = data.get("candidates")
            if not candidates:
                if (data.get("promptFeedback") or {}).get("blockReason"):
                    finish = "BLOCKED"
                continue
            cand = candidates[0]
            content = cand.get("content")
            if content:
                text: str | None = None
                tcs: list[dict[str, Any]] | None = None
                for part in content.get("parts") or ():
                    if part.get("thought"):
                        continue
                    if "text" in part:
                        text = part["text"] if text is None else text + part["text"]
                    elif "functionCall" in part:
                        tc = self._tool_call(part["functionCall"], part.get("thoughtSignature"), n_tools, call)
                        item = {"index": n_tools, "id": tc["id"], "function": {"name": tc["name"], "arguments": _dumps(tc["arguments"])}}
                        n_tools += 1
                        if tcs is None:
                            tcs = [item]
                        else:
                            tcs.append(item)
                if text or tcs:
                    yield StreamDelta(text=text or None, tool_calls=tcs)
            reason = cand.get("finishReason")
            if reason:
                finish = reason
                finish_message = cand.get("finishMessage")
        if finish is None:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' ended the stream before it was complete.", provider=self.provider.id)
        yield StreamDelta(finish_reason=self._finish(finish, n_tools > 0, finish_message), usage=usage_from(usage_raw))

    # ------------------------------------------------------------ embeddings and media (pipeline/embeddings.py, pipeline/modalities.py)
    # - embeddings: `POST /models/{m}:batchEmbedContents` {requests: [{model, content: {parts: [{text}]},
    #   outputDimensionality?}]} -> {embeddings: [{values}]}; Gemini reports no token count, so input
    #   tokens are estimated (4 characters a token).
    # - images: Imagen models (`imagen-*`, or option `image_api: "predict"`): `POST /models/{m}:predict`
    #   {instances: [{prompt}], parameters: {sampleCount, aspectRatio?, seed?, negativePrompt?}} ->
    #   {predictions: [{bytesBase64Encoded, mimeType}]}; Gemini image models: `:generateContent` with
    #   `generationConfig.responseModalities: ["TEXT", "IMAGE"]` -> `inlineData` image parts (and text).
    # - speech: `:generateContent` with `responseModalities: ["AUDIO"]` and
    #   `speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName` -> `inlineData` raw PCM
    #   (`audio/L16;codec=pcm;rate=24000`), answered as a WAV.
    # - transcription: `:generateContent` with an instruction and the audio as `inlineData`.
    # - video (Veo): `POST /models/{m}:predictLongRunning` {instances: [{prompt}], parameters:
    #   {durationSeconds?, aspectRatio?, resolution?, negativePrompt?, seed?}} -> an operation `name`;
    #   `GET /{name}` until `done`; `response.generateVideoResponse.generatedSamples[0].video.uri` is
    #   downloaded (the API key is sent only to the API's own host).

    def _model_path(self, call_model: Any) -> str:
        model = call_model.provider_model
        return model if model.startswith(("models/", "tunedModels/")) else "models/" + model

    def _post_json(self, path: str, body: dict[str, Any], deadline: Any, cap: float | None = None) -> dict[str, Any]:
        remaining = max(0.001, deadline.remaining()) if deadline is not None else 60.0
        if cap is not None:
            remaining = min(remaining, cap)
        resp = self.http.request(self.provider.id, "POST", self.http.url(self.provider.base_url or DEFAULT_BASE_URL, path), json=body,
                                 headers=self.headers(), timeout=httpx.Timeout(remaining, connect=min(10.0, remaining)))
        return self._json_of(resp)

    def _json_of(self, resp: httpx.Response) -> dict[str, Any]:
        if resp.status_code >= 400:
            raise self.error_from(resp.status_code, resp.text, resp.headers)
        try:
            data = resp.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned an unexpected body.", provider=self.provider.id)
        return data

    def embed(self, call: Any) -> Any:
        from llm_gateway.providers.base import EmbedResult

        name = self._model_path(call.model)
        requests = []
        for text in call.inputs:
            item: dict[str, Any] = {"model": name, "content": {"parts": [{"text": text}]}}
            if call.dimensions:
                item["outputDimensionality"] = call.dimensions
            requests.append(item)
        data = self._post_json(f"/{name}:batchEmbedContents", {"requests": requests}, call.deadline)
        embeddings = data.get("embeddings")
        if not isinstance(embeddings, list) or not all(isinstance(e, dict) and isinstance(e.get("values"), list) for e in embeddings):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no embeddings.", provider=self.provider.id)
        estimated = sum(-(-len(t) // 4) for t in call.inputs)
        return EmbedResult(vectors=[[float(v) for v in e["values"]] for e in embeddings], usage=TokenUsage(input_tokens=estimated))

    def generate_image(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media.generation import data_url, option, prompt_of

        req = call.request
        name = self._model_path(call.model)
        predict = call.model.options.get("image_api", "predict" if call.model.provider_model.startswith("imagen") else "gemini") == "predict"
        if predict:
            params: dict[str, Any] = {"sampleCount": int(option(req, "n", 1))}
            for key, wire in (("aspect_ratio", "aspectRatio"), ("seed", "seed"), ("negative_prompt", "negativePrompt")):
                if option(req, key) is not None:
                    params[wire] = option(req, key)
            data = self._post_json(f"/{name}:predict", {"instances": [{"prompt": prompt_of(req)}], "parameters": params}, call.deadline)
            parts = []
            for pred in data.get("predictions") or ():
                if isinstance(pred, dict) and pred.get("bytesBase64Encoded"):
                    raw = base64.b64decode(pred["bytesBase64Encoded"])
                    parts.append({"type": "image", "url": data_url(pred.get("mimeType") or "image/png", raw)})
            if not parts:
                raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no image (filtered or empty).",
                                   provider=self.provider.id)
            return ChatResult(content=parts, tool_calls=[], finish_reason="stop", usage=TokenUsage(images=len(parts)))
        files = GeminiFiles(self, call)
        try:
            body = self._body_with_uploads(call, files)
            gen = body.setdefault("generationConfig", {})
            gen["responseModalities"] = ["TEXT", "IMAGE"]
            if option(req, "aspect_ratio"):
                gen["imageConfig"] = {"aspectRatio": option(req, "aspect_ratio")}
            data = self._post_json(f"/{name}:generateContent", body, call.deadline)
        finally:
            files.delete()
        content = self._inline_parts(data, call)
        images = sum(1 for p in content if p["type"] == "image")
        if not images:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no image.", provider=self.provider.id)
        usage = usage_from(data.get("usageMetadata"))
        usage.images = images
        return ChatResult(content=content, tool_calls=[], finish_reason="stop", usage=usage, provider_response_id=data.get("responseId"))

    def _inline_parts(self, data: dict[str, Any], call: ProviderCall) -> list[dict[str, Any]]:
        """Text and `inlineData` parts of the first candidate as content parts (`data:` URLs)."""
        from llm_gateway.media.generation import data_url

        candidates = data.get("candidates") or []
        if not candidates:
            reason = (data.get("promptFeedback") or {}).get("blockReason")
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no candidates" + (f" ({reason})." if reason else "."),
                               provider=self.provider.id)
        out: list[dict[str, Any]] = []
        for part in (candidates[0].get("content") or {}).get("parts") or ():
            if part.get("thought"):
                continue
            if "text" in part and part["text"]:
                out.append({"type": "text", "text": part["text"]})
            elif "inlineData" in part:
                inline = part["inlineData"]
                mime = str(inline.get("mimeType") or "")
                raw = base64.b64decode(inline.get("data") or "")
                kind = mime.split("/", 1)[0]
                if kind == "audio" and ("l16" in mime.lower() or "pcm" in mime.lower()):
                    from llm_gateway.media import samples

                    rate = int(re.search(r"rate=(\d+)", mime).group(1)) if re.search(r"rate=(\d+)", mime) else 24000
                    raw, mime = samples.pcm_wav(raw, rate), "audio/wav"
                if kind in ("image", "audio", "video"):
                    out.append({"type": kind, "url": data_url(mime.split(";")[0], raw)})
        return out

    def speak(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media import samples
        from llm_gateway.media.generation import decode_data_url, instructions_of, option, prompt_of

        req = call.request
        text = prompt_of(req)
        style = option(req, "instructions") or instructions_of(req)
        voice = option(req, "voice", call.model.options.get("voice", "Kore"))
        body = {"contents": [{"role": "user", "parts": [{"text": f"{style}: {text}" if style else text}]}],
                "generationConfig": {"responseModalities": ["AUDIO"],
                                     "speechConfig": {"voiceConfig": {"prebuiltVoiceConfig": {"voiceName": voice}}}}}
        data = self._post_json(f"/{self._model_path(call.model)}:generateContent", body, call.deadline)
        audio = [p for p in self._inline_parts(data, call) if p["type"] == "audio"]
        if not audio:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no audio.", provider=self.provider.id)
        usage = usage_from(data.get("usageMetadata"))
        usage.characters = len(text)
        usage.seconds = samples.wav_duration(decode_data_url(audio[0]["url"])[1]) or 0.0
        return ChatResult(content=audio[:1], tool_calls=[], finish_reason="stop", usage=usage, provider_response_id=data.get("responseId"))

    def transcribe(self, call: ProviderCall) -> ChatResult:
        from llm_gateway.media import samples
        from llm_gateway.media.generation import input_media, option

        items = input_media(call, ("audio",))
        instruction = "Transcribe this audio verbatim. Answer with the transcript only."
        if option(call.request, "language"):
            instruction += f" The speech is in '{option(call.request, 'language')}'."
        if option(call.request, "prompt"):
            instruction += f" Context: {option(call.request, 'prompt')}"
        parts: list[dict[str, Any]] = [{"text": instruction}]
        seconds = 0.0
        files = GeminiFiles(self, call)
        try:
            uploaded = files.upload(to_upload(call, [Media(i.url, i.kind, i.media_type, len(i.data), i.data) for i in items]))
            for item in items:
                f = uploaded.get(item.url)
                if f is not None:
                    parts.append({"fileData": {"mimeType": f.mime_type, "fileUri": f.uri}})
                else:
                    parts.append({"inlineData": {"mimeType": item.media_type, "data": base64.b64encode(item.data).decode("ascii")}})
                seconds += (samples.wav_duration(item.data) if item.media_type == "audio/wav" else None) or 0.0
            data = self._post_json(f"/{self._model_path(call.model)}:generateContent", {"contents": [{"role": "user", "parts": parts}]},
                                   call.deadline)
        finally:
            files.delete()
        result = self.parse_result(data, call)
        result.usage.seconds = seconds
        return result

    def start_async(self, call: ProviderCall) -> dict[str, Any]:
        from llm_gateway.media.generation import option, prompt_of

        req = call.request
        params: dict[str, Any] = {}
        for key, wire in (("duration", "durationSeconds"), ("aspect_ratio", "aspectRatio"), ("resolution", "resolution"),
                          ("negative_prompt", "negativePrompt"), ("seed", "seed")):
            if option(req, key) is not None:
                params[wire] = int(option(req, key)) if key == "duration" else option(req, key)
        body: dict[str, Any] = {"instances": [{"prompt": prompt_of(req)}]}
        if params:
            body["parameters"] = params
        data = self._post_json(f"/{self._model_path(call.model)}:predictLongRunning", body, call.deadline, 60.0)
        if not data.get("name"):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no operation name.", provider=self.provider.id)
        return {"operation": data["name"], "seconds": float(params.get("durationSeconds") or call.model.options.get("duration_s", 8))}

    def poll_async(self, call: ProviderCall, handle: dict[str, Any]) -> tuple[bool, ChatResult | None]:
        from urllib.parse import urlsplit

        from llm_gateway.media.generation import data_url

        base = self.provider.base_url or DEFAULT_BASE_URL
        resp = self.http.request(self.provider.id, "GET", self.http.url(base, "/" + handle["operation"]), headers=self.headers(),
                                 timeout=30.0)
        op = self._json_of(resp)
        if not op.get("done"):
            return False, None
        if op.get("error"):
            err = op["error"]
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' failed the video: {err.get('message') or err}",
                               provider=self.provider.id)
        video = (op.get("response") or {}).get("generateVideoResponse") or {}
        samples_ = video.get("generatedSamples") or []
        uri = ((samples_[0] if samples_ else {}).get("video") or {}).get("uri")
        if not uri:
            reasons = video.get("raiMediaFilteredReasons") or ["no video in the answer"]
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned no video: {'; '.join(map(str, reasons))}",
                               provider=self.provider.id)
        same_host = urlsplit(uri).netloc == urlsplit(base).netloc
        headers = self.headers() if same_host else {}
        got = self.http.request(self.provider.id, "GET", uri, headers=headers, timeout=120.0)
        if got.status_code in (301, 302, 303, 307, 308) and got.headers.get("location"):  # to storage: no API key there
            got = self.http.request(self.provider.id, "GET", got.headers["location"], timeout=120.0)
        if got.status_code >= 400:
            raise self.error_from(got.status_code, got.text[:500], got.headers)
        return True, ChatResult(content=[{"type": "video", "url": data_url("video/mp4", got.content)}], tool_calls=[],
                                finish_reason="stop", usage=TokenUsage(seconds=float(handle.get("seconds") or 0.0)),
                                provider_response_id=handle["operation"])

    # ------------------------------------------------------------ calls

    def _body_with_uploads(self, call: ProviderCall, files: GeminiFiles) -> dict[str, Any]:
        """The request body, with the media too large to go inline uploaded first (gemini_files.py)."""
        large = to_upload(call, fetched_media(call))
        if not large:
            return self.build_body(call)
        self.build_body(call)  # a request the gateway refuses is refused before anything is uploaded
        return self.build_body(call, files.upload(large))

    def chat(self, call: ProviderCall) -> ChatResult:
        files = GeminiFiles(self, call)
        try:
            body = self._body_with_uploads(call, files)
            remaining = max(0.001, call.deadline.remaining())
            resp = self.http.request(self.provider.id, "POST", self._url(call, stream=False), json=body, headers=self.headers(),
                                     timeout=httpx.Timeout(remaining, connect=min(10.0, remaining)))
        finally:
            files.delete()
        if resp.status_code >= 400:
            raise self.error_from(resp.status_code, resp.text, resp.headers)
        try:
            data = resp.json()
        except ValueError:
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned a body that is not JSON.", provider=self.provider.id) from None
        if not isinstance(data, dict):
            raise GatewayError("provider_error", f"Provider '{self.provider.id}' returned an unexpected body.", provider=self.provider.id)
        return self.parse_result(data, call)

    def stream(self, call: ProviderCall) -> Iterator[StreamDelta]:
        files = GeminiFiles(self, call)
        try:
            body = self._body_with_uploads(call, files)
            first = max(0.001, call.deadline.first_token_remaining())
            with self.http.stream(self.provider.id, "POST", self._url(call, stream=True), json=body, headers=self.headers(),
                                  timeout=httpx.Timeout(first, connect=min(first, 10.0))) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise self.error_from(resp.status_code, resp.text, resp.headers)
                yield from self.parse_stream(resp.iter_lines(), call)
        finally:
            files.delete()
