"""Reading IAM out of a synthesized template: which actions a role is allowed on which resources."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Any


def refs(value: Any) -> set[str]:
    """Every logical id referenced (Ref / Fn::GetAtt) anywhere inside ``value``."""
    out: set[str] = set()
    if isinstance(value, dict):
        if "Ref" in value and isinstance(value["Ref"], str):
            out.add(value["Ref"])
        if "Fn::GetAtt" in value:
            out.add(value["Fn::GetAtt"][0])
        for v in value.values():
            out |= refs(v)
    elif isinstance(value, list):
        for v in value:
            out |= refs(v)
    return out


def text(value: Any) -> str:
    """A resource expression flattened to text (literal parts only)."""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "".join(text(v) for v in value)
    if isinstance(value, dict):
        if "Fn::Join" in value:
            return text(value["Fn::Join"][1])
        return "".join(text(v) for v in value.values() if not isinstance(v, str))
    return ""


@dataclass
class Statement:
    effect: str
    actions: list[str]
    resources: list[Any]

    def allows(self, action: str) -> bool:
        return any(fnmatch.fnmatchcase(action, a) for a in self.actions)

    def touches(self, logical_id: str) -> bool:
        return any(logical_id in refs(r) for r in self.resources) or "*" in self.resources


def _listify(v: Any) -> list[Any]:
    return v if isinstance(v, list) else [v]


def role_statements(template: dict[str, Any], role_id: str) -> list[Statement]:
    out = []
    for res in template["Resources"].values():
        if res["Type"] != "AWS::IAM::Policy":
            continue
        if role_id not in refs(res["Properties"].get("Roles", [])):
            continue
        for st in res["Properties"]["PolicyDocument"]["Statement"]:
            out.append(
                Statement(st["Effect"], _listify(st["Action"]), _listify(st.get("Resource", [])))
            )
    return out


def can(template: dict[str, Any], role_id: str, action: str, resource_id: str) -> bool:
    """Allowed by some Allow statement on the resource and not denied by a Deny on it."""
    sts = role_statements(template, role_id)
    allowed = any(s.effect == "Allow" and s.allows(action) and s.touches(resource_id) for s in sts)
    denied = any(s.effect == "Deny" and s.allows(action) and s.touches(resource_id) for s in sts)
    return allowed and not denied


def can_on_text(template: dict[str, Any], role_id: str, action: str, needle: str) -> bool:
    """Like :func:`can` for resources named by ARN text (e.g. the secrets prefix)."""
    sts = role_statements(template, role_id)

    def on(s: Statement) -> bool:
        return any(needle in text(r) for r in s.resources)

    allowed = any(s.effect == "Allow" and s.allows(action) and on(s) for s in sts)
    denied = any(s.effect == "Deny" and s.allows(action) and on(s) for s in sts)
    return allowed and not denied


def function_role(template: dict[str, Any], handler: str) -> str:
    for res in template["Resources"].values():
        if res["Type"] == "AWS::Lambda::Function" and res["Properties"].get("Handler") == handler:
            return res["Properties"]["Role"]["Fn::GetAtt"][0]
    raise KeyError(handler)


def logical_id(template: dict[str, Any], type_: str, **props: Any) -> str:
    found = [
        lid
        for lid, res in template["Resources"].items()
        if res["Type"] == type_
        and all(res.get("Properties", {}).get(k) == v for k, v in props.items())
    ]
    assert len(found) == 1, (type_, props, found)
    return found[0]
