"""WAL segment names and the unbroken run of archived segments a restore can replay.

A segment is named TTTTTTTT LLLLLLLL SSSSSSSS (timeline, then the segment number split in a
"log" and a segment within it; with 16 MiB segments SSSSSSSS runs 00..FF and then the log
goes up). pgBackRest stores `<name>-<sha1>[.ext]`; `.partial` (an unfinished segment of an
old timeline), `.backup` (a backup's label) and `.history` files are not replayable
segments and are skipped.
"""

import re
from dataclasses import dataclass

DEFAULT_SEGMENT_SIZE = 16 * 1024 * 1024
_STORED = re.compile(r"(?:^|/)([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})-[0-9a-f]{40}(?:\.\w+)?$")
_NAME = re.compile(r"^([0-9A-F]{8})([0-9A-F]{8})([0-9A-F]{8})$")


def per_log(segment_size: int) -> int:
    """Segments in one "log" (0x100 for 16 MiB segments)."""
    return 0x100000000 // segment_size


@dataclass(frozen=True, order=True)
class Segment:
    timeline: int
    number: int  # log * per_log + segment

    def name(self, segments_per_log: int) -> str:
        log, seg = divmod(self.number, segments_per_log)
        return f"{self.timeline:08X}{log:08X}{seg:08X}"


def parse_name(name: str, segments_per_log: int) -> Segment:
    match = _NAME.match(name)
    if not match:
        raise ValueError(f"{name!r} is not a WAL segment name")
    tli, log, seg = (int(g, 16) for g in match.groups())
    return Segment(tli, log * segments_per_log + seg)


def archived_segments(listing: dict, segments_per_log: int) -> dict[Segment, int]:
    """{segment: archive time (epoch s)} from `pgbackrest repo-ls --output=json --recurse`."""
    found: dict[Segment, int] = {}
    for path, entry in listing.items():
        if entry.get("type") != "file":
            continue
        match = _STORED.search(path)
        if not match:
            continue
        tli, log, seg = (int(g, 16) for g in match.groups())
        found[Segment(tli, log * segments_per_log + seg)] = int(entry.get("time") or 0)
    return found


def infer_per_log(listing_segments: list[tuple[int, int, int]], configured: int) -> int:
    """Segments smaller than configured show SSSSSSSS beyond the configured range: widen."""
    highest = max((seg for _, _, seg in listing_segments), default=0)
    count = configured
    while highest >= count:
        count *= 2
    return count


def raw_triples(listing: dict) -> list[tuple[int, int, int]]:
    out = []
    for path, entry in listing.items():
        match = _STORED.search(path) if entry.get("type") == "file" else None
        if match:
            out.append(tuple(int(g, 16) for g in match.groups()))
    return out


@dataclass(frozen=True)
class Run:
    """The segments replayable one after another from a start segment."""

    last: Segment | None  # None: the start segment itself is missing
    missing: Segment | None  # the first segment not found, when a later one exists (a gap)


def unbroken_run(segments: dict[Segment, int], start: Segment) -> Run:
    """Follow segment numbers up from `start`. At each number take the highest timeline
    at or above the current one (a promotion continues the same number on the next
    timeline, as recovery_target_timeline=latest does); stop at the first number missing.
    It is a gap when any segment beyond that number was archived."""
    by_number: dict[int, list[int]] = {}
    for seg in segments:
        by_number.setdefault(seg.number, []).append(seg.timeline)
    timeline, number, last = start.timeline, start.number, None
    while True:
        candidates = [t for t in by_number.get(number, ()) if t >= timeline]
        if not candidates:
            later = any(
                n > number and any(t >= timeline for t in tls) for n, tls in by_number.items()
            )
            return Run(last, Segment(timeline, number) if later else None)
        timeline = max(candidates)
        last = Segment(timeline, number)
        number += 1
