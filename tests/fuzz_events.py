"""Webhook fuzzing, shared by tests/test_webhook_fuzz.py and bench/webhook-fuzz.

Three sources of input, all from one seeded `random.Random` (same seed, same inputs):

* `SpecEvents`: events generated from LINE's webhook.yml by walking its OpenAPI schemas
  ($ref, allOf, discriminators, enums, required and optional properties, formats);
* `Poison`: the 28 peer fixture events mutated (wrong types for every field, huge, negative and
  non-finite numbers, lone surrogates, NUL, emoji, 100k-character text, SQL-ish strings, deep
  nesting, over-long ids, missing and extra fields, duplicated webhookEventIds) and whole bodies
  that are not a webhook at all;
* good text events from distinct residents, built by the fake platform when they are sent (so
  their reply tokens are fresh).

`recipes()` mixes them into request bodies (poison alone, good alone, poison beside good);
`run()` posts them from several threads to an app wired to the fake platform and returns a
`Report` of what mattered: 5xx answers, good events answered exactly once, stored events that
failed or never finished. Bodies are JSON with ASCII escapes, so a lone surrogate travels as
the six characters `\\ud800`, exactly as a hostile sender would write it.
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import string
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("SHARED_DIR", ROOT.parent / "shared"))
SPEC_PATH = SHARED / "line-openapi" / "webhook.yml"
FIXTURES_PATH = SHARED / "line-peer-fixtures" / "webhook.json"
DESTINATION = "Ufa4eb070000000000000000000000000"
MIXED_BODY_BYTES = 700_000  # the poison beside a resident's question (WEBHOOK_MAX_BODY_BYTES is 1,000,000)
_PREFIX = "#/components/schemas/"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

GOOD_TEXTS = ["こんにちは", "ごみの出し方を教えて", "住民票はどこで取れますか", "保育園の申し込み", "粗大ごみ"]
SQLISH = [
    "'; DROP TABLE inbox_events; --",
    "\" OR 1=1 --",
    "Robert'); DELETE FROM residents;--",
    "' || pg_sleep(10) --",
    "%s%s%s%n",
    "${jndi:ldap://example.invalid/a}",
    "<script>alert(1)</script>",
    "\\",
    "1; UPDATE inbox_events SET status='done'",
]
ODD_TEXTS = [
    "😀🎉👍" * 10,
    "\u202e逆さま",
    "\ufeffBOM",
    "𠮷野家のうなぎ",
    "e\u0301\u0301\u0301",
    " \t\r\n ",
    "",
    "ﾊﾝｶｸｶﾅ",
    "\u3000全角空白\u3000",
]


def _nest(depth: int, kind: str = "list") -> Any:
    """A value nested `depth` containers deep, built without recursion."""
    value: Any = "bottom"
    for _ in range(depth):
        value = [value] if kind == "list" else {"a": value}
    return value


def encode_body(payload: Any) -> bytes:
    """A webhook body as a hostile sender could write it: ASCII escapes, NaN and Infinity allowed."""
    return json.dumps(payload, ensure_ascii=True, allow_nan=True).encode("ascii")


def _ref_name(ref: str) -> str:
    if not ref.startswith(_PREFIX):
        raise ValueError(f"unsupported $ref {ref!r}")
    return ref[len(_PREFIX) :]


# --------------------------------------------------------------------------------------------------
# Events from webhook.yml
# --------------------------------------------------------------------------------------------------


class SpecEvents:
    """Random webhook events that follow webhook.yml (checked against it in the tests).

    One liberty is taken where the spec is looser than LINE: a user source always carries its
    userId (LINE always sends it; the spec leaves it optional).
    """

    ALWAYS = {"UserSource": {"userId"}, "GroupSource": {"groupId"}, "RoomSource": {"roomId"}}

    def __init__(self, rng: random.Random, spec_path: Path = SPEC_PATH, now_ms: int | None = None) -> None:
        document = yaml.safe_load(spec_path.read_text(encoding="utf-8"))
        self.schemas: dict[str, Any] = document["components"]["schemas"]
        self.rng = rng
        self.now_ms = int(time.time() * 1000) if now_ms is None else now_ms
        # A schema that is a discriminator's target implies the discriminator's value even when
        # referenced directly (JoinedMembers.members -> UserSource means type "user").
        self.implied: dict[str, tuple[str, str]] = {}
        for schema in self.schemas.values():
            disc = schema.get("discriminator") if isinstance(schema, dict) else None
            for key, ref in ((disc or {}).get("mapping") or {}).items():
                self.implied[_ref_name(ref)] = (disc["propertyName"], key)
        self.event_types = sorted(self.schemas["Event"]["discriminator"]["mapping"])

    def event(self, event_type: str | None = None) -> dict[str, Any]:
        """One event; of the given type, or of a random type the spec knows."""
        return self._named("Event", "event", event_type)

    # ---- schema walking ---------------------------------------------------------------------------

    def _named(self, name: str, prop: str, choose: str | None = None) -> Any:
        """A value of a named schema, dispatching on its discriminator if it has one."""
        schema = self.schemas[name]
        disc = schema.get("discriminator") if isinstance(schema, dict) else None
        if disc and disc.get("mapping"):
            key = choose if choose is not None else self.rng.choice(sorted(disc["mapping"]))
            target = _ref_name(disc["mapping"][key])
            return self._value(self.schemas[target], prop, target, {disc["propertyName"]: key})
        forced = dict([self.implied[name]]) if name in self.implied else {}
        return self._value(schema, prop, name, forced)

    def _flatten(self, schema: dict[str, Any]) -> tuple[dict[str, Any], set[str], Any]:
        """Properties, required names and additionalProperties of a schema with its allOf parts."""
        properties: dict[str, Any] = {}
        required: set[str] = set()
        additional: Any = None
        parts = [schema]
        while parts:
            part = parts.pop(0)
            if "$ref" in part:  # a base schema: its fields, not a dispatch on its discriminator
                part = self.schemas[_ref_name(part["$ref"])]
            parts[:0] = part.get("allOf", [])
            properties.update(part.get("properties", {}))
            required.update(part.get("required", []))
            if "additionalProperties" in part:
                additional = part["additionalProperties"]
        return properties, required, additional

    def _value(self, schema: dict[str, Any], prop: str, owner: str | None = None,
               forced: dict[str, Any] | None = None) -> Any:
        if "$ref" in schema:
            return self._named(_ref_name(schema["$ref"]), prop)
        kind = schema.get("type")
        if "allOf" in schema or "properties" in schema or kind == "object":
            return self._object(schema, owner, forced or {})
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        if kind == "string":
            return self._string(prop, schema)
        if kind == "integer":
            return self._integer(prop, schema)
        if kind == "number":
            limit = {"latitude": 90.0, "longitude": 180.0}.get(prop, 1e6)
            return self.rng.uniform(-limit, limit)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "array":
            low = int(schema.get("minItems", 1 if prop in ("members", "mentionees") else 0))
            high = min(int(schema.get("maxItems", 3)), 3)
            return [self._value(schema["items"], prop) for _ in range(self.rng.randint(low, max(low, high)))]
        raise ValueError(f"webhook.yml: no generator for {prop!r}: {schema!r}")

    def _object(self, schema: dict[str, Any], owner: str | None, forced: dict[str, Any]) -> dict[str, Any]:
        properties, required, additional = self._flatten(schema)
        always = self.ALWAYS.get(owner or "", set())
        out: dict[str, Any] = {}
        for prop, sub in properties.items():
            if prop in forced:
                out[prop] = forced[prop]
            elif prop in required or prop in always or self.rng.random() < 0.5:
                out[prop] = self._value(sub, prop)
        if isinstance(additional, dict):
            for key in self.rng.sample(["date", "time", "datetime", "newRichMenuAliasId", "status"], self.rng.randint(0, 2)):
                out[key] = self._value(additional, key)
        return out

    def _hex(self, n: int) -> str:
        return "".join(self.rng.choice("0123456789abcdef") for _ in range(n))

    def ulid(self) -> str:
        """A ULID-shaped id (26 Crockford base32 characters), as LINE's webhookEventId."""
        return "".join(self.rng.choice(_CROCKFORD) for _ in range(26))

    def _string(self, prop: str, schema: dict[str, Any]) -> str:
        ids: dict[str, Callable[[], str]] = {
            "userId": lambda: "U" + self._hex(32),
            "botId": lambda: "U" + self._hex(32),
            "destination": lambda: "U" + self._hex(32),
            "groupId": lambda: "C" + self._hex(32),
            "roomId": lambda: "R" + self._hex(32),
            "webhookEventId": self.ulid,
            "replyToken": lambda: self._hex(32),
            "quoteToken": lambda: "".join(self.rng.choice(string.ascii_letters + string.digits + "-_") for _ in range(64)),
            "markAsReadToken": lambda: self._hex(40),
            "id": lambda: str(self.rng.randint(10**17, 10**18 - 1)),
            "messageId": lambda: str(self.rng.randint(10**17, 10**18 - 1)),
            "quotedMessageId": lambda: str(self.rng.randint(10**17, 10**18 - 1)),
            "hwid": lambda: self._hex(10),
        }
        if prop in ids:
            value = ids[prop]()
        elif schema.get("format") == "uri":
            value = "https://example.com/" + self._hex(12)
        else:
            value = self._text(int(schema.get("maxLength", 60)))
        pattern = schema.get("pattern")
        if pattern and not re.search(pattern, value):
            raise ValueError(f"webhook.yml: generated {prop!r} does not match {pattern!r}")
        return value

    def _text(self, limit: int) -> str:
        alphabet = self.rng.choice([string.ascii_letters + " ", "あいうえおかきくけこごみ住民票保育園税金", "😀🎉👍🏻🇯🇵", string.printable])
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, min(limit, 60))))

    def _integer(self, prop: str, schema: dict[str, Any]) -> int:
        if prop in ("timestamp", "expireAt"):
            return self.now_ms - self.rng.randint(0, 10_000)
        if prop in ("index", "length"):
            return self.rng.randint(0, 100)
        if prop == "total":
            return self.rng.randint(1, 10)
        if schema.get("format") == "int32":
            return self.rng.randint(0, 2**31 - 1)
        return self.rng.randint(0, 2**53 - 1)


# --------------------------------------------------------------------------------------------------
# Poison: mutated fixture events and bodies that are not webhooks
# --------------------------------------------------------------------------------------------------


def load_fixture_events() -> list[dict[str, Any]]:
    """The 28 peer fixture events (as LINE's SDKs test them)."""
    return json.loads(FIXTURES_PATH.read_text(encoding="utf-8"))["events"]


def _paths(value: Any) -> list[tuple[Any, ...]]:
    """Every path below the root of a JSON value (keys and indexes), iteratively."""
    out: list[tuple[Any, ...]] = []
    stack: list[tuple[tuple[Any, ...], Any]] = [((), value)]
    while stack:
        path, node = stack.pop()
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            out.append(path + (key,))
            stack.append((path + (key,), child))
    return out


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


def _set(value: Any, path: tuple[Any, ...], new: Any) -> None:
    _get(value, path[:-1])[path[-1]] = new


class Poison:
    """Mutations of the peer fixture events; each call gives a (label, event) pair."""

    FIELDS = [("type",), ("timestamp",), ("webhookEventId",), ("replyToken",), ("mode",), ("source",),
              ("source", "type"), ("source", "userId"), ("message",), ("message", "type"), ("message", "text"),
              ("postback",), ("postback", "data"), ("deliveryContext",)]

    def __init__(self, rng: random.Random, fixtures: list[dict[str, Any]] | None = None) -> None:
        self.rng = rng
        self.fixtures = fixtures if fixtures is not None else load_fixture_events()
        self.used_ids: list[str] = []
        self.mutations: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
            ("wrong-type", self._wrong_type),
            ("field-wrong-type", self._field_wrong_type),
            ("huge-int", self._huge_int),
            ("negative-int", self._negative_int),
            ("float", self._float),
            ("lone-surrogate", lambda e: self._insert(e, self.rng.choice(["\ud800", "\udfff", "a\udc00b"]))),
            ("nul", lambda e: self._insert(e, self.rng.choice(["\x00", "a\x00b", "\x00\x00"]))),
            ("emoji", lambda e: self._insert(e, self.rng.choice(["😀", "🇯🇵", "👍🏻", "\u200d"]))),
            ("sql", lambda e: self._insert(e, self.rng.choice(SQLISH))),
            ("odd-text", self._odd_text),
            ("huge-text", self._huge_text),
            ("json-bomb", self._json_bomb),
            ("deep-nesting", self._deep),
            ("long-id", self._long_id),
            ("missing", self._missing),
            ("extra", self._extra),
            ("odd-key", self._odd_key),
            ("dup-id", self._dup_id),
            ("source-shape", self._source_shape),
        ]

    def __call__(self) -> tuple[str, dict[str, Any]]:
        event = copy.deepcopy(self.rng.choice(self.fixtures))
        # Fixture events share one webhookEventId: give each mutant its own, or they would all
        # be one event to the inbox (and dup-id could not be told from the rest).
        event["webhookEventId"] = "FZ" + "".join(self.rng.choice(_CROCKFORD) for _ in range(24))
        labels = []
        for _ in range(1 if self.rng.random() < 0.7 else self.rng.randint(2, 3)):
            label, mutate = self.rng.choice(self.mutations)
            mutate(event)
            labels.append(label)
        if isinstance(event.get("webhookEventId"), str):
            self.used_ids.append(event["webhookEventId"])
        return "+".join(labels), event

    # ---- values -----------------------------------------------------------------------------------

    def wrong_value(self, current: Any) -> Any:
        """A JSON value of another type than current (NaN and Infinity included)."""
        candidates = [None, True, False, 0, -1, 1.5, 2**63, -(2**63) - 1, 10**30, float("nan"), float("inf"),
                      "", "x", "\ud800", [], [1, "a"], {}, {"a": 1}, _nest(40)]
        kind = type(current)
        return self.rng.choice([c for c in candidates if type(c) is not kind or current is None])

    def _paths_of(self, event: dict[str, Any], want: type | tuple[type, ...]) -> list[tuple[Any, ...]]:
        return [p for p in _paths(event) if isinstance(_get(event, p), want) and not isinstance(_get(event, p), bool)]

    # ---- mutations --------------------------------------------------------------------------------

    def _wrong_type(self, event: dict[str, Any]) -> None:
        path = self.rng.choice(_paths(event))
        _set(event, path, self.wrong_value(_get(event, path)))

    def _field_wrong_type(self, event: dict[str, Any]) -> None:
        path = self.rng.choice(self.FIELDS)
        if len(path) == 2 and not isinstance(event.get(path[0]), dict):
            event[path[0]] = {}
        current = event.get(path[0]) if len(path) == 1 else event[path[0]].get(path[1])
        _set(event, path, self.wrong_value(current))

    def _number_path(self, event: dict[str, Any]) -> tuple[Any, ...]:
        paths = self._paths_of(event, (int, float))
        return ("timestamp",) if self.rng.random() < 0.6 or not paths else self.rng.choice(paths)

    def _huge_int(self, event: dict[str, Any]) -> None:
        value = self.rng.choice([2**53, 2**63 - 1, 2**63, 2**64, 10**30, 10**300])
        _set(event, self._number_path(event), value)

    def _negative_int(self, event: dict[str, Any]) -> None:
        value = self.rng.choice([-1, -1462629479859, -(2**63), -(2**63) - 1, -(10**30)])
        _set(event, self._number_path(event), value)

    def _float(self, event: dict[str, Any]) -> None:
        value = self.rng.choice([1.5, 1462629479859.5, 1e308, -0.0, 5e-324, float("nan"), float("inf"), -float("inf")])
        _set(event, self._number_path(event), value)

    def _insert(self, event: dict[str, Any], piece: str) -> None:
        """Put piece into an id (most often), a free-text string, or a key."""
        where = self.rng.random()
        if where < 0.4:
            path = self.rng.choice([("webhookEventId",), ("replyToken",), ("source", "userId"), ("source", "groupId"),
                                    ("source", "roomId"), ("mode",), ("type",)])
            if len(path) == 2 and not isinstance(event.get("source"), dict):
                path = ("webhookEventId",)
            container = event if len(path) == 1 else event["source"]
            current = container.get(path[-1])
            _set(event, path, (current if isinstance(current, str) else "") + piece)
        elif where < 0.85:
            paths = self._paths_of(event, str) or [("extra",)]
            path = self.rng.choice(paths)
            current = _get(event, path) if path != ("extra",) else ""
            cut = self.rng.randint(0, len(current))
            _set(event, path, current[:cut] + piece + current[cut:])
        else:
            target = self._random_object(event)
            target[self.rng.choice(["", "k", "type"]) + piece] = piece

    def _odd_text(self, event: dict[str, Any]) -> None:
        paths = self._paths_of(event, str)
        if paths:
            _set(event, self.rng.choice(paths), self.rng.choice(ODD_TEXTS + SQLISH))

    def _huge_text(self, event: dict[str, Any]) -> None:
        text = self.rng.choice(["あ", "a", "😀", "ｱ"]) * 100_000
        if isinstance(event.get("message"), dict):
            event["message"]["text"] = text
        elif isinstance(event.get("postback"), dict):
            event["postback"]["data"] = text
        else:
            event["note"] = text

    def _json_bomb(self, event: dict[str, Any]) -> None:
        """Deeply nested JSON as text, where a handler might parse it (postback data) or not."""
        n = self.rng.choice([290, 301, 5_000, 100_000])
        bomb = self.rng.choice(["[" * n, '{"a":' * n, "[" * n + "]" * n])
        if self.rng.random() < 0.7:
            event["type"] = "postback"
            event["postback"] = {"data": bomb}
        elif isinstance(event.get("message"), dict):
            event["message"]["text"] = bomb
        else:
            event["note"] = bomb

    def _deep(self, event: dict[str, Any]) -> None:
        depth = self.rng.choice([33, 40, 100, 500])
        value = _nest(depth, self.rng.choice(["list", "dict"]))
        if self.rng.random() < 0.5 and isinstance(event.get("message"), dict):
            event["message"]["extra"] = value
        else:
            event[self.rng.choice(["deep", "source", "postback", "message"])] = value

    def _long_id(self, event: dict[str, Any]) -> None:
        n = self.rng.choice([129, 256, 1000, 100_000])
        field_name = self.rng.choice(["webhookEventId", "replyToken", "userId"])
        if field_name == "userId" and isinstance(event.get("source"), dict):
            event["source"]["userId"] = "U" + "a" * self.rng.choice([64, 65, 1000])
        else:
            event[field_name if field_name != "userId" else "webhookEventId"] = "A" * n

    def _missing(self, event: dict[str, Any]) -> None:
        paths = _paths(event)
        path = self.rng.choice([p for p in paths if len(p) == 1] if self.rng.random() < 0.5 else paths)
        parent = _get(event, path[:-1])
        del parent[path[-1]]

    def _random_object(self, event: dict[str, Any]) -> dict[str, Any]:
        objects = [event] + [_get(event, p) for p in _paths(event) if isinstance(_get(event, p), dict)]
        return self.rng.choice(objects)

    def _extra(self, event: dict[str, Any]) -> None:
        target = self._random_object(event)
        name = self.rng.choice(["futureField", "x" * 300, "isRedelivery", "__proto__", "constructor", "$where"])
        target[name] = self.rng.choice([None, 1, "新しい項目", [1, 2, 3], {"nested": {"deeper": True}}, _nest(20, "dict")])

    def _odd_key(self, event: dict[str, Any]) -> None:
        target = self._random_object(event)
        target[self.rng.choice(["", "\x00", "\ud800", "😀", "type\x00", "a" * 1000])] = "value"

    def _dup_id(self, event: dict[str, Any]) -> None:
        if self.used_ids:
            event["webhookEventId"] = self.rng.choice(self.used_ids)

    def _source_shape(self, event: dict[str, Any]) -> None:
        choice = self.rng.randrange(6)
        source = event.get("source") if isinstance(event.get("source"), dict) else {"type": "user", "userId": "U" + "b" * 32}
        if choice == 0:
            source["type"] = ["user"]
        elif choice == 1:
            source["type"] = {"user": True}
        elif choice == 2:
            source["userId"] = {"a": 1}
        elif choice == 3:
            source["userId"] = []
        elif choice == 4:
            source = self.rng.choice([[], "U1", 1, [{"type": "user"}]])
        else:
            source["type"] = self.rng.choice(["", "bot", "USER", "user\x00"])
        event["source"] = source


def poison_bodies() -> list[tuple[str, bytes]]:
    """Whole request bodies that are no webhook (each is answered 4xx or 200 with nothing stored)."""
    event = '{"type":"message","timestamp":1,"message":{"type":"text","text":"x"},"deep":%s}'
    return [
        ("nesting-5000", b"[" * 5000 + b"]" * 5000),
        ("nesting-600-events", b'{"events":' + b"[" * 600 + b"]" * 600 + b"}"),
        ("nesting-500-in-event", ('{"events":[' + event % ("[" * 500 + "]" * 500) + "]}").encode()),
        ("nesting-990-in-event", ('{"events":[' + event % ("{\"a\":" * 990 + "1" + "}" * 990) + "]}").encode()),
        ("not-utf8", b"\xff\xfe\xfd"),
        ("empty", b""),
        ("truncated", b'{"destination":"U1","events":[{"type":'),
        ("null", b"null"),
        ("number", b"1e400"),
        ("int-digits", b'{"events":[' + b"1" * 5000 + b"]}"),
        ("events-nan", b'{"events":[NaN, Infinity, -Infinity]}'),
        ("events-string", b'{"events":"\\ud800"}'),
        ("events-object", b'{"events":{"0":{"type":"follow"}}}'),
        ("nul-destination", b'{"destination":"\\u0000","events":[]}'),
        ("duplicate-keys", b'{"events":[],"events":"x"}'),
        ("utf16", '{"events":[]}'.encode("utf-16")),
    ]


# --------------------------------------------------------------------------------------------------
# Request bodies and the run
# --------------------------------------------------------------------------------------------------


@dataclass
class Recipe:
    """One request: poison events, good residents' texts (built when sent), or a raw body."""

    label: str
    poison: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    good: list[tuple[str, str]] = field(default_factory=list)  # (user id, text)
    raw: bytes | None = None
    position: int = 0  # where the good events go among the poison

    def body(self, fake: Any) -> bytes:
        """The bytes to post; good events get a fresh reply token from the fake platform."""
        if self.raw is not None:
            return self.raw
        events = [event for _label, event in self.poison]
        events[self.position:self.position] = [fake.text_event(u, t) for u, t in self.good]
        return encode_body({"destination": DESTINATION, "events": events})


def resident_ids(seed: int, count: int) -> list[str]:
    """Distinct, well-formed resident ids (none of them used by the poison)."""
    rng = random.Random(f"residents-{seed}")
    return ["U" + f"{rng.getrandbits(128):032x}" for _ in range(count)]


def recipes(seed: int, residents: int, poison_events: int, spec_share: float = 0.25,
            now_ms: int | None = None) -> Iterator[Recipe]:
    """The requests of one run, lazily (a long run never holds its 100k-character texts at once).

    Every resident sends one good text: alone, or in a body beside 1-4 poison events. The rest
    of the poison comes in bodies of 1-5 events; a quarter of all poison slots hold events
    generated from the spec instead (well-formed, of every type, from other users); one request
    in forty is a whole-body poison. A resident's body stays well below the 1 MB body limit (a
    413 would refuse the resident's question with the poison): poison that would make it larger
    goes in a body of its own.
    """
    rng = random.Random(seed)
    spec = SpecEvents(random.Random(f"spec-{seed}"), now_ms=now_ms)
    poison = Poison(random.Random(f"poison-{seed}"))
    bodies = poison_bodies()
    users = resident_ids(seed, residents)

    def one_poison() -> tuple[str, dict[str, Any]]:
        if rng.random() < spec_share:
            event = spec.event()
            return "spec-" + str(event["type"]), event
        return poison()

    left = poison_events
    pending_users = list(users)
    rng.shuffle(pending_users)
    while left > 0 or pending_users:
        if rng.random() < 1 / 40:
            label, raw = rng.choice(bodies)
            yield Recipe("body-" + label, raw=raw)
            continue
        share = (len(pending_users) / max(1, len(pending_users) + left // 3)) if left else 1.0
        if pending_users and rng.random() < share:
            user = pending_users.pop()
            count = min(left, rng.choice([0, 0, 1, 2, 4]))
            left -= count
            parts, overflow, size = [], [], 0
            for part in (one_poison() for _ in range(count)):
                size += len(encode_body(part[1]))
                (parts if size <= MIXED_BODY_BYTES else overflow).append(part)
            yield Recipe("mixed" if parts else "good", parts, [(user, rng.choice(GOOD_TEXTS))],
                         position=rng.randint(0, len(parts)))
            if overflow:
                yield Recipe("poison:" + ",".join(label for label, _ in overflow), overflow)
        else:
            count = min(left, rng.randint(1, 5))
            left -= count
            parts = [one_poison() for _ in range(count)]
            yield Recipe("poison:" + ",".join(label for label, _ in parts), parts)


@dataclass
class Report:
    """What a run came to; `problems()` is empty when nothing went wrong."""

    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)  # recipe labels answered 5xx
    good_refused: list[str] = field(default_factory=list)  # bodies with a good event not answered 200
    good_sent: int = 0
    answered_once: int = 0
    unanswered: list[str] = field(default_factory=list)
    answered_twice: list[str] = field(default_factory=list)
    acknowledged: int = 0  # "stored" summed over the 200 answers
    stored: int = 0
    done: int = 0
    failed: list[str] = field(default_factory=list)  # "event_type: last_error" of failed rows
    unfinished: list[str] = field(default_factory=list)  # rows neither done nor failed at the end
    skipped: int = 0
    seconds: float = 0.0

    @property
    def lost(self) -> int:
        """Acknowledged events that are not in the inbox, or never finished."""
        return max(0, self.acknowledged - self.stored) + len(self.unfinished)

    def problems(self) -> list[str]:
        out = []
        if self.server_errors:
            out.append(f"{len(self.server_errors)} answer(s) 5xx: {self.server_errors[:5]}")
        if self.good_refused:
            out.append(f"{len(self.good_refused)} body(ies) with a good event refused: {self.good_refused[:5]}")
        if self.unanswered:
            out.append(f"{len(self.unanswered)} good event(s) unanswered")
        if self.answered_twice:
            out.append(f"{len(self.answered_twice)} good event(s) answered more than once")
        if self.failed:
            out.append(f"{len(self.failed)} stored event(s) failed: {Counter(self.failed).most_common(5)}")
        if self.lost:
            out.append(f"{self.lost} event(s) lost (acknowledged {self.acknowledged}, stored {self.stored}, "
                       f"unfinished {Counter(self.unfinished).most_common(5)})")
        return out

    def summary(self) -> str:
        return (f"requests={self.requests} statuses={dict(sorted(self.statuses.items()))} 5xx={len(self.server_errors)} "
                f"good={self.good_sent} answered_once={self.answered_once} unanswered={len(self.unanswered)} "
                f"answered_twice={len(self.answered_twice)} stored={self.stored} done={self.done} skipped={self.skipped} "
                f"failed={len(self.failed)} lost={self.lost} seconds={self.seconds:.1f}")


def run(app: Any, fake: Any, plan: Iterator[Recipe], threads: int = 6, settle_seconds: float = 60.0,
        post: Callable[[Any, bytes], Any] | None = None) -> Report:
    """Post every recipe from `threads` threads (one test client each), wait until the inbox is
    settled and every good event answered, and report. `post(client, body)` signs and posts."""
    from sqlalchemy import select

    from bot.db import get_db
    from handlers.models import DONE, FAILED, InboxEvent

    def default_post(client: Any, body: bytes) -> Any:
        return client.post("/callback", data=body,
                           headers={"X-Line-Signature": fake.sign(body), "Content-Type": "application/json"})

    send = post or default_post
    report = Report()
    good_users: list[str] = []
    lock = threading.Lock()
    source = iter(plan)
    started = time.monotonic()

    def worker() -> None:
        client = app.test_client()
        while True:
            with lock:
                recipe = next(source, None)
            if recipe is None:
                return
            body = recipe.body(fake)
            try:
                response = send(client, body)
                status = response.status_code
            except Exception as exc:  # noqa: BLE001 - a test app propagates what would be a 500
                response, status = None, 500
                crash = type(exc).__name__
            answer = response.get_json(silent=True) if status == 200 and response is not None else None
            with lock:
                report.requests += 1
                report.statuses[status] += 1
                good_users.extend(u for u, _t in recipe.good)
                if status >= 500:
                    report.server_errors.append(recipe.label + (f" ({crash})" if response is None else ""))
                if recipe.good and status != 200:
                    report.good_refused.append(recipe.label)
                if isinstance(answer, dict):
                    report.acknowledged += int(answer.get("stored", 0))
                    report.skipped += int(answer.get("skipped", 0))

    pool = [threading.Thread(target=worker, name=f"fuzz-{i}") for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    report.good_sent = len(good_users)

    db = get_db(app)

    def rows() -> list[tuple[str, str, str | None]]:
        with db.session() as session:
            return list(session.execute(select(InboxEvent.status, InboxEvent.event_type, InboxEvent.last_error)))

    def answers() -> Counter:
        return Counter(user for d in list(fake.deliveries) for user in set(d.to))

    deadline = time.monotonic() + settle_seconds
    while time.monotonic() < deadline:
        settled = all(status in (DONE, FAILED) for status, _t, _e in rows())
        answered = answers()
        if settled and all(answered[u] for u in good_users):
            break
        time.sleep(0.05)
    time.sleep(0.3)  # a second answer to anyone would show up now
    answered = answers()
    final = rows()
    report.seconds = time.monotonic() - started
    report.stored = len(final)
    report.done = sum(status == DONE for status, _t, _e in final)
    report.failed = [f"{t}: {e}" for status, t, e in final if status == FAILED]
    report.unfinished = [f"{t}: {status} {e}" for status, t, e in final if status not in (DONE, FAILED)]
    report.answered_once = sum(answered[u] == 1 for u in good_users)
    report.unanswered = [u for u in good_users if answered[u] == 0]
    report.answered_twice = [u for u in good_users if answered[u] > 1]
    return report
