"""Hooks (pipeline steps 5 and 10): the plugin interface, the built-ins and a tenant's chain."""

from llm_gateway.pipeline.hooks.base import Hook, HookContext, HookResult, ResponseView
from llm_gateway.pipeline.hooks.builtins import HookConfigError, ModerationHook, PiiHook
from llm_gateway.pipeline.hooks.chain import HOOK_TYPES, HookChain, StreamGuard, guard_deltas
from llm_gateway.pipeline.hooks.external import LambdaHook

__all__ = ["Hook", "HookContext", "HookResult", "ResponseView", "HookConfigError", "ModerationHook", "PiiHook",
           "HOOK_TYPES", "HookChain", "StreamGuard", "guard_deltas", "LambdaHook"]
