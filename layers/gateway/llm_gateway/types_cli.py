"""`llm-gateway types …` — register and inspect GTS schemas in the Type Registry.

    llm-gateway types put FILE...       register schemas (each carries a gts:// $id)
    llm-gateway types seed DIR          register every *.json in DIR
    llm-gateway types get ID            print a schema
    llm-gateway types resolve ID        print it with GTS $refs inlined (what providers get)
    llm-gateway types list              list registered ids
    llm-gateway types delete ID

Talks to the table in `LLMGW_TYPES_TABLE` (real AWS, or the emulator in `LLMGW_AWS_ENDPOINT_URL`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(subparsers: "argparse._SubParsersAction") -> None:
    p = subparsers.add_parser("types", help="register and inspect GTS schemas (Type Registry)")
    sub = p.add_subparsers(dest="types_cmd", required=True)
    put = sub.add_parser("put", help="register schema files")
    put.add_argument("files", nargs="+")
    seed = sub.add_parser("seed", help="register every *.json in a folder")
    seed.add_argument("directory")
    for name in ("get", "resolve", "delete"):
        sp = sub.add_parser(name)
        sp.add_argument("id")
    sub.add_parser("list")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from llm_gateway.api.errors import GatewayError
    from llm_gateway.registry import gts
    from llm_gateway.registry.schemas import check_schema
    from llm_gateway.registry.types import TypeRegistry, load_seed
    from llm_gateway.stores.types import TypeStore

    store = TypeStore()
    try:
        if args.types_cmd == "put":
            for name in args.files:
                schema = json.loads(Path(name).read_text(encoding="utf-8"))
                ident = gts.require_type_id(str(schema.get("$id", "")), f"{name}: $id")
                check_schema(schema, name)
                store.put(ident, schema)
                print(f"registered {ident}")
        elif args.types_cmd == "seed":
            for ident in load_seed(args.directory, store=store):
                print(f"registered {ident}")
        elif args.types_cmd == "list":
            print("\n".join(store.list_ids()))
        elif args.types_cmd == "delete":
            store.delete(gts.strip_uri(args.id))
            print(f"deleted {gts.strip_uri(args.id)}")
        else:
            ident = gts.require_type_id(args.id, "id")
            schema = store.batch_get([ident]).get(ident)
            if schema is None:
                print(f"unknown type {ident}", file=sys.stderr)
                return 1
            if args.types_cmd == "resolve":
                schema = TypeRegistry(store=store, ttl_s=0).resolve(schema, ident)
            print(json.dumps(schema, indent=2))
    except GatewayError as exc:
        print(f"error: {exc.detail}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="llm-gateway")
    add_parser(parser.add_subparsers(dest="cmd", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
