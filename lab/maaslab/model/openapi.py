"""/openapi.json as FastAPI (OpenAPI 3.1, JSON Schema 2020-12 idioms) emits it for vLLM."""
from __future__ import annotations

import functools
from typing import Any


def _opt(schema: dict[str, Any], title: str, default: Any = None) -> dict[str, Any]:
    return {"anyOf": [schema, {"type": "null"}], "title": title, "default": default}


@functools.lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    ref = lambda name: {"$ref": f"#/components/schemas/{name}"}  # noqa: E731
    text_or_list = {"anyOf": [{"type": "string"}, {"items": {"type": "string"}, "type": "array"},
                              {"items": {"type": "integer"}, "type": "array"}]}
    schemas = {
        "CompletionRequest": {"type": "object", "title": "CompletionRequest", "required": ["prompt"], "properties": {
            "model": _opt({"type": "string"}, "Model"),
            "prompt": {**text_or_list, "title": "Prompt"},
            "max_tokens": _opt({"type": "integer", "exclusiveMinimum": 0}, "Max Tokens", 16),
            "temperature": _opt({"type": "number", "minimum": 0}, "Temperature"),
            "n": {"type": "integer", "title": "N", "default": 1},
            "seed": _opt({"type": "integer"}, "Seed"),
            "stop": _opt({"anyOf": [{"type": "string"}, {"items": {"type": "string"}, "type": "array"}]}, "Stop", []),
            "stream": _opt({"type": "boolean"}, "Stream", False),
            "stream_options": _opt(ref("StreamOptions"), "Stream Options")},
            "additionalProperties": True},
        "ChatCompletionRequest": {"type": "object", "title": "ChatCompletionRequest", "required": ["messages"],
                                  "properties": {
            "messages": {"items": {"type": "object", "additionalProperties": True}, "type": "array",
                         "title": "Messages"},
            "model": _opt({"type": "string"}, "Model"),
            "max_tokens": _opt({"type": "integer"}, "Max Tokens"),
            "max_completion_tokens": _opt({"type": "integer"}, "Max Completion Tokens"),
            "temperature": _opt({"type": "number"}, "Temperature"),
            "n": _opt({"type": "integer"}, "N", 1),
            "seed": _opt({"type": "integer", "maximum": 9223372036854775807,
                          "minimum": -9223372036854775808}, "Seed"),
            "stream": _opt({"type": "boolean"}, "Stream", False),
            "stream_options": _opt(ref("StreamOptions"), "Stream Options")},
            "additionalProperties": True},
        "StreamOptions": {"type": "object", "title": "StreamOptions", "properties": {
            "include_usage": _opt({"type": "boolean"}, "Include Usage", True),
            "continuous_usage_stats": _opt({"type": "boolean"}, "Continuous Usage Stats", False)},
            "additionalProperties": True},
        "EmbeddingCompletionRequest": {"type": "object", "title": "EmbeddingCompletionRequest", "required": ["input"],
                                       "properties": {
            "model": _opt({"type": "string"}, "Model"),
            "input": {**text_or_list, "title": "Input"},
            "encoding_format": {"type": "string", "enum": ["float", "base64"], "title": "Encoding Format",
                                "default": "float"},
            "dimensions": _opt({"type": "integer"}, "Dimensions")}, "additionalProperties": True},
        "TokenizeCompletionRequest": {"type": "object", "title": "TokenizeCompletionRequest", "required": ["prompt"],
                                      "properties": {"model": _opt({"type": "string"}, "Model"),
                                                     "prompt": {"type": "string", "title": "Prompt"},
                                                     "add_special_tokens": {"type": "boolean", "default": True,
                                                                            "title": "Add Special Tokens"}},
                                      "additionalProperties": True},
        "DetokenizeRequest": {"type": "object", "title": "DetokenizeRequest", "required": ["tokens"], "properties": {
            "model": _opt({"type": "string"}, "Model"),
            "tokens": {"items": {"type": "integer"}, "type": "array", "title": "Tokens"}},
            "additionalProperties": True},
        "ValidationError": {"type": "object", "title": "ValidationError", "required": ["loc", "msg", "type"],
                            "properties": {
            "loc": {"items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}, "type": "array",
                    "title": "Location"},
            "msg": {"type": "string", "title": "Message"}, "type": {"type": "string", "title": "Error Type"}}},
        "HTTPValidationError": {"type": "object", "title": "HTTPValidationError", "properties": {
            "detail": {"items": ref("ValidationError"), "type": "array", "title": "Detail"}}},
    }

    def op(op_id: str, summary: str, body: str | None = None) -> dict[str, Any]:
        o: dict[str, Any] = {"summary": summary, "operationId": op_id, "responses": {
            "200": {"description": "Successful Response", "content": {"application/json": {"schema": {}}}}}}
        if body:
            o["requestBody"] = {"content": {"application/json": {"schema": ref(body)}}, "required": True}
            o["responses"]["422"] = {"description": "Validation Error", "content": {
                "application/json": {"schema": ref("HTTPValidationError")}}}
        return o

    paths = {
        "/health": {"get": op("health_health_get", "Health")},
        "/tokenize": {"post": op("tokenize_tokenize_post", "Tokenize", "TokenizeCompletionRequest")},
        "/detokenize": {"post": op("detokenize_detokenize_post", "Detokenize", "DetokenizeRequest")},
        "/v1/models": {"get": op("show_available_models_v1_models_get", "Show Available Models")},
        "/version": {"get": op("show_version_version_get", "Show Version")},
        "/v1/chat/completions": {"post": op("create_chat_completion_v1_chat_completions_post",
                                            "Create Chat Completion", "ChatCompletionRequest")},
        "/v1/completions": {"post": op("create_completion_v1_completions_post", "Create Completion",
                                       "CompletionRequest")},
        "/v1/embeddings": {"post": op("create_embedding_v1_embeddings_post", "Create Embedding",
                                      "EmbeddingCompletionRequest")},
    }
    return {"openapi": "3.1.0", "info": {"title": "FastAPI", "version": "0.1.0"}, "paths": paths,
            "components": {"schemas": schemas}}
