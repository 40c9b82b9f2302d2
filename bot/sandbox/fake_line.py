"""A fake LINE Messaging API platform (WSGI) that validates what the bot sends and sends signed webhooks to it."""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import hmac
import itertools
import json
import logging
import os
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.exceptions import BadRequest
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.wrappers import Request

log = logging.getLogger(__name__)

# Bot user ids are "U" + 32 lowercase hex digits; webhook.yml checks `destination` against that pattern,
# so the default must satisfy it.
DEFAULT_DESTINATION = "Ufa4eb070000000000000000000000000"
RETRY_KEY_TTL = 24 * 3600.0  # LINE remembers an accepted X-Line-Retry-Key for 24 hours.
MAX_MESSAGES = 5
MAX_TEXT_UTF16 = 5000
MAX_MULTICAST = 500
MAX_QUICK_REPLY_ITEMS = 13
MAX_RICHMENU_AREAS = 20
MAX_RICHMENU_IMAGE_BYTES = 1024 * 1024
FAULT_ENDPOINTS = frozenset(
    {"reply", "push", "multicast", "profile", "loading", "richmenu", "info", "webhook", "quota", "content", "insight", "*"}
)
WEBHOOK_TEST_TIMEOUT = 10.0  # how long the webhook test waits for the bot's answer
# Insight statistics the fake derives from what it delivered under an aggregation unit: this share
# of the unit's distinct recipients opened the message, this share clicked its first link (half as
# many the second, ...); LINE reports null for a value under 20 (INSIGHT_HIDDEN_BELOW).
INSIGHT_OPEN_SHARE = 0.6
INSIGHT_CLICK_SHARE = 0.25
INSIGHT_HIDDEN_BELOW = 20
INSIGHT_MAX_DAYS = 30  # `to` may be at most 30 days after `from`
_URL_RE = re.compile(r"https?://[^\s\"'<>]+")
# Images a user "sends" through the control API (the simulator): these types, this size at most
# (the fake's own limit, not LINE's); the bytes of the last MAX_KEPT_CONTENTS images are served.
IMAGE_SIGNATURES = {"image/jpeg": b"\xff\xd8\xff", "image/png": b"\x89PNG\r\n\x1a\n"}
MAX_CONTROL_IMAGE_BYTES = 10 * 1024 * 1024
MAX_KEPT_CONTENTS = 200
MAX_LOCATION_TEXT = 100  # a location's title and address (LINE's limit when a bot sends one)

# Used when the spec directory is missing, and for LINE-style messages when it is present.
MESSAGE_TYPES = frozenset(
    {"text", "textV2", "sticker", "image", "video", "audio", "location", "imagemap", "template", "flex", "coupon"}
)
ACTION_TYPES = frozenset(
    {"camera", "cameraRoll", "clipboard", "datetimepicker", "location", "message", "postback", "richmenuswitch", "uri"}
)
# Message types LINE returns a quoteToken for in sentMessages.
QUOTABLE_TYPES = frozenset({"text", "textV2", "sticker", "image", "video"})

# Operation -> request body schema in messaging-api.yml.
REQUEST_SCHEMAS = {
    "reply": "ReplyMessageRequest",
    "push": "PushMessageRequest",
    "multicast": "MulticastRequest",
    "loading": "ShowLoadingAnimationRequest",
    "richmenu_create": "RichMenuRequest",
    "richmenu_validate": "RichMenuRequest",
    "webhook_set": "SetWebhookEndpointRequest",
    "webhook_test": "TestWebhookEndpointRequest",
}
# Operations whose request body is optional (an empty body is not validated).
OPTIONAL_BODY = frozenset({"webhook_test"})

_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_REQUIRED_RE = re.compile(r"^'(.+)' is a required property$")
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_SCHEMA_PREFIX = "#/components/schemas/"
_BASE_SUFFIX = "~base"  # suffix of a discriminated base schema with its discriminator removed

_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once: json.dumps with options builds one per call
ErrorList = list[tuple[str, str]]  # (property, message), LINE's "details" entries


# --------------------------------------------------------------------------------------------------
# Schema validation
# --------------------------------------------------------------------------------------------------


def _schema_name(ref: str) -> str:
    """Return the component name of a local '#/components/schemas/X' reference."""
    if not ref.startswith(_SCHEMA_PREFIX):
        raise ValueError(f"unsupported $ref {ref!r}")
    return ref[len(_SCHEMA_PREFIX) :]


def _property_path(parts: Iterable[Any]) -> str:
    """Render a JSON path the way LINE does: messages[0].quickReply.items[2].action."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _join(base: str, key: str) -> str:
    """Append a property name to a LINE-style path."""
    return f"{base}.{key}" if base else key


Check = Callable[[Any, tuple[Any, ...], list[tuple[tuple[Any, ...], str]]], None]
_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_DATE_TIME_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"
)
# Keys that carry no validation meaning for a request body.
_ANNOTATIONS = frozenset(
    {"description", "externalDocs", "example", "examples", "default", "title", "readOnly", "writeOnly",
     "deprecated", "xml", "discriminator", "x-enum-varnames", "x-enum-descriptions"}
)
_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
}


class SpecValidator:
    """Validates instances against named component schemas of an OpenAPI 3.0 document, discriminators included.

    openapi-core and OAS30Validator ignore `discriminator` on plain `$ref`s, so every reference to a
    discriminated base schema is rewritten into an `x-dispatch` keyword that picks the mapped subschema by
    the discriminator property. Inside a subschema's own `allOf`, the reference back to its base becomes the
    base without its discriminator, or dispatch would loop forever.

    The rewritten schemas are compiled once into plain Python closures (`errors`): jsonschema's generic
    descent costs ~0.1-0.5 ms per message, too much at hundreds of requests per second. `reference_errors`
    runs the same rewritten schemas through openapi-schema-validator's OAS30Validator, so tests can check
    that the compiled path agrees with it.
    """

    def __init__(self, document: dict[str, Any]) -> None:
        """Rewrite the document's component schemas and compile each one."""
        raw: dict[str, Any] = document.get("components", {}).get("schemas", {})
        self.discriminators: dict[str, tuple[str, dict[str, str]]] = {}
        for name, schema in raw.items():
            disc = schema.get("discriminator") if isinstance(schema, dict) else None
            if disc and disc.get("mapping"):
                mapping = {key: _schema_name(ref) for key, ref in disc["mapping"].items()}
                self.discriminators[name] = (disc["propertyName"], mapping)
        self._children = {base: set(mapping.values()) for base, (_, mapping) in self.discriminators.items()}
        # A direct $ref to a mapped subschema (FlexCarousel.contents -> FlexBubble) still implies its
        # discriminator value; the spec cannot say so, LINE checks it.
        self._implied: dict[str, tuple[str, list[str]]] = {}
        for prop, mapping in self.discriminators.values():
            for key, target in mapping.items():
                self._implied.setdefault(target, (prop, []))[1].append(key)
        self.schemas: dict[str, Any] = {}
        for name, schema in raw.items():
            self.schemas[name] = self._rewrite_top(name, schema)
        for base in self.discriminators:
            plain = {k: v for k, v in raw[base].items() if k != "discriminator"}
            self.schemas[base + _BASE_SUFFIX] = self._rewrite(plain)
        self._compiled: dict[str, Check] = {}
        for name, schema in self.schemas.items():
            self._compiled[name] = self._compile(schema)
        # Validating a discriminated schema as the root means dispatching on it.
        self._roots = {name: self._compile_dispatch(name) for name in self.discriminators}
        self._reference: dict[str, Any] = {}

    @classmethod
    def from_file(cls, path: str | Path) -> SpecValidator:
        """Load (once per path and mtime) and prepare a YAML OpenAPI document."""
        resolved = Path(path).resolve()
        return _load_spec_validator(str(resolved), resolved.stat().st_mtime)

    # ---- rewriting --------------------------------------------------------------------------------

    def _rewrite_top(self, owner: str, schema: Any) -> Any:
        """Rewrite one component schema; its own allOf may point back at its discriminated base."""
        if not isinstance(schema, dict) or "allOf" not in schema:
            return self._rewrite(schema)
        out = self._rewrite({k: v for k, v in schema.items() if k != "allOf"})
        items = []
        for item in schema["allOf"]:
            ref = item.get("$ref") if isinstance(item, dict) else None
            if ref and owner in self._children.get(_schema_name(ref), ()):
                items.append({"x-ref": _schema_name(ref) + _BASE_SUFFIX})
            else:
                items.append(self._rewrite(item))
        out["allOf"] = items
        return out

    def _rewrite(self, node: Any) -> Any:
        """Replace $ref by x-ref / x-dispatch and drop annotations."""
        if isinstance(node, list):
            return [self._rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        if "$ref" in node:
            # OAS 3.0: siblings of $ref are ignored.
            name = _schema_name(node["$ref"])
            return {"x-dispatch": name} if name in self.discriminators else {"x-ref": name}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _ANNOTATIONS:
                continue
            if key == "properties" and isinstance(value, dict):
                # Property names are data, not keywords: never filter them.
                out[key] = {prop: self._rewrite(sub) for prop, sub in value.items()}
            elif key in ("enum", "required"):
                out[key] = value
            else:
                out[key] = self._rewrite(value)
        return out

    # ---- compiled fast path -----------------------------------------------------------------------

    def _compile(self, schema: Any) -> Check:
        """Compile one rewritten schema into a closure appending (path, message) to an error list."""
        if schema is True or schema == {}:
            return _accept
        if not isinstance(schema, dict):
            raise ValueError(f"unsupported schema {schema!r}")
        checks: list[Check] = []
        compiled = self._compiled
        unknown = set(schema) - {
            "type", "nullable", "format", "enum", "properties", "required", "additionalProperties", "items",
            "allOf", "anyOf", "oneOf", "maxLength", "minLength", "maxItems", "minItems", "maximum", "minimum",
            "exclusiveMaximum", "exclusiveMinimum", "pattern", "uniqueItems", "x-ref", "x-dispatch",
        }
        if unknown:
            raise ValueError(f"unsupported schema keywords {sorted(unknown)}")

        if "x-ref" in schema:
            name = schema["x-ref"]
            checks.append(lambda v, p, e: compiled[name](v, p, e))
            if name in self._implied:
                checks.append(_compile_implied(name, *self._implied[name]))
        if "x-dispatch" in schema:
            checks.append(self._compile_dispatch(schema["x-dispatch"]))
        if "enum" in schema:
            allowed = list(schema["enum"])
            text = f"must be one of: {', '.join(map(str, allowed))}"

            def check_enum(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
                if v not in allowed:
                    e.append((p, text))

            checks.append(check_enum)
        if "format" in schema:
            checks.append(_compile_format(schema["format"]))
        if "pattern" in schema:
            regex = re.compile(schema["pattern"])
            text = f"must match {schema['pattern']}"

            def check_pattern(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
                if isinstance(v, str) and not regex.search(v):
                    e.append((p, text))

            checks.append(check_pattern)
        if "maxLength" in schema or "minLength" in schema:
            lo, hi = schema.get("minLength", 0), schema.get("maxLength")
            text = f"Length must be between {lo} and {hi if hi is not None else 'unbounded'}"

            def check_length(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
                if isinstance(v, str) and (len(v) < lo or (hi is not None and len(v) > hi)):
                    e.append((p, text))

            checks.append(check_length)
        if "maxItems" in schema or "minItems" in schema:
            lo_items, hi_items = schema.get("minItems", 0), schema.get("maxItems")
            text = f"Size must be between {lo_items} and {hi_items if hi_items is not None else 'unbounded'}"

            def check_size(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
                if isinstance(v, list) and (len(v) < lo_items or (hi_items is not None and len(v) > hi_items)):
                    e.append((p, text))

            checks.append(check_size)
        if "maximum" in schema or "minimum" in schema:
            checks.append(_compile_range(schema))
        if "uniqueItems" in schema and schema["uniqueItems"]:

            def check_unique(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
                if isinstance(v, list) and len({json.dumps(x, sort_keys=True) for x in v}) != len(v):
                    e.append((p, "must not contain duplicates"))

            checks.append(check_unique)
        if "required" in schema:
            required = list(schema["required"])

            def check_required(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
                if isinstance(v, dict):
                    for key in required:
                        if key not in v:
                            e.append((p + (key,), "must be specified"))

            checks.append(check_required)
        if "properties" in schema or "additionalProperties" in schema:
            props = {key: self._compile(sub) for key, sub in schema.get("properties", {}).items()}
            extra_schema = schema.get("additionalProperties", True)
            extra: Check | None = None if extra_schema is True else (
                _reject_extra if extra_schema is False else self._compile(extra_schema)
            )

            def check_properties(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
                if isinstance(v, dict):
                    for key, value in v.items():
                        check = props.get(key, extra)
                        if check is not None:
                            check(value, p + (key,), e)

            checks.append(check_properties)
        if "items" in schema:
            item_check = self._compile(schema["items"])

            def check_items(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
                if isinstance(v, list):
                    for index, item in enumerate(v):
                        item_check(item, p + (index,), e)

            checks.append(check_items)
        if "allOf" in schema:
            checks.extend(self._compile(sub) for sub in schema["allOf"])
        for keyword in ("anyOf", "oneOf"):
            if keyword in schema:
                checks.append(_compile_alternatives(keyword, [self._compile(sub) for sub in schema[keyword]]))

        type_name = schema.get("type")
        type_test = _TYPE_TESTS.get(type_name) if type_name else None
        if type_name and type_test is None:
            raise ValueError(f"unsupported type {type_name!r}")
        nullable = bool(schema.get("nullable", False))
        type_text = f"must be of type {type_name}"
        if len(checks) == 1 and type_test is None and not nullable:
            return checks[0]

        def run(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
            if v is None and nullable:
                return
            if type_test is not None and not type_test(v):
                e.append((p, type_text))
                return
            for check in checks:
                check(v, p, e)

        return run

    def _compile_dispatch(self, base: str) -> Check:
        """A check that validates against the subschema the discriminator value maps to."""
        prop, mapping = self.discriminators[base]
        compiled = self._compiled
        allowed = ", ".join(sorted(mapping))

        def dispatch(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
            if not isinstance(v, dict):
                e.append((p, "must be of type object"))
                return
            value = v.get(prop)
            if value is None:
                e.append((p + (prop,), "must be specified"))
                return
            target = mapping.get(value) if isinstance(value, str) else None
            if target is None:
                e.append((p + (prop,), f"invalid {base} {prop} {str(value)[:40]!r}; must be one of: {allowed}"))
                return
            compiled[target](v, p, e)

        return dispatch

    def errors(self, name: str, instance: Any) -> ErrorList:
        """Return sorted LINE-style (property, message) pairs for everything wrong with instance."""
        root = self._roots.get(name) or self._compiled.get(name)
        if root is None:
            raise KeyError(f"unknown schema {name!r}")
        found: list[tuple[tuple[Any, ...], str]] = []
        root(instance, (), found)
        return sorted({(_property_path(path), message) for path, message in found})

    def is_valid(self, name: str, instance: Any) -> bool:
        """Tell whether instance satisfies the named schema."""
        return not self.errors(name, instance)

    # ---- reference path (jsonschema) --------------------------------------------------------------

    def reference_errors(self, name: str, instance: Any) -> ErrorList:
        """The same validation run by openapi-schema-validator's OAS30Validator (slow; for cross-checks)."""
        validator = self._reference.get(name)
        if validator is None:
            # Imported lazily: only tests need it, and jsonschema's import is not free.
            from jsonschema.validators import extend
            from openapi_schema_validator import OAS30Validator

            from jsonschema.exceptions import ValidationError

            schemas = self.schemas
            discriminators = self.discriminators
            implied = self._implied

            def kw_ref(validator: Any, target: str, inst: Any, schema: Any) -> Iterable[Any]:
                if target in implied and isinstance(inst, dict):
                    prop, keys = implied[target]
                    if prop in inst and inst[prop] not in keys:
                        yield ValidationError(f"must be one of {keys}", path=[prop])
                yield from validator.descend(inst, schemas[target])

            def kw_dispatch(validator: Any, base: str, inst: Any, schema: Any) -> Iterable[Any]:
                prop, mapping = discriminators[base]
                if not isinstance(inst, dict):
                    yield ValidationError("must be of type object")
                    return
                value = inst.get(prop)
                target = mapping.get(value) if isinstance(value, str) else None
                if target is None:
                    message = "must be specified" if value is None else f"invalid {base} {prop}"
                    yield ValidationError(message, path=[prop])
                    return
                yield from validator.descend(inst, schemas[target])

            cls = extend(OAS30Validator, {"x-ref": kw_ref, "x-dispatch": kw_dispatch})
            root = {"x-dispatch": name} if name in discriminators else {"x-ref": name}
            validator = self._reference[name] = cls(root, format_checker=cls.FORMAT_CHECKER)
        found = set()
        for error in validator.iter_errors(instance):
            path = _property_path(error.absolute_path)
            match = _REQUIRED_RE.match(error.message) if error.validator == "required" else None
            found.add((_join(path, match.group(1)) if match else path, error.message[:200]))
        return sorted(found)


def _accept(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
    """The check for an empty schema."""


def _reject_extra(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
    """The check for a property additionalProperties: false forbids."""
    e.append((p, "is not allowed"))


def _compile_implied(name: str, prop: str, keys: list[str]) -> Check:
    """Check that an object referenced as a specific subschema carries that subschema's discriminator value."""
    text = f"must be {' or '.join(keys)} here ({name})"

    def check_implied(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
        if isinstance(v, dict) and prop in v and v[prop] not in keys:
            e.append((p + (prop,), text))

    return check_implied


def _compile_format(fmt: str) -> Check:
    """Checks for the OpenAPI formats the LINE specs use; unknown formats (uri, ...) are annotations."""
    if fmt in ("int32", "int64"):
        lo, hi = _INT32 if fmt == "int32" else _INT64
        text = f"must be a {fmt}"

        def check_int(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
            if isinstance(v, int) and not isinstance(v, bool) and not lo <= v <= hi:
                e.append((p, text))

        return check_int
    if fmt == "date-time":

        def check_date_time(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
            if isinstance(v, str) and not _DATE_TIME_RE.match(v):
                e.append((p, "must be an RFC 3339 date-time"))

        return check_date_time
    return _accept


def _compile_range(schema: dict[str, Any]) -> Check:
    """minimum / maximum with OAS 3.0's boolean exclusive flags."""
    lo, hi = schema.get("minimum"), schema.get("maximum")
    lo_ex, hi_ex = bool(schema.get("exclusiveMinimum")), bool(schema.get("exclusiveMaximum"))
    text = f"must be between {lo if lo is not None else '-inf'} and {hi if hi is not None else 'inf'}"

    def check_range(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if lo is not None and (v < lo or (lo_ex and v == lo)):
                e.append((p, text))
            elif hi is not None and (v > hi or (hi_ex and v == hi)):
                e.append((p, text))

    return check_range


def _compile_alternatives(keyword: str, options: list[Check]) -> Check:
    """anyOf / oneOf: unused by the LINE specs today, supported so a spec update keeps validating."""

    def check_alternatives(v: Any, p: tuple[Any, ...], e: list[Any]) -> None:
        passing = 0
        for option in options:
            sub: list[Any] = []
            option(v, p, sub)
            passing += not sub
        if passing == 0 or (keyword == "oneOf" and passing > 1):
            e.append((p, f"must match {'exactly one' if keyword == 'oneOf' else 'at least one'} of the allowed schemas"))

    return check_alternatives


@functools.lru_cache(maxsize=16)
def _load_spec_validator(path: str, mtime: float) -> SpecValidator:
    """Parse the YAML once; tests create many platforms and YAML parsing is the slow part."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open(path, encoding="utf-8") as fh:
        return SpecValidator(yaml.load(fh, Loader=loader))  # noqa: S506 - a safe loader


# --------------------------------------------------------------------------------------------------
# Rules LINE enforces beyond (or instead of) the spec; they also run when the spec is missing.
# --------------------------------------------------------------------------------------------------


def _utf16_len(text: str) -> int:
    """Count UTF-16 code units, the unit LINE's 5000-character limit is measured in."""
    return len(text.encode("utf-16-le")) // 2


def check_line_rules(operation: str, body: Any) -> ErrorList:
    """Return violations of LINE's documented limits for one operation's request body."""
    errors: ErrorList = []
    if not isinstance(body, dict):
        return [("", "The request body must be a JSON object")]
    if operation in ("reply", "push", "multicast"):
        messages = body.get("messages")
        if messages is None:
            errors.append(("messages", "must be specified"))
        elif not isinstance(messages, list) or not 1 <= len(messages) <= MAX_MESSAGES:
            errors.append(("messages", f"Size must be between 1 and {MAX_MESSAGES}"))
        else:
            for index, message in enumerate(messages):
                _check_message(message, f"messages[{index}]", errors)
        if operation == "reply" and not (isinstance(body.get("replyToken"), str) and body["replyToken"]):
            errors.append(("replyToken", "must be specified"))
        if operation == "push" and not (isinstance(body.get("to"), str) and body["to"]):
            errors.append(("to", "must be specified"))
        if operation == "multicast":
            to = body.get("to")
            if not isinstance(to, list) or not 1 <= len(to) <= MAX_MULTICAST:
                errors.append(("to", f"Size must be between 1 and {MAX_MULTICAST}"))
            elif not all(isinstance(user, str) and user for user in to):
                errors.append(("to", "must be a list of user IDs"))
    elif operation == "loading":
        if not (isinstance(body.get("chatId"), str) and body["chatId"]):
            errors.append(("chatId", "must be specified"))
        seconds = body.get("loadingSeconds")
        if seconds is not None and not (isinstance(seconds, int) and 5 <= seconds <= 60 and seconds % 5 == 0):
            errors.append(("loadingSeconds", "must be a multiple of 5 between 5 and 60"))
    elif operation in ("richmenu_create", "richmenu_validate"):
        # The spec marks nothing required, but LINE rejects a rich menu without these.
        for key in ("size", "selected", "name", "chatBarText", "areas"):
            if key not in body:
                errors.append((key, "must be specified"))
        areas = body.get("areas")
        if isinstance(areas, list):
            if len(areas) > MAX_RICHMENU_AREAS:
                errors.append(("areas", f"Size must be between 0 and {MAX_RICHMENU_AREAS}"))
            for index, area in enumerate(areas):
                path = f"areas[{index}]"
                if not isinstance(area, dict):
                    errors.append((path, "must be an object"))
                    continue
                for key in ("bounds", "action"):
                    if key not in area:
                        errors.append((_join(path, key), "must be specified"))
                if isinstance(area.get("action"), dict):
                    _check_action(area["action"], _join(path, "action"), 20, errors, label_required=False)
    return errors


def _check_message(message: Any, path: str, errors: ErrorList) -> None:
    """Check one message object: type, text length, quick reply and action labels."""
    if not isinstance(message, dict):
        errors.append((path, "must be an object"))
        return
    kind = message.get("type")
    if kind is None:
        errors.append((_join(path, "type"), "must be specified"))
        return
    if kind not in MESSAGE_TYPES:
        errors.append((_join(path, "type"), f"invalid message type {str(kind)[:40]!r}; must be one of: {', '.join(sorted(MESSAGE_TYPES))}"))
        return
    if kind in ("text", "textV2"):
        text = message.get("text")
        if not isinstance(text, str) or text == "":
            errors.append((_join(path, "text"), "must be specified"))
        elif _utf16_len(text) > MAX_TEXT_UTF16:
            errors.append((_join(path, "text"), f"Length must be between 1 and {MAX_TEXT_UTF16}"))
    quick_reply = message.get("quickReply")
    if quick_reply is not None:
        qr_path = _join(path, "quickReply")
        items = quick_reply.get("items") if isinstance(quick_reply, dict) else None
        if not isinstance(items, list) or not 1 <= len(items) <= MAX_QUICK_REPLY_ITEMS:
            errors.append((_join(qr_path, "items"), f"Size must be between 1 and {MAX_QUICK_REPLY_ITEMS}"))
        else:
            for index, item in enumerate(items):
                item_path = f"{qr_path}.items[{index}]"
                action = item.get("action") if isinstance(item, dict) else None
                if not isinstance(action, dict):
                    errors.append((_join(item_path, "action"), "must be specified"))
                else:
                    # A quick reply button shows its label, so LINE requires one.
                    _check_action(action, _join(item_path, "action"), 20, errors, label_required=True)
    if kind == "imagemap":
        return  # imagemap actions are a different object with their own limits
    if kind == "flex":
        limit = 40  # a flex button's label may be up to 40 characters
    elif kind == "template" and isinstance(message.get("template"), dict) and message["template"].get("type") == "image_carousel":
        limit = 12
    else:
        limit = 20
    for key, value in message.items():
        if key != "quickReply" and isinstance(value, (dict, list)):
            _walk_actions(value, _join(path, key), limit, errors)


def _walk_actions(node: Any, path: str, limit: int, errors: ErrorList) -> None:
    """Find action objects (under action / defaultAction / actions) anywhere below node and check them."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            _walk_actions(item, f"{path}[{index}]", limit, errors)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        sub = _join(path, key)
        if key in ("action", "defaultAction") and isinstance(value, dict):
            _check_action(value, sub, limit, errors, label_required=False)
        elif key == "actions" and isinstance(value, list):
            for index, action in enumerate(value):
                if isinstance(action, dict):
                    _check_action(action, f"{sub}[{index}]", limit, errors, label_required=False)
        elif isinstance(value, (dict, list)):
            _walk_actions(value, sub, limit, errors)


def _check_action(action: dict[str, Any], path: str, limit: int, errors: ErrorList, *, label_required: bool) -> None:
    """Check an action's type and label length."""
    kind = action.get("type")
    if kind not in ACTION_TYPES:
        message = "must be specified" if kind is None else f"invalid action type {str(kind)[:40]!r}"
        errors.append((_join(path, "type"), message))
    label = action.get("label")
    if label is None:
        if label_required:
            errors.append((_join(path, "label"), "must be specified"))
    elif isinstance(label, str) and not 1 <= len(label) <= limit:
        errors.append((_join(path, "label"), f"Length must be between 1 and {limit}"))


# --------------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One accepted reply / push / multicast call."""

    kind: str
    to: list[str]
    messages: list[dict[str, Any]]
    request_id: str
    retry_key: str | None
    at: float
    reply_token: str | None = None  # for replies: the token used (benchmarks match replies to events by it)
    aggregation_unit: str | None = None  # push / multicast: the customAggregationUnits name, if any

    def as_dict(self) -> dict[str, Any]:
        """Serialise for the control API."""
        return asdict(self)


@dataclass
class RecordedRequest:
    """One Messaging API request as received, with the status the fake answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    status: int
    request_id: str = ""
    errors: list[dict[str, str]] = field(default_factory=list)
    at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """Serialise for the control API."""
        return asdict(self)


@dataclass
class _Fault:
    """An injected failure waiting to hit matching requests."""

    endpoint: str
    status: int | str
    remaining: int
    hang_seconds: float


@dataclass
class _IssuedToken:
    """A reply token handed out with a webhook event."""

    user_id: str
    issued_at: float


@dataclass
class _AcceptedRetry:
    """The first accepted request for an X-Line-Retry-Key."""

    request_id: str
    sent_messages: list[dict[str, str]] | None
    at: float


@dataclass
class ServedFake:
    """A FakeLinePlatform served on loopback by a background werkzeug server."""

    url: str
    port: int
    platform: FakeLinePlatform
    server: BaseWSGIServer
    thread: threading.Thread

    def stop(self) -> None:
        """Stop serving and release the port; wakes requests stuck in a 'hang' fault."""
        self.platform._wake_hanging()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class _Reply:
    """A response: raw WSGI (status, headers, body), cheaper than building werkzeug Response objects."""

    status: int
    body: bytes
    headers: list[tuple[str, str]]
    invalid: bool = False  # the request body was malformed in a way the schema does not cover

    def send(self, request_id: str, start_response: Callable[..., Any]) -> list[bytes]:
        """Start the WSGI response with LINE's request id header."""
        self.headers.append(("x-line-request-id", request_id))
        self.headers.append(("Content-Length", str(len(self.body))))
        start_response(f"{self.status} {HTTP_STATUS_CODES.get(self.status, 'Unknown')}", self.headers)
        return [self.body]


class _QuietHandler(WSGIRequestHandler):
    """Request handler without per-request access logging (it costs time at hundreds of requests/s)."""

    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's urllib3 pool expects

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """Skip the access log."""


# --------------------------------------------------------------------------------------------------
# The platform
# --------------------------------------------------------------------------------------------------

# (path pattern, {method: endpoint}); "{name}" is one path segment. A hand-rolled table instead of
# werkzeug.routing: Map.bind_to_environ + match cost more than the whole operation at hundreds of requests/s.
_ROUTE_TABLE: list[tuple[str, dict[str, str]]] = [
    ("/v2/bot/message/reply", {"POST": "reply"}),
    ("/v2/bot/message/push", {"POST": "push"}),
    ("/v2/bot/message/multicast", {"POST": "multicast"}),
    ("/v2/bot/profile/{user_id}", {"GET": "profile"}),
    ("/v2/bot/message/{message_id}/content", {"GET": "content"}),
    ("/v2/bot/chat/loading/start", {"POST": "loading"}),
    ("/v2/bot/richmenu", {"POST": "richmenu_create"}),
    ("/v2/bot/richmenu/validate", {"POST": "richmenu_validate"}),
    ("/v2/bot/richmenu/list", {"GET": "richmenu_list"}),
    ("/v2/bot/richmenu/{rich_menu_id}", {"GET": "richmenu_get", "DELETE": "richmenu_delete"}),
    ("/v2/bot/richmenu/{rich_menu_id}/content", {"POST": "richmenu_upload", "GET": "richmenu_download"}),
    ("/v2/bot/user/all/richmenu/{rich_menu_id}", {"POST": "richmenu_set_default"}),
    ("/v2/bot/user/all/richmenu", {"GET": "richmenu_get_default", "DELETE": "richmenu_cancel_default"}),
    ("/_fake/deliveries", {"GET": "fake_deliveries"}),
    ("/_fake/events/{kind}", {"POST": "fake_event"}),
    ("/_fake/faults", {"GET": "fake_faults", "POST": "fake_faults", "DELETE": "fake_faults"}),
    ("/_fake/invalid", {"GET": "fake_invalid"}),
    ("/_fake/reset", {"POST": "fake_reset"}),
    ("/_fake/reply-tokens", {"POST": "fake_reply_tokens"}),
    ("/_fake/stats", {"GET": "fake_stats"}),
    ("/_fake/channel", {"GET": "fake_channel", "POST": "fake_channel"}),
    ("/v2/bot/info", {"GET": "info"}),
    ("/v2/bot/channel/webhook/endpoint", {"GET": "webhook_get", "PUT": "webhook_set"}),
    ("/v2/bot/channel/webhook/test", {"POST": "webhook_test"}),
    ("/v2/bot/message/quota", {"GET": "quota"}),
    ("/v2/bot/message/quota/consumption", {"GET": "quota_consumption"}),
    ("/v2/bot/insight/message/event/aggregation", {"GET": "insight_unit"}),
    ("/v2/bot/insight/followers", {"GET": "insight_followers"}),
]
_STATIC_ROUTES = {path: methods for path, methods in _ROUTE_TABLE if "{" not in path}
_DYNAMIC_ROUTES = [
    (re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$"), methods)
    for path, methods in _ROUTE_TABLE
    if "{" in path
]


def _route(method: str, path: str) -> tuple[str, dict[str, str]] | int:
    """Return (endpoint, path args), or 404 / 405."""
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    methods = _STATIC_ROUTES.get(path)
    args: dict[str, str] = {}
    if methods is None:
        for pattern, candidate in _DYNAMIC_ROUTES:
            match = pattern.match(path)
            if match:
                methods, args = candidate, match.groupdict()
                break
        else:
            return 404
    endpoint = methods.get(method)
    return (endpoint, args) if endpoint else 405


def _fault_group(endpoint: str) -> str:
    """Map a routed endpoint to the name fail() uses for it."""
    if endpoint.startswith("richmenu"):
        return "richmenu"
    if endpoint.startswith(("webhook", "quota", "insight")):
        return endpoint.split("_")[0]
    return endpoint


def _ulid() -> str:
    """Return a ULID-shaped id (26 Crockford base32 chars: 48-bit ms time + 80 random bits)."""
    value = (int(time.time() * 1000) << 80) | secrets.randbits(80)
    chars = []
    for _ in range(26):
        chars.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def _default_spec_dir() -> Path:
    """LINE_OPENAPI_DIR, else ../shared/line-openapi beside the repository root."""
    env = os.environ.get("LINE_OPENAPI_DIR")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2].parent / "shared" / "line-openapi"


class FakeLinePlatform:
    """A loopback stand-in for LINE: Messaging API endpoints, fault injection and signed webhooks."""

    def __init__(
        self,
        channel_secret: str,
        spec_dir: str | Path | None = None,
        webhook_url: str | None = None,
        reply_token_ttl: float = 60.0,
        destination: str = DEFAULT_DESTINATION,
    ) -> None:
        """Load the spec (once per process) and start with empty state."""
        self.channel_secret = channel_secret
        self.webhook_url = webhook_url
        self.reply_token_ttl = reply_token_ttl
        self.destination = destination
        self.spec_dir = Path(spec_dir) if spec_dir is not None else _default_spec_dir()
        spec_file = self.spec_dir / "messaging-api.yml"
        self.spec: SpecValidator | None
        if spec_file.is_file():
            self.spec = SpecValidator.from_file(spec_file)
        else:
            log.warning("LINE OpenAPI spec not found at %s; validating LINE's limits only", spec_file)
            self.spec = None
        insight_file = self.spec_dir / "insight.yml"
        self.insight_spec: SpecValidator | None = SpecValidator.from_file(insight_file) if insight_file.is_file() else None
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._message_ids = itertools.count(int(time.time() * 1000) * 100_000)
        self._http = threading.local()
        self.bot_basic_id = "@fakeline"
        self.bot_display_name = "疑似LINE（テスト用）"
        self.webhook_test_timeout = WEBHOOK_TEST_TIMEOUT
        self._init_state()

    def _init_state(self) -> None:
        """(Re)create every piece of mutable state."""
        self.deliveries: list[Delivery] = []
        self.requests: list[RecordedRequest] = []
        self.invalid: list[RecordedRequest] = []
        self._by_user: dict[str, list[dict[str, Any]]] = {}
        self._faults: list[_Fault] = []
        self._reply_tokens: dict[str, _IssuedToken] = {}
        self._retry_keys: dict[str, _AcceptedRetry] = {}
        self._rich_menus: dict[str, dict[str, Any]] = {}
        self._rich_menu_images: dict[str, tuple[str, bytes]] = {}
        self._default_rich_menu: str | None = None
        self._contents: dict[str, tuple[str, bytes]] = {}  # message id -> (content type, bytes) of sent images
        self._stats: dict[str, dict[str, int]] = {}
        # The channel's settings as LINE keeps them (the webhook URL itself is self.webhook_url).
        self.webhook_active = True
        self._quota_limit: int | None = None  # None: quota type "none"
        self._quota_used_before = 0  # messages counted before this platform started (set_quota)
        self._revoked_tokens: set[str] = set()
        # Insight: who ever followed and who blocks now (from the follow / unfollow events made
        # here), and the shares of recipients counted as opening the message and clicking a link.
        self._followed: set[str] = set()
        self._blocking: set[str] = set()
        self.insight_open_share = INSIGHT_OPEN_SHARE
        self.insight_click_share = INSIGHT_CLICK_SHARE

    # ---- what the bot sent ------------------------------------------------------------------------

    def delivered(self, user_id: str) -> list[dict[str, Any]]:
        """Messages delivered to user_id, in order, across reply, push and multicast."""
        with self._lock:
            return list(self._by_user.get(user_id, ()))

    def wait_for_delivery(self, user_id: str, count: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Block until user_id has at least count messages; raise AssertionError showing what arrived."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._by_user.get(user_id, ())) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    got = self._by_user.get(user_id, [])
                    raise AssertionError(
                        f"expected >= {count} message(s) for {user_id} within {timeout}s, got {len(got)}: {got!r}"
                    )
                self._changed.wait(remaining)
            return list(self._by_user[user_id])

    def reset(self) -> None:
        """Forget deliveries, requests, faults, tokens, retry keys and rich menus."""
        self._wake_hanging()
        with self._lock:
            self._init_state()
            self._changed.notify_all()

    # ---- faults -----------------------------------------------------------------------------------

    def fail(self, endpoint: str, status: int | str, times: int = 1, hang_seconds: float = 30.0) -> None:
        """Make the next `times` calls to endpoint answer status (or 'hang'); times=-1 until cleared."""
        if endpoint not in FAULT_ENDPOINTS:
            raise ValueError(f"endpoint must be one of {sorted(FAULT_ENDPOINTS)}, not {endpoint!r}")
        if status != "hang" and not (isinstance(status, int) and 100 <= status <= 599):
            raise ValueError(f"status must be an HTTP status or 'hang', not {status!r}")
        if times == 0 or times < -1:
            raise ValueError("times must be positive or -1")
        with self._lock:
            self._faults.append(_Fault(endpoint, status, times, float(hang_seconds)))

    def clear_faults(self) -> None:
        """Remove every fault and release requests currently hanging."""
        self._wake_hanging()
        with self._lock:
            self._faults.clear()

    def _wake_hanging(self) -> None:
        """Wake threads sleeping in a 'hang' fault; later hangs wait on a fresh event."""
        old, self._wake = self._wake, threading.Event()
        old.set()

    def _take_fault(self, group: str) -> _Fault | None:
        """Consume one use of the first fault matching this endpoint group."""
        with self._lock:
            for fault in self._faults:
                if fault.endpoint in (group, "*"):
                    if fault.remaining > 0:
                        fault.remaining -= 1
                        if fault.remaining == 0:
                            self._faults.remove(fault)
                    return fault
        return None

    # ---- the channel's settings (what `flask line check` reads) -----------------------------------

    def set_webhook_endpoint(self, url: str | None, active: bool = True) -> None:
        """Set the channel's webhook URL (None: not set) and whether webhooks are on, as the console does."""
        with self._lock:
            self.webhook_url = url
            self.webhook_active = active

    def set_quota(self, limit: int | None, used: int = 0) -> None:
        """This month's message limit (None: type "none") and messages counted before the fake's own."""
        if (limit is not None and limit < 0) or used < 0:
            raise ValueError("limit and used must not be negative")
        with self._lock:
            self._quota_limit = limit
            self._quota_used_before = used

    def revoke_token(self, token: str) -> None:
        """Answer 401 to calls with this access token from now on (an expired or reissued token)."""
        with self._lock:
            self._revoked_tokens.add(token)

    def quota_consumption(self) -> int:
        """Messages counted against the quota: one per recipient of each push and multicast (replies are free)."""
        with self._lock:
            return self._consumption_locked()

    def _consumption_locked(self) -> int:
        return self._quota_used_before + sum(len(d.to) for d in self.deliveries if d.kind in ("push", "multicast"))

    # ---- webhook side -----------------------------------------------------------------------------

    def sign(self, body: bytes) -> str:
        """X-Line-Signature for body: base64(HMAC-SHA256(channel secret, body))."""
        digest = hmac.new(self.channel_secret.encode("utf-8"), body, hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")

    def issue_reply_token(self, user_id: str) -> str:
        """Issue a single-use reply token that delivers to user_id."""
        token = secrets.token_hex(16)
        now = time.monotonic()
        with self._lock:
            if len(self._reply_tokens) > 10_000:
                # Drop expired tokens now and then so long simulator runs do not grow without bound.
                self._reply_tokens = {
                    t: v for t, v in self._reply_tokens.items() if now - v.issued_at <= self.reply_token_ttl
                }
            self._reply_tokens[token] = _IssuedToken(user_id, now)
        return token

    def _event_base(self, user_id: str, event_type: str, reply: bool) -> dict[str, Any]:
        """Fields every webhook event from a one-to-one chat carries."""
        event: dict[str, Any] = {"type": event_type}
        if reply:
            event["replyToken"] = self.issue_reply_token(user_id)
        event.update(
            {
                "webhookEventId": _ulid(),
                "deliveryContext": {"isRedelivery": False},
                "timestamp": int(time.time() * 1000),
                "source": {"type": "user", "userId": user_id},
                "mode": "active",
            }
        )
        return event

    def text_event(self, user_id: str, text: str) -> dict[str, Any]:
        """A text message event from user_id with a fresh reply token."""
        event = self._event_base(user_id, "message", reply=True)
        event["message"] = {
            "id": str(next(self._message_ids)),
            "type": "text",
            "text": text,
            "quoteToken": secrets.token_urlsafe(48),
        }
        return event

    def postback_event(self, user_id: str, data: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """A postback event (button tap) from user_id with a fresh reply token."""
        event = self._event_base(user_id, "postback", reply=True)
        event["postback"] = {"data": data} if params is None else {"data": data, "params": params}
        return event

    def location_event(self, user_id: str, latitude: float, longitude: float, address: str | None = None,
                       title: str | None = None) -> dict[str, Any]:
        """A location message from user_id (what LINE's location picker sends) with a fresh reply token."""
        event = self._event_base(user_id, "message", reply=True)
        event["message"] = {"id": str(next(self._message_ids)), "type": "location", "latitude": latitude,
                            "longitude": longitude}
        if title is not None:
            event["message"]["title"] = title
        if address is not None:
            event["message"]["address"] = address
        return event

    def image_event(self, user_id: str, content: bytes, content_type: str = "image/jpeg") -> dict[str, Any]:
        """An image message from user_id; its bytes are served at /v2/bot/message/{id}/content (api-data)."""
        event = self._event_base(user_id, "message", reply=True)
        message_id = str(next(self._message_ids))
        with self._lock:
            self._contents[message_id] = (content_type, bytes(content))
            while len(self._contents) > MAX_KEPT_CONTENTS:  # a long simulator session: drop the oldest
                self._contents.pop(next(iter(self._contents)))
        event["message"] = {"id": message_id, "type": "image", "contentProvider": {"type": "line"},
                            "quoteToken": secrets.token_urlsafe(48)}
        return event

    def follow_event(self, user_id: str) -> dict[str, Any]:
        """A follow (friend added) event from user_id with a fresh reply token."""
        event = self._event_base(user_id, "follow", reply=True)
        event["follow"] = {"isUnblocked": user_id in self._blocking}
        with self._lock:
            self._followed.add(user_id)
            self._blocking.discard(user_id)
        return event

    def unfollow_event(self, user_id: str) -> dict[str, Any]:
        """An unfollow (blocked) event from user_id; LINE gives no reply token for it."""
        with self._lock:
            self._followed.add(user_id)
            self._blocking.add(user_id)
        return self._event_base(user_id, "unfollow", reply=False)

    def webhook_body(self, events: list[dict[str, Any]]) -> bytes:
        """The JSON body LINE would post for these events."""
        return _ENCODER.encode({"destination": self.destination, "events": events}).encode("utf-8")

    def send_webhook(
        self,
        events: list[dict[str, Any]],
        url: str | None = None,
        signature: str | None = None,
        raw_body: bytes | None = None,
        timeout: float = 30.0,
    ) -> requests.Response:
        """POST events to the bot as LINE does, signed unless a signature is given."""
        target = url or self.webhook_url
        if not target:
            raise ValueError("no webhook URL: pass url= or set webhook_url")
        body = raw_body if raw_body is not None else self.webhook_body(events)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "LineBotWebhook/2.0",
            "X-Line-Signature": signature if signature is not None else self.sign(body),
        }
        # One keep-alive session per thread: requests.Session is not documented as thread-safe.
        session = getattr(self._http, "session", None)
        if session is None:
            session = self._http.session = requests.Session()
        return session.post(target, data=body, headers=headers, timeout=timeout)

    # ---- serving ----------------------------------------------------------------------------------

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> ServedFake:
        """Serve this platform from a threaded werkzeug server in a daemon thread."""
        server = make_server(host, port, self, threaded=True, request_handler=_QuietHandler)
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-line", daemon=True
        )
        thread.start()
        real_port = server.server_port
        return ServedFake(f"http://{host}:{real_port}", real_port, self, server, thread)

    # ---- WSGI -------------------------------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """WSGI entry point."""
        request = Request(environ)
        request_id = str(uuid.uuid4())
        routed = _route(request.method, request.path)
        if isinstance(routed, int):
            response = _json(routed, {"message": "Not found" if routed == 404 else "Method not allowed"})
            if not request.path.startswith("/_fake/"):
                # A bot calling a path LINE does not have is worth seeing in .requests and the stats.
                self._record("unknown", request, None, response, [], request_id)
        else:
            endpoint, args = routed
            if endpoint.startswith("fake_"):
                response = self._control(endpoint, args, request)
            else:
                response = self._api(endpoint, args, request, request_id)
        return response.send(request_id, start_response)

    def _api(self, endpoint: str, args: dict[str, str], request: Request, request_id: str) -> _Reply:
        """Handle one Messaging API call: auth, validation, faults, then the operation."""
        raw = request.get_data(cache=False)
        body: Any = None
        errors: ErrorList = []
        auth = request.headers.get("Authorization", "")
        if not (auth.startswith("Bearer ") and auth[7:].strip()) or auth[7:].strip() in self._revoked_tokens:
            response = _json(401, {"message": "Authentication failed. Confirm that the access token in the authorization header is valid."})
        else:
            if endpoint in REQUEST_SCHEMAS:
                try:
                    body = json.loads(raw) if raw else None
                except ValueError as exc:
                    errors = [("", f"The request body is not valid JSON: {exc}")]
                else:
                    errors = self._validate(endpoint, body)
                if endpoint in ("push", "multicast"):
                    key = request.headers.get("X-Line-Retry-Key")
                    if key is not None and not _UUID_RE.match(key):
                        errors.append(("X-Line-Retry-Key", "must be a UUID in hexadecimal format"))
            if errors:
                response = _bad_request(errors)
            else:
                response = self._run(endpoint, args, request, body, raw, request_id)
        self._record(endpoint, request, body, response, errors, request_id)
        return response

    def _record(
        self, endpoint: str, request: Request, body: Any, response: _Reply, errors: ErrorList, request_id: str
    ) -> None:
        """Remember a Messaging API request, count it, and keep and log it if it was invalid."""
        record = RecordedRequest(
            method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=body,
            status=response.status,
            request_id=request_id,
            errors=[{"message": m, "property": p} for p, m in errors],
            at=time.time(),
        )
        is_invalid = bool(errors) or response.invalid
        with self._lock:
            self.requests.append(record)
            if is_invalid:
                self.invalid.append(record)
            per_endpoint = self._stats.setdefault(endpoint, {})
            per_endpoint[str(response.status)] = per_endpoint.get(str(response.status), 0) + 1
        if is_invalid:
            log.warning("fake LINE rejected %s %s (%s): %s", request.method, request.path, response.status, record.errors)

    def _validate(self, endpoint: str, body: Any) -> ErrorList:
        """LINE's limits first, then the spec; one entry per property, the LINE-rule wording winning."""
        if body is None and endpoint in OPTIONAL_BODY:
            return []
        errors = check_line_rules(endpoint, body)
        if self.spec is not None:
            seen = {prop for prop, _ in errors}
            for prop, message in self.spec.errors(REQUEST_SCHEMAS[endpoint], body):
                if prop not in seen:
                    errors.append((prop, message))
                    seen.add(prop)
        return errors

    def _run(
        self, endpoint: str, args: dict[str, str], request: Request, body: Any, raw: bytes, request_id: str
    ) -> _Reply:
        """Apply a pending fault if any, else perform the operation."""
        fault = self._take_fault(_fault_group(endpoint))
        if fault is not None:
            if fault.status == "hang":
                # Waits on an event (not sleep) so clear_faults/reset/stop can release it.
                self._wake.wait(fault.hang_seconds)
                return _json(500, {"message": "Internal server error (fake hang)"})
            status = int(fault.status)
            if status == 429:
                return _json(429, {"message": "The API rate limit has been exceeded. Try again later."})
            return _json(status, {"message": "Internal server error" if status >= 500 else f"Fake error {status}"})
        handler = getattr(self, f"_op_{endpoint}")
        result: _Reply = handler(args=args, request=request, body=body, raw=raw, request_id=request_id)
        return result

    # ---- operations -------------------------------------------------------------------------------

    def _deliver_locked(
        self, kind: str, to: list[str], messages: list[dict[str, Any]], request_id: str, retry_key: str | None,
        reply_token: str | None = None,
    ) -> list[dict[str, str]]:
        """Record a delivery (lock held) and return LINE's sentMessages for it."""
        self.deliveries.append(Delivery(kind, list(to), messages, request_id, retry_key, time.time(), reply_token))
        for user in to:
            self._by_user.setdefault(user, []).extend(messages)
        self._changed.notify_all()
        sent = []
        for message in messages:
            item = {"id": str(next(self._message_ids))}
            if message.get("type") in QUOTABLE_TYPES:
                item["quoteToken"] = secrets.token_urlsafe(48)
            sent.append(item)
        return sent

    def _op_reply(self, body: dict[str, Any], request_id: str, **_: Any) -> _Reply:
        """POST /v2/bot/message/reply: deliver to the user the token was issued for, once."""
        now = time.monotonic()
        with self._lock:
            issued = self._reply_tokens.pop(body["replyToken"], None)
            if issued is not None and now - issued.issued_at <= self.reply_token_ttl:
                sent = self._deliver_locked("reply", [issued.user_id], body["messages"], request_id, None,
                                            body["replyToken"])
                return _json(200, {"sentMessages": sent})
        log.warning("fake LINE: invalid, reused or expired reply token (request %s)", request_id)
        return _json(400, {"message": "Invalid reply token"})

    def _op_push(self, body: dict[str, Any], request: Request, request_id: str, **_: Any) -> _Reply:
        """POST /v2/bot/message/push, honouring X-Line-Retry-Key."""
        return self._send("push", [body["to"]], body["messages"], request, request_id)

    def _op_multicast(self, body: dict[str, Any], request: Request, request_id: str, **_: Any) -> _Reply:
        """POST /v2/bot/message/multicast, honouring X-Line-Retry-Key."""
        units = body.get("customAggregationUnits") or [None]
        return self._send("multicast", body["to"], body["messages"], request, request_id, unit=units[0])

    def _send(
        self, kind: str, to: list[str], messages: list[dict[str, Any]], request: Request, request_id: str,
        unit: str | None = None,
    ) -> _Reply:
        """Deliver push/multicast unless the retry key was already accepted (then 409)."""
        key = request.headers.get("X-Line-Retry-Key")
        now = time.time()
        with self._lock:
            if key is not None:
                accepted = self._retry_keys.get(key)
                if accepted is not None and now - accepted.at < RETRY_KEY_TTL:
                    payload: dict[str, Any] = {"message": "The retry key is already accepted"}
                    if accepted.sent_messages:
                        payload["sentMessages"] = accepted.sent_messages
                    return _json(409, payload, {"x-line-accepted-request-id": accepted.request_id})
            if self._quota_limit is not None and self._consumption_locked() + len(to) > self._quota_limit:
                return _json(429, {"message": "You have reached your monthly limit."})
            sent = self._deliver_locked(kind, to, messages, request_id, key)
            self.deliveries[-1].aggregation_unit = unit
            if key is not None:
                self._retry_keys[key] = _AcceptedRetry(request_id, sent if kind == "push" else None, now)
        # Multicast answers an empty object (MulticastResponse); push answers sentMessages.
        return _json(200, {"sentMessages": sent} if kind == "push" else {})

    def _op_profile(self, args: dict[str, str], **_: Any) -> _Reply:
        """GET /v2/bot/profile/{userId}: any well-formed user id is a resident."""
        user_id = args["user_id"]
        if not (user_id.startswith("U") and len(user_id) == 33):
            return _json(404, {"message": "Not found"})
        return _json(200, {"userId": user_id, "displayName": f"テスト住民 {user_id[-4:]}", "language": "ja"})

    def _op_loading(self, **_: Any) -> _Reply:
        """POST /v2/bot/chat/loading/start: accepted, nothing to show."""
        return _json(202, {})

    def _op_richmenu_create(self, body: dict[str, Any], **_: Any) -> _Reply:
        """POST /v2/bot/richmenu."""
        rich_menu_id = f"richmenu-{uuid.uuid4().hex}"
        with self._lock:
            self._rich_menus[rich_menu_id] = {"richMenuId": rich_menu_id, **body}
        return _json(200, {"richMenuId": rich_menu_id})

    def _op_richmenu_validate(self, **_: Any) -> _Reply:
        """POST /v2/bot/richmenu/validate: reaching here means the body was valid."""
        return _json(200, {})

    def _op_richmenu_list(self, **_: Any) -> _Reply:
        """GET /v2/bot/richmenu/list."""
        with self._lock:
            menus = list(self._rich_menus.values())
        return _json(200, {"richmenus": menus})

    def _op_content(self, args: dict[str, str], **_: Any) -> _Reply:
        """GET /v2/bot/message/{messageId}/content (api-data.line.me): the bytes of an image a user sent."""
        with self._lock:
            found = self._contents.get(args["message_id"])
        if found is None:
            return _json(404, {"message": "Not found"})
        return _Reply(200, found[1], [("Content-Type", found[0])])

    def _op_richmenu_get(self, args: dict[str, str], **_: Any) -> _Reply:
        """GET /v2/bot/richmenu/{richMenuId}."""
        with self._lock:
            menu = self._rich_menus.get(args["rich_menu_id"])
        return _json(200, menu) if menu is not None else _json(404, {"message": "richmenu not found"})

    def _op_richmenu_delete(self, args: dict[str, str], **_: Any) -> _Reply:
        """DELETE /v2/bot/richmenu/{richMenuId}; also unsets it as the default."""
        rich_menu_id = args["rich_menu_id"]
        with self._lock:
            if self._rich_menus.pop(rich_menu_id, None) is None:
                return _json(404, {"message": "richmenu not found"})
            self._rich_menu_images.pop(rich_menu_id, None)
            if self._default_rich_menu == rich_menu_id:
                self._default_rich_menu = None
        return _json(200, {})

    def _op_richmenu_upload(self, args: dict[str, str], request: Request, raw: bytes, **_: Any) -> _Reply:
        """POST /v2/bot/richmenu/{richMenuId}/content (api-data.line.me in reality): PNG or JPEG, once."""
        rich_menu_id = args["rich_menu_id"]
        content_type = (request.mimetype or "").lower()
        if content_type not in ("image/png", "image/jpeg"):
            return _invalid(415, f"Content-Type must be image/png or image/jpeg, not {content_type or 'missing'}")
        magic_ok = raw.startswith(b"\x89PNG\r\n\x1a\n") if content_type == "image/png" else raw.startswith(b"\xff\xd8")
        if not magic_ok:
            return _invalid(400, f"The body is not a {content_type} image")
        if len(raw) > MAX_RICHMENU_IMAGE_BYTES:
            return _invalid(400, "The image must be 1 MB or smaller")
        with self._lock:
            if rich_menu_id not in self._rich_menus:
                return _json(404, {"message": "richmenu not found"})
            if rich_menu_id in self._rich_menu_images:
                return _json(400, {"message": "An image has already been uploaded to the richmenu"})
            self._rich_menu_images[rich_menu_id] = (content_type, raw)
        return _json(200, {})

    def _op_richmenu_download(self, args: dict[str, str], **_: Any) -> _Reply:
        """GET /v2/bot/richmenu/{richMenuId}/content."""
        with self._lock:
            image = self._rich_menu_images.get(args["rich_menu_id"])
        if image is None:
            return _json(404, {"message": "Not found"})
        return _Reply(200, image[1], [("Content-Type", image[0])])

    def _op_richmenu_set_default(self, args: dict[str, str], **_: Any) -> _Reply:
        """POST /v2/bot/user/all/richmenu/{richMenuId}; LINE refuses a menu without an image."""
        rich_menu_id = args["rich_menu_id"]
        with self._lock:
            if rich_menu_id not in self._rich_menus:
                return _json(404, {"message": "richmenu not found"})
            if rich_menu_id not in self._rich_menu_images:
                return _json(400, {"message": "must upload richmenu image before applying it to user"})
            self._default_rich_menu = rich_menu_id
        return _json(200, {})

    def _op_richmenu_get_default(self, **_: Any) -> _Reply:
        """GET /v2/bot/user/all/richmenu."""
        with self._lock:
            current = self._default_rich_menu
        return _json(200, {"richMenuId": current}) if current else _json(404, {"message": "no default richmenu"})

    def _op_richmenu_cancel_default(self, **_: Any) -> _Reply:
        """DELETE /v2/bot/user/all/richmenu."""
        with self._lock:
            self._default_rich_menu = None
        return _json(200, {})

    def _spec_json(self, schema: str, payload: dict[str, Any]) -> _Reply:
        """A 200 answer, checked against the spec's response schema so the fake cannot drift from LINE."""
        if self.spec is not None:
            errors = self.spec.errors(schema, payload)
            if errors:
                raise AssertionError(f"the fake's {schema} does not match messaging-api.yml: {errors}")
        return _json(200, payload)

    def _op_info(self, **_: Any) -> _Reply:
        """GET /v2/bot/info."""
        return self._spec_json("BotInfoResponse", {
            "userId": self.destination, "basicId": self.bot_basic_id, "displayName": self.bot_display_name,
            "chatMode": "bot", "markAsReadMode": "auto",
        })

    def _op_webhook_get(self, **_: Any) -> _Reply:
        """GET /v2/bot/channel/webhook/endpoint (an empty endpoint when none is set)."""
        with self._lock:
            payload = {"endpoint": self.webhook_url or "", "active": bool(self.webhook_url) and self.webhook_active}
        return self._spec_json("GetWebhookEndpointResponse", payload)

    def _op_webhook_set(self, body: dict[str, Any], **_: Any) -> _Reply:
        """PUT /v2/bot/channel/webhook/endpoint: LINE accepts only an HTTPS URL."""
        endpoint = body["endpoint"]
        if not endpoint.startswith("https://"):
            return _json(400, {"message": "Invalid webhook endpoint URL", "details": [
                {"message": "must be an HTTPS URL", "property": "endpoint"}]})
        with self._lock:
            self.webhook_url = endpoint
        return _json(200, {})

    def _op_webhook_test(self, body: dict[str, Any] | None, **_: Any) -> _Reply:
        """POST /v2/bot/channel/webhook/test: post a signed webhook without events and report how it went."""
        target = (body or {}).get("endpoint") or self.webhook_url
        if not target:
            return _json(400, {"message": "The webhook endpoint is not set"})
        try:
            answer = self.send_webhook([], url=target, timeout=self.webhook_test_timeout)
        except requests.Timeout:
            status, reason, detail = 0, "REQUEST_TIMEOUT", f"no answer within {self.webhook_test_timeout:g} s"
        except requests.ConnectionError as exc:
            errno = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(exc))
            status, reason, detail = 0, "COULD_NOT_CONNECT", errno.group(1) if errno else type(exc).__name__
        except requests.RequestException as exc:
            status, reason, detail = -1, "UNCLASSIFIED", type(exc).__name__
        else:
            status = answer.status_code
            reason = "OK" if status == 200 else "ERROR_STATUS_CODE"
            detail = f"{status} {HTTP_STATUS_CODES.get(status, '')}".strip()
        now = time.time()
        return self._spec_json("TestWebhookEndpointResponse", {
            "success": status == 200,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z",
            "statusCode": status, "reason": reason, "detail": detail,
        })

    def _op_quota(self, **_: Any) -> _Reply:
        """GET /v2/bot/message/quota."""
        with self._lock:
            limit = self._quota_limit
        payload: dict[str, Any] = {"type": "none"} if limit is None else {"type": "limited", "value": limit}
        return self._spec_json("MessageQuotaResponse", payload)

    def _op_quota_consumption(self, **_: Any) -> _Reply:
        """GET /v2/bot/message/quota/consumption: derived from what this platform delivered."""
        return self._spec_json("QuotaConsumptionResponse", {"totalUsage": self.quota_consumption()})

    # ---- insight (per-unit statistics, followers) -------------------------------------------------

    def _insight_json(self, schema: str, payload: dict[str, Any]) -> _Reply:
        """A 200 answer checked against insight.yml's response schema."""
        if self.insight_spec is not None:
            errors = self.insight_spec.errors(schema, payload)
            if errors:
                raise AssertionError(f"the fake's {schema} does not match insight.yml: {errors}")
        return _json(200, payload)

    @staticmethod
    def _jst_date(at: float) -> str:
        return time.strftime("%Y%m%d", time.gmtime(at + 9 * 3600))

    @staticmethod
    def _shown(value: int) -> int | None:
        """LINE hides a figure under 20 (null)."""
        return value if value >= INSIGHT_HIDDEN_BELOW else None

    def unit_statistics(self, unit: str, date_from: str, date_to: str) -> dict[str, Any]:
        """What GET /v2/bot/insight/message/event/aggregation answers, derived from the deliveries
        under `unit` on those JST dates: of D distinct recipients, floor(D x open share) opened each
        message and floor(D x click share / k) opened the k-th distinct link; under 20 is null."""
        with self._lock:
            sent = [d for d in self.deliveries
                    if d.aggregation_unit == unit and date_from <= self._jst_date(d.at) <= date_to]
            open_share, click_share = self.insight_open_share, self.insight_click_share
        users = len({user for d in sent for user in d.to})
        opened = int(users * open_share)
        seqs = max((len(d.messages) for d in sent), default=0)
        urls: list[str] = []
        for d in sent:
            for message in d.messages:
                for url in _URL_RE.findall(json.dumps(message, ensure_ascii=False)):
                    url = url.rstrip(".,)）」、。")
                    if url not in urls:
                        urls.append(url)
        clicks = []
        for k, url in enumerate(urls, start=1):
            unique = int(users * click_share / k)
            clicks.append({"seq": k, "url": url, "click": self._shown(unique + unique // 4),
                           "uniqueClick": self._shown(unique), "uniqueClickOfRequest": self._shown(unique)})
        return {
            "overview": {"uniqueImpression": self._shown(opened),
                         "uniqueClick": self._shown(int(users * click_share)) if urls else None,
                         "uniqueMediaPlayed": None, "uniqueMediaPlayed100Percent": None},
            "messages": [{"seq": seq, "impression": self._shown(opened), "uniqueImpression": self._shown(opened),
                          "mediaPlayed": None, "uniqueMediaPlayed": None} for seq in range(1, seqs + 1)],
            "clicks": clicks,
        }

    def _op_insight_unit(self, request: Request, **_: Any) -> _Reply:
        """GET /v2/bot/insight/message/event/aggregation?customAggregationUnit=&from=&to=."""
        unit = request.args.get("customAggregationUnit", "")
        date_from, date_to = request.args.get("from", ""), request.args.get("to", "")
        errors: ErrorList = []
        if not re.fullmatch(r"[a-zA-Z0-9_]{1,30}", unit):
            errors.append(("customAggregationUnit", "must match ^[a-zA-Z0-9_]{1,30}$"))
        for name, value in (("from", date_from), ("to", date_to)):
            if not re.fullmatch(r"[0-9]{8}", value):
                errors.append((name, "must be yyyyMMdd"))
        if errors:
            return _bad_request(errors)
        try:
            start = time.strptime(date_from, "%Y%m%d")
            end = time.strptime(date_to, "%Y%m%d")
        except ValueError:
            return _bad_request([("from", "not a date")])
        days = (time.mktime(end) - time.mktime(start)) / 86400
        if days < 0 or days > INSIGHT_MAX_DAYS + 0.1:
            return _bad_request([("to", f"must be on or after from and at most {INSIGHT_MAX_DAYS} days later")])
        return self._insight_json("GetStatisticsPerUnitResponse", self.unit_statistics(unit, date_from, date_to))

    def _op_insight_followers(self, request: Request, **_: Any) -> _Reply:
        """GET /v2/bot/insight/followers?date=: everyone the fake saw follow, block, or receive a
        push or multicast counts as a friend (the number never decreases); blocks are those whose
        last event was an unfollow."""
        date = request.args.get("date", "")
        if date and not re.fullmatch(r"[0-9]{8}", date):
            return _bad_request([("date", "must be yyyyMMdd")])
        with self._lock:
            friends = set(self._followed)
            friends.update(user for d in self.deliveries if d.kind in ("push", "multicast") for user in d.to)
            blocks = len(self._blocking)
        return self._insight_json("GetNumberOfFollowersResponse", {
            "status": "ready", "followers": len(friends), "targetedReaches": len(friends) - blocks, "blocks": blocks,
        })

    # ---- control API (/_fake/) --------------------------------------------------------------------

    def _control(self, endpoint: str, args: dict[str, str], request: Request) -> _Reply:
        """Handle /_fake/ calls from out-of-process users (simulator, benchmarks)."""
        try:
            data = request.get_json(force=True) if request.method == "POST" and request.content_length else {}
        except BadRequest:
            return _json(400, {"message": "The request body is not valid JSON"})
        data = data or {}
        if not isinstance(data, dict):
            return _json(400, {"message": "The request body must be a JSON object"})
        try:
            if endpoint == "fake_deliveries":
                return self._control_deliveries(request)
            if endpoint == "fake_event":
                return self._control_event(args["kind"], data)
            if endpoint == "fake_faults":
                if request.method == "POST":
                    status = data.get("status", 500)
                    self.fail(
                        data.get("endpoint", "*"),
                        int(status) if isinstance(status, str) and status.isdigit() else status,
                        int(data.get("times", 1)),
                        float(data.get("hang_seconds", 30.0)),
                    )
                elif request.method == "DELETE":
                    self.clear_faults()
                with self._lock:
                    faults = [asdict(f) for f in self._faults]
                return _json(200, {"faults": faults})
            if endpoint == "fake_invalid":
                with self._lock:
                    invalid = [r.as_dict() for r in self.invalid]
                return _json(200, {"invalid": invalid})
            if endpoint == "fake_reply_tokens":
                # Benchmarks build and sign their own webhooks, but need tokens LINE would issue.
                users = data["users"]
                if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
                    raise ValueError("users must be a list of user ids")
                return _json(200, {"tokens": [self.issue_reply_token(u) for u in users]})
            if endpoint == "fake_reset":
                self.reset()
                return _json(200, {"ok": True})
            if endpoint == "fake_channel":
                return self._control_channel(request, data)
            if endpoint == "fake_stats":
                with self._lock:
                    stats = {k: dict(v) for k, v in self._stats.items()}
                    totals = {"deliveries": len(self.deliveries), "invalid": len(self.invalid), "requests": len(self.requests)}
                return _json(200, {"endpoints": stats, **totals})
        except KeyError as exc:
            return _json(400, {"message": f"missing field {exc}"})
        except (ValueError, TypeError) as exc:
            return _json(400, {"message": str(exc)})
        return _json(404, {"message": "Not found"})

    def _control_channel(self, request: Request, data: dict[str, Any]) -> _Reply:
        """GET/POST /_fake/channel: the webhook URL, quota and revoked tokens (POST sets what it names)."""
        if request.method == "POST":
            if "webhookEndpoint" in data or "webhookActive" in data:
                self.set_webhook_endpoint(data.get("webhookEndpoint", self.webhook_url), bool(data.get("webhookActive", True)))
            if "quota" in data or "quotaUsed" in data:
                limit = data.get("quota", self._quota_limit)
                self.set_quota(None if limit is None else int(limit), int(data.get("quotaUsed", 0)))
            if data.get("revokeToken"):
                self.revoke_token(str(data["revokeToken"]))
        with self._lock:
            state = {"webhookEndpoint": self.webhook_url, "webhookActive": self.webhook_active,
                     "quota": self._quota_limit, "revokedTokens": len(self._revoked_tokens)}
        return _json(200, {**state, "quotaUsed": self.quota_consumption()})

    def _control_deliveries(self, request: Request) -> _Reply:
        """GET /_fake/deliveries[?user=&since=&wait=]: messages for a user, or all deliveries."""
        user = request.args.get("user")
        since = max(int(request.args.get("since", 0)), 0)
        # Optional long poll so the simulator page need not hammer the fake.
        wait = min(max(float(request.args.get("wait", 0)), 0.0), 30.0)
        deadline = time.monotonic() + wait
        with self._changed:
            while True:
                items: list[Any] = self._by_user.get(user, []) if user else self.deliveries
                remaining = deadline - time.monotonic()
                if len(items) > since or remaining <= 0:
                    break
                self._changed.wait(remaining)
            if user:
                return _json(200, {"messages": list(items[since:]), "next": len(items)})
            return _json(200, {"deliveries": [d.as_dict() for d in items[since:]], "next": len(items)})

    def _control_event(self, kind: str, data: dict[str, Any]) -> _Reply:
        """POST /_fake/events/{text,postback,follow,unfollow,location,image}: build the event and send it to the bot.

        location: {"user", "latitude", "longitude", "title"?, "address"?};
        image: {"user", "contentType": "image/jpeg"|"image/png", "contentBase64"} (served afterwards at
        GET /v2/bot/message/{id}/content). Bad input: 400 (413 for an image over MAX_CONTROL_IMAGE_BYTES).
        """
        user = data["user"]
        if kind in ("location", "image"):
            try:
                event = self._control_media_event(kind, user, data)
            except _ControlInputError as exc:
                return _json(exc.status, {"message": str(exc)})
        elif kind == "text":
            event = self.text_event(user, data["text"])
        elif kind == "postback":
            event = self.postback_event(user, data["data"], data.get("params"))
        elif kind == "follow":
            event = self.follow_event(user)
        elif kind == "unfollow":
            event = self.unfollow_event(user)
        else:
            return _json(404, {"message": f"unknown event kind {kind!r}"})
        try:
            answer = self.send_webhook([event])
        except (requests.RequestException, ValueError) as exc:
            return _json(502, {"message": f"webhook failed: {exc}", "status": None, "event": event})
        return _json(200, {"status": answer.status_code, "event": event})

    def _control_media_event(self, kind: str, user: Any, data: dict[str, Any]) -> dict[str, Any]:
        """The location or image event the control API was asked for, its input checked first."""
        if not isinstance(user, str) or not user:
            raise _ControlInputError("user must be a LINE user id")
        if kind == "location":
            latitude, longitude = _control_location(data)
            return self.location_event(user, latitude, longitude, address=data.get("address"), title=data.get("title"))
        content_type, content = _control_image(data)
        return self.image_event(user, content, content_type)


class _ControlInputError(Exception):
    """Bad input to a control-API event (answered with `status`, 400 unless said)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def _control_location(data: dict[str, Any]) -> tuple[float, float]:
    """(latitude, longitude) of a control-API location event; its title and address checked."""
    point = []
    for key, bound in (("latitude", 90.0), ("longitude", 180.0)):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _ControlInputError(f"{key} must be a number")
        if not (-bound <= float(value) <= bound):  # NaN fails too
            raise _ControlInputError(f"{key} must be between {-bound:g} and {bound:g}")
        point.append(float(value))
    for key in ("title", "address"):
        value = data.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > MAX_LOCATION_TEXT):
            raise _ControlInputError(f"{key} must be a string of at most {MAX_LOCATION_TEXT} characters")
    return point[0], point[1]


def _control_image(data: dict[str, Any]) -> tuple[str, bytes]:
    """(content type, bytes) of a control-API image event: a JPEG or PNG of at most MAX_CONTROL_IMAGE_BYTES."""
    content_type = data.get("contentType")
    if content_type not in IMAGE_SIGNATURES:
        raise _ControlInputError(f"contentType must be one of {', '.join(sorted(IMAGE_SIGNATURES))}")
    encoded = data.get("contentBase64")
    if not isinstance(encoded, str) or not encoded:
        raise _ControlInputError("contentBase64 must be the image's bytes in base64")
    too_large = _ControlInputError(f"the image is larger than {MAX_CONTROL_IMAGE_BYTES} bytes", 413)
    if len(encoded) > (MAX_CONTROL_IMAGE_BYTES + 2) // 3 * 4:
        raise too_large
    try:
        content = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise _ControlInputError("contentBase64 is not valid base64") from None
    if len(content) > MAX_CONTROL_IMAGE_BYTES:
        raise too_large
    if not content.startswith(IMAGE_SIGNATURES[content_type]):
        raise _ControlInputError(f"the bytes are not a {content_type} image")
    return content_type, content


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    """A JSON response as LINE sends it."""
    body = _ENCODER.encode(payload).encode("utf-8")
    extra = [("Content-Type", "application/json; charset=utf-8")]
    if headers:
        extra.extend(headers.items())
    return _Reply(status, body, extra)


def _bad_request(errors: ErrorList) -> _Reply:
    """LINE's 400 for an invalid request body."""
    details = [{"message": message, "property": prop} for prop, message in errors]
    return _json(400, {"message": f"The request body has {len(errors)} error(s)", "details": details})


def _invalid(status: int, message: str) -> _Reply:
    """A rejection of a malformed (non-JSON) body that still belongs in FakeLinePlatform.invalid."""
    response = _json(status, {"message": message})
    response.invalid = True
    return response


# --------------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------------


def wsgi_from_env() -> FakeLinePlatform:
    """The platform configured from the environment, for a real WSGI server.

    `gunicorn -w 1 -k gthread --threads 16 "bot.sandbox.fake_line:wsgi_from_env()"` keeps
    connections alive and pools threads, so benchmarks measure the bot rather than the
    development server; one worker only, because the platform's state lives in the process.
    """
    return FakeLinePlatform(
        channel_secret=os.environ.get("LINE_CHANNEL_SECRET") or "dev-channel-secret",
        spec_dir=os.environ.get("LINE_OPENAPI_DIR") or None,
        webhook_url=os.environ.get("FAKE_WEBHOOK_URL") or None,
        reply_token_ttl=float(os.environ.get("FAKE_REPLY_TOKEN_TTL", "60")),
    )


def main(argv: list[str] | None = None) -> int:
    """Serve the fake LINE platform until interrupted."""
    parser = argparse.ArgumentParser(prog="python -m bot.sandbox.fake_line", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--channel-secret", default=os.environ.get("LINE_CHANNEL_SECRET"))
    parser.add_argument("--webhook-url", default=None, help="where /_fake/events/* posts webhooks (the bot's /callback)")
    parser.add_argument("--spec-dir", default=None, help="directory holding messaging-api.yml")
    parser.add_argument("--reply-token-ttl", type=float, default=60.0)
    parser.add_argument("--access-log", action="store_true", help="log every request (slower)")
    args = parser.parse_args(argv)
    if not args.channel_secret:
        parser.error("--channel-secret (or LINE_CHANNEL_SECRET) is required")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    platform = FakeLinePlatform(
        channel_secret=args.channel_secret,
        spec_dir=args.spec_dir,
        webhook_url=args.webhook_url,
        reply_token_ttl=args.reply_token_ttl,
    )
    handler = WSGIRequestHandler if args.access_log else _QuietHandler
    server = make_server(args.host, args.port, platform, threaded=True, request_handler=handler)
    log.info("fake LINE platform on http://%s:%d (webhook -> %s)", args.host, server.server_port, args.webhook_url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
