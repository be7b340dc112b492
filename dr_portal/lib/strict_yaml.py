"""The one YAML loader for configuration files (dr_apply, apply_runbooks).

Safe types only, and stricter than yaml.safe_load where a lenient parse would hide a
mistake or let a file cost unbounded memory: a key given twice is refused (safe_load keeps
the last one silently), anchors, aliases and merge keys are refused (a "billion laughs"
file expands aliases into gigabytes), nesting is bounded, and files over MAX_BYTES are
refused unread.
"""

import yaml

MAX_BYTES = 1_000_000
MAX_DEPTH = 50


class StrictYamlError(ValueError):
    """The text is not YAML this portal accepts; the message says where and why."""


def _at(mark) -> str:
    return f"at line {mark.line + 1}, column {mark.column + 1}: " if mark else ""


class StrictLoader(yaml.SafeLoader):
    depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if self.depth >= MAX_DEPTH:  # the composer recurses: bound it before Python does
            raise StrictYamlError(f"{_at(event.start_mark)}nested more than {MAX_DEPTH} deep")
        if isinstance(event, yaml.AliasEvent):
            raise StrictYamlError(
                f"{_at(event.start_mark)}aliases (*{event.anchor}) are not allowed; "
                "write the value out"
            )
        if getattr(event, "anchor", None):
            raise StrictYamlError(
                f"{_at(event.start_mark)}anchors (&{event.anchor}) are not allowed; "
                "write the value out"
            )
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise StrictYamlError(f"{_at(key_node.start_mark)}merge keys (<<) are not allowed")
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:
                raise StrictYamlError(
                    f"{_at(key_node.start_mark)}a mapping key must be plain text"
                ) from None
            if duplicate:
                raise StrictYamlError(f"{_at(key_node.start_mark)}duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load(text: str | bytes):
    """Parse one YAML document strictly; raise StrictYamlError naming the place."""
    size = len(text.encode() if isinstance(text, str) else text)
    if size > MAX_BYTES:
        raise StrictYamlError(
            f"the file is {size:,} bytes; configuration files are limited to {MAX_BYTES:,} bytes"
        )
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise StrictYamlError(f"not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
