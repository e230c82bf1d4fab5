"""`llm-gateway` — the admin CLI: tenants, API keys, limits, budgets, hooks, usage (and GTS types).

    llm-gateway tenants create acme --name "Acme" --models "openai::*" mock::echo \\
        --rpm 600 --tpm 200000 --user-rpm 60 --budget tenant:monthly:500 --budget user:daily:5
    llm-gateway tenants show acme | list | status acme [--user alice]
    llm-gateway tenants approve acme "anthropic::*"      /  unapprove acme mock::echo
    llm-gateway tenants set-limits acme --rpm 1200 --user-tpm none
    llm-gateway tenants set-budget acme --scope user --period daily --usd 10 [--user alice]
    llm-gateway tenants remove-budget acme --scope user --period daily [--user alice]
    llm-gateway tenants set-hooks acme hooks.json        (validated; '{}' removes every hook)
    llm-gateway tenants suspend acme  /  activate acme  /  delete acme
    llm-gateway keys issue acme --user alice [--expires-in 90d] [--scopes inference,models] [--name laptop]
    llm-gateway keys list [acme]  /  revoke <key id>
    llm-gateway usage acme [--from 2026-11-01] [--to 2026-11-30] [--json]
    llm-gateway types ...                                (GTS schemas: see `llm-gateway types -h`)

Talks to the tables named by the `LLMGW_*_TABLE` settings in real AWS (the usual credential
chain), or to an emulator: `--endpoint-url` / `LLMGW_AWS_ENDPOINT_URL` (the local server prints
its embedded AWS endpoint; loopback endpoints get dummy credentials, never real ones). Running
gateways pick changes up within `LLMGW_TENANT_CACHE_TTL_S` (30 s).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from typing import Any, Callable
from urllib.parse import urlparse


def _limit(value: str) -> int | None:
    if value.lower() in ("none", "off", "0", "-"):
        return None
    n = int(value)
    if n < 1:
        raise argparse.ArgumentTypeError("a limit is a positive integer, or 'none'")
    return n


def _budget(value: str) -> dict[str, Any]:
    parts = value.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError("a budget is SCOPE:PERIOD:USD[:USER], e.g. tenant:monthly:500 or user:daily:5:alice")
    out: dict[str, Any] = {"scope": parts[0], "period": parts[1], "limit_usd": float(parts[2])}
    if len(parts) == 4:
        out["user_id"] = parts[3]
    return out


def _duration(value: str) -> int:
    m = re.fullmatch(r"(\d+)\s*([smhdw])", value.strip())
    if not m:
        raise argparse.ArgumentTypeError("a duration like 30d, 12h, 90m or 2w")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


def _iso(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _money(v: float) -> str:
    return f"${v:,.2f}" if v >= 0.01 or v == 0 else f"${v:.6f}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="llm-gateway", description="LLM Gateway administration.")
    parser.add_argument("--endpoint-url", help="AWS endpoint (an emulator, e.g. the local server's embedded AWS)")
    parser.add_argument("--region", help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION)")
    sub = parser.add_subparsers(dest="command", required=True)

    # ---------------------------------------------------------------- tenants
    tenants = sub.add_parser("tenants", help="create and configure tenants")
    tsub = tenants.add_subparsers(dest="tenants_cmd", required=True)
    create = tsub.add_parser("create", help="create a tenant")
    create.add_argument("tenant")
    create.add_argument("--name", default="")
    create.add_argument("--models", nargs="+", default=None, metavar="PATTERN",
                        help="approved model ids or patterns (default: none approved)")
    create.add_argument("--config", help="a JSON file with the whole configuration (flags given override it)")
    for flag in ("--rpm", "--tpm", "--user-rpm", "--user-tpm"):
        create.add_argument(flag, type=_limit)
    create.add_argument("--budget", action="append", type=_budget, default=[], metavar="SCOPE:PERIOD:USD[:USER]")
    for name in ("show", "status", "suspend", "activate", "delete"):
        p = tsub.add_parser(name)
        p.add_argument("tenant")
        if name == "status":
            p.add_argument("--user", help="also show this user's counters")
    tsub.add_parser("list")
    for name in ("approve", "unapprove"):
        p = tsub.add_parser(name, help=f"{name} model ids or patterns")
        p.add_argument("tenant")
        p.add_argument("patterns", nargs="+")
    limits = tsub.add_parser("set-limits", help="rate limits (a number, or 'none')")
    limits.add_argument("tenant")
    for flag in ("--rpm", "--tpm", "--user-rpm", "--user-tpm"):
        limits.add_argument(flag, type=_limit, default=argparse.SUPPRESS)
    for name in ("set-budget", "remove-budget"):
        p = tsub.add_parser(name)
        p.add_argument("tenant")
        p.add_argument("--scope", choices=("tenant", "user"), required=True)
        p.add_argument("--period", choices=("daily", "monthly"), required=True)
        p.add_argument("--user", help="a budget for this user only (scope user)")
        if name == "set-budget":
            p.add_argument("--usd", type=float, required=True)
    hooks = tsub.add_parser("set-hooks", help="replace the hook configuration from a JSON file ('-': stdin)")
    hooks.add_argument("tenant")
    hooks.add_argument("file")

    # ---------------------------------------------------------------- keys
    keys = sub.add_parser("keys", help="issue, list and revoke API keys")
    ksub = keys.add_subparsers(dest="keys_cmd", required=True)
    issue = ksub.add_parser("issue", help="issue a key (printed once)")
    issue.add_argument("tenant")
    issue.add_argument("--user", required=True)
    issue.add_argument("--expires-in", type=_duration)
    issue.add_argument("--expires-at", help="ISO date/time (UTC)")
    issue.add_argument("--scopes", help="comma-separated: inference, models, usage (default: all)")
    issue.add_argument("--name")
    lst = ksub.add_parser("list")
    lst.add_argument("tenant", nargs="?")
    revoke = ksub.add_parser("revoke")
    revoke.add_argument("key_id")

    # ---------------------------------------------------------------- usage
    usage = sub.add_parser("usage", help="a tenant's usage by day and model")
    usage.add_argument("tenant")
    usage.add_argument("--from", dest="first")
    usage.add_argument("--to", dest="last")
    usage.add_argument("--json", action="store_true")

    try:
        from llm_gateway import types_cli

        types_cli.add_parser(sub)
    except ImportError:  # pragma: no cover - the Type Registry is optional
        pass
    return parser


def _configure(args: argparse.Namespace) -> None:
    if args.endpoint_url:
        os.environ["LLMGW_AWS_ENDPOINT_URL"] = args.endpoint_url
    if args.region:
        os.environ["AWS_DEFAULT_REGION"] = args.region
    endpoint = os.environ.get("LLMGW_AWS_ENDPOINT_URL")
    if endpoint and (urlparse(endpoint).hostname or "") in ("127.0.0.1", "localhost", "::1"):
        # an emulator on this machine: never sign with (or need) real credentials
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local")
        os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    from llm_gateway.config import reset_settings
    from llm_gateway.stores.aws import reset_clients

    reset_settings()
    reset_clients()


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))


def _validate_hooks(hooks: dict[str, Any]) -> None:
    if hooks:
        from llm_gateway.pipeline.hooks.chain import HookChain

        HookChain.from_config(hooks)


def _tenants(args: argparse.Namespace) -> int:
    from llm_gateway.stores.tenants import ConfigError, TenantConfig, TenantStore

    store = TenantStore()
    cmd = args.tenants_cmd
    t = getattr(args, "tenant", None)

    def change(fn: Callable[[dict[str, Any]], None]) -> None:
        def apply(d: dict[str, Any]) -> dict[str, Any]:
            fn(d)
            return d

        cfg = store.update(t, apply)
        print(f"tenant {t} updated (version {cfg.version})")

    if cmd == "create":
        data: dict[str, Any] = {}
        if args.config:
            with open(args.config, encoding="utf-8") as fh:
                data = json.load(fh)
        data.setdefault("approved_models", [])
        if args.name:
            data["name"] = args.name
        if args.models is not None:
            data["approved_models"] = args.models
        limits = data.setdefault("limits", {})
        for scope, rpm, tpm in (("tenant", args.rpm, args.tpm), ("user", args.user_rpm, args.user_tpm)):
            if rpm or tpm:
                limits[scope] = {**limits.get(scope, {}), **({"rpm": rpm} if rpm else {}), **({"tpm": tpm} if tpm else {})}
        if args.budget:
            data["budgets"] = [*data.get("budgets", []), *args.budget]
        _validate_hooks(data.get("hooks") or {})
        cfg = store.put(TenantConfig.from_dict(t, data), expected_version=0)
        print(f"tenant {t} created (version {cfg.version})")
        if not cfg.approved_models:
            print("note: no models approved yet — `llm-gateway tenants approve` adds some", file=sys.stderr)
    elif cmd == "show":
        cfg = store.get(t, fresh=True)
        if cfg is None:
            raise ConfigError(f"tenant {t!r} does not exist")
        _print_json({"tenant_id": t, "version": cfg.version, **cfg.to_dict()})
    elif cmd == "list":
        for cfg in store.list():
            lim = cfg.tenant_limit
            print(f"{cfg.tenant_id}\t{cfg.status}\tmodels={','.join(cfg.approved_models) or '-'}\t"
                  f"rpm={lim.rpm or '-'} tpm={lim.tpm or '-'}\tbudgets={len(cfg.budgets)}\tv{cfg.version}")
    elif cmd == "approve":
        change(lambda d: d.__setitem__("approved_models", list(dict.fromkeys([*d["approved_models"], *args.patterns]))))
    elif cmd == "unapprove":
        change(lambda d: d.__setitem__("approved_models", [m for m in d["approved_models"] if m not in args.patterns]))
    elif cmd == "set-limits":
        def set_limits(d: dict[str, Any]) -> None:
            limits = d.setdefault("limits", {})
            for flag, scope, kind in (("rpm", "tenant", "rpm"), ("tpm", "tenant", "tpm"), ("user_rpm", "user", "rpm"), ("user_tpm", "user", "tpm")):
                if hasattr(args, flag):
                    entry = limits.setdefault(scope, {})
                    value = getattr(args, flag)
                    if value is None:
                        entry.pop(kind, None)
                    else:
                        entry[kind] = value
            for scope in list(limits):
                if not limits[scope]:
                    del limits[scope]

        change(set_limits)
    elif cmd in ("set-budget", "remove-budget"):
        if args.user and args.scope != "user":
            raise ConfigError("--user needs --scope user")

        def same(b: dict[str, Any]) -> bool:
            return b["scope"] == args.scope and b["period"] == args.period and b.get("user_id") == (args.user or None)

        def set_budget(d: dict[str, Any]) -> None:
            budgets = [b for b in d.get("budgets", []) if not same(b)]
            if cmd == "set-budget":
                entry: dict[str, Any] = {"scope": args.scope, "period": args.period, "limit_usd": args.usd}
                if args.user:
                    entry["user_id"] = args.user
                budgets.append(entry)
            d["budgets"] = budgets

        change(set_budget)
    elif cmd == "set-hooks":
        raw = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()
        hooks = json.loads(raw)
        _validate_hooks(hooks)
        change(lambda d: d.__setitem__("hooks", hooks))
    elif cmd in ("suspend", "activate"):
        change(lambda d: d.__setitem__("status", "suspended" if cmd == "suspend" else "active"))
    elif cmd == "delete":
        store.delete(t)
        print(f"tenant {t} deleted (its keys stop working; revoke them too: llm-gateway keys list {t})")
    elif cmd == "status":
        _status(store, t, args.user)
    return 0


def _status(store: Any, tenant: str, user: str | None) -> None:
    from llm_gateway.stores.budgets import BudgetStore, budget_key, period_window
    from llm_gateway.stores.ratelimit import RateLimitStore, rate_key, window_start
    from llm_gateway.stores.tenants import ConfigError

    cfg = store.get(tenant, fresh=True)
    if cfg is None:
        raise ConfigError(f"tenant {tenant!r} does not exist")
    now = time.time()
    window = window_start(now)
    rates = RateLimitStore()
    print(f"tenant {tenant} ({cfg.status}), version {cfg.version}")
    for scope, limit, who in (("tenant", cfg.tenant_limit, None), ("user", cfg.user_limit, user)):
        if limit.active and (scope == "tenant" or who):
            req, tok = rates.current(rate_key(tenant, window, who))
            label = "tenant" if who is None else f"user {who}"
            tokens = f", {tok}/{limit.tpm} tokens" if limit.tpm else ""
            print(f"  this minute, {label}: {req}/{limit.rpm or 'unlimited'} requests{tokens}")
    budgets = BudgetStore()
    for b in cfg.budgets:
        if b.scope == "user" and not (user and b.applies_to(user)):
            continue
        key, resets = period_window(b.period, now)
        k = budget_key(tenant, key, None if b.scope == "tenant" else user)
        spent = budgets.spent([k])[k]
        label = "tenant" if b.scope == "tenant" else f"user {user}"
        print(f"  {b.period} budget, {label}: {_money(spent)} of {_money(b.limit_usd)} (resets {_iso(resets)})")


def _keys(args: argparse.Namespace) -> int:
    from llm_gateway.stores.keys import ApiKeyStore
    from llm_gateway.stores.tenants import ConfigError, TenantStore

    store = ApiKeyStore()
    if args.keys_cmd == "issue":
        if TenantStore().get(args.tenant, fresh=True) is None:
            raise ConfigError(f"tenant {args.tenant!r} does not exist (llm-gateway tenants create {args.tenant})")
        expires = None
        if args.expires_in:
            expires = int(time.time()) + args.expires_in
        elif args.expires_at:
            when = dt.datetime.fromisoformat(args.expires_at)
            if when.tzinfo is None:
                when = when.replace(tzinfo=dt.timezone.utc)
            expires = int(when.timestamp())
        scopes = [s.strip() for s in args.scopes.split(",") if s.strip()] if args.scopes else None
        key_id, raw = store.issue(args.tenant, args.user, expires_at=expires, scopes=scopes, name=args.name)
        print(raw)
        print(f"key {key_id} for {args.user}@{args.tenant}, expires {_iso(expires)}, scopes {','.join(scopes) if scopes else 'all'}"
              " — shown once: store it now", file=sys.stderr)
    elif args.keys_cmd == "list":
        for k in store.list_keys(args.tenant):
            state = "revoked" if k.revoked else ("expired" if k.expires_at and k.expires_at <= time.time() else "active")
            print(f"{k.key_id}\t{k.tenant_id}\t{k.user_id}\t{state}\tcreated {_iso(k.created_at)}\texpires {_iso(k.expires_at)}\t"
                  f"scopes {','.join(sorted(k.scopes)) if k.scopes else 'all'}\t{k.name or ''}")
    elif args.keys_cmd == "revoke":
        info = store.revoke(args.key_id)
        if info is None:
            raise ConfigError(f"no key {args.key_id!r}")
        print(f"key {info.key_id} ({info.user_id}@{info.tenant_id}) revoked; gateways stop accepting it within "
              f"LLMGW_AUTH_CACHE_TTL_S (plus the API authorizer's cache TTL)")
    return 0


def _usage(args: argparse.Namespace) -> int:
    from llm_gateway.service.admin import summarize
    from llm_gateway.stores.aggregates import AggregateStore

    today = dt.datetime.now(dt.timezone.utc).date()
    last = dt.date.fromisoformat(args.last) if args.last else today
    first = dt.date.fromisoformat(args.first) if args.first else last - dt.timedelta(days=6)
    rows = AggregateStore().query(args.tenant, first.isoformat(), last.isoformat())
    by_model, totals = summarize(rows)
    if args.json:
        _print_json({"tenant_id": args.tenant, "from": first.isoformat(), "to": last.isoformat(), "data": rows,
                     "by_model": by_model, "totals": totals})
        return 0
    print(f"usage of {args.tenant}, {first} .. {last} (UTC)")
    print(f"{'date':<11} {'model':<36} {'requests':>8} {'errors':>6} {'input':>10} {'output':>10} {'cost USD':>12}")
    for r in rows:
        print(f"{r['date']:<11} {r['model']:<36} {r['requests']:>8} {r['errors']:>6} {r['input_tokens']:>10} "
              f"{r['output_tokens']:>10} {r['cost_usd']:>12.6f}")
    print(f"{'total':<48} {totals['requests']:>8} {totals['errors']:>6} {totals['input_tokens']:>10} "
          f"{totals['output_tokens']:>10} {totals['cost_usd']:>12.6f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _configure(args)
    from llm_gateway.pipeline.hooks.builtins import HookConfigError
    from llm_gateway.stores.tenants import ConfigError

    try:
        if args.command == "tenants":
            return _tenants(args)
        if args.command == "keys":
            return _keys(args)
        if args.command == "usage":
            return _usage(args)
        return args.func(args)
    except (ConfigError, HookConfigError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
