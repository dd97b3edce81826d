#!/usr/bin/env python3
"""Independent reference for ../shared/recurrence/SPEC.md, used by the differential tests.

python-dateutil's rrule expands the rule on naive (floating) wall-clock times (SPEC §1).
UTC offsets come from zoneinfo with the pinned `tzdata` package only, never the machine's
/usr/share/zoneinfo, so both sides of the comparison read IANA 2026f. The gap and overlap
rules of SPEC §2 are applied explicitly, from UTC offsets alone (no isdst, no PEP 495 `fold`
decides the answer): a wall time that exists once or twice maps to the earliest instant that
shows it; a wall time in a gap is read with the offset in effect before the transition that
skipped it.

Modes (input is JSON on stdin, output on stdout):
  rrule_ref.py                 cases (SPEC case format, a JSON array) -> one answer per line
  rrule_ref.py --first-walls   [{"rule", "start"}] -> [first wall time or null]; a first wall
                               time W is given only if, with DTSTART = W, the rule's first
                               instance is W again (SPEC §6: DTSTART matches the rule)
  rrule_ref.py --transitions   {"zones", "from", "to"} -> {zone: [[utc_seconds, before, after]]}
  rrule_ref.py --tzdata-version
"""

import bisect
import functools
import json
import re
import signal
import sys
import zoneinfo
from datetime import datetime, timedelta, timezone

zoneinfo.reset_tzpath(to=[])  # the pinned tzdata package only

import tzdata  # noqa: E402  (after reset_tzpath on purpose)
from dateutil.rrule import rrulestr  # noqa: E402

MAX_EXAMINED = 5_000_000
EPOCH = datetime(1970, 1, 1)
UTC = timezone.utc
MARGIN = 26 * 3600  # seconds: every UTC offset in tzdata is within +-26 h
ALLOWED_FIELDS = {"id", "rrule", "pattern", "interval", "until", "limit", "dtstart", "tz", "after", "count", "note"}


class CaseError(Exception):
    pass


def wall_seconds(wall):
    """A naive wall time read as if it were UTC, in seconds since the epoch."""
    return (wall - EPOCH) // timedelta(seconds=1)


def offset_at(tz, s):
    """UTC offset (seconds) in effect at the instant `s` (seconds since the epoch)."""
    return int((EPOCH + timedelta(seconds=s)).replace(tzinfo=UTC).astimezone(tz).utcoffset().total_seconds())


def transitions(tz, lo, hi, step):
    """Offset changes in [lo, hi] as (instant, offset before, offset after), found by sampling
    every `step` seconds and bisecting to the second."""
    found = []
    t, prev = lo, offset_at(tz, lo)
    while t < hi:
        n = min(t + step, hi)
        cur = offset_at(tz, n)
        if cur != prev:
            a, b = t, n  # offset(a) == prev != offset(b)
            while b - a > 1:
                m = (a + b) // 2
                if offset_at(tz, m) == prev:
                    a = m
                else:
                    b = m
            found.append((b, prev, offset_at(tz, b)))
        t, prev = n, cur
    return found


@functools.lru_cache(maxsize=None)
def day_transitions(zone_key, day):
    """The offset changes that can matter to wall times read on `day` (days since the epoch):
    those within MARGIN of it. Sampled hourly (tzdata has no two changes within an hour in
    the zones and years tested) and bisected to the second."""
    lo = day * 86400 - MARGIN - 3600
    hi = (day + 1) * 86400 + MARGIN + 3600
    return tuple(transitions(zoneinfo.ZoneInfo(zone_key), lo, hi, 3600))


def resolve(tz, wall):
    """SPEC §2: the UTC instant (seconds) of a wall time in `tz`."""
    w = wall_seconds(wall)
    trans = [t for t in day_transitions(tz.key, w // 86400) if w - MARGIN <= t[0] <= w + MARGIN]
    offsets = {offset_at(tz, w - MARGIN)} | {after for _, _, after in trans}
    showing_w = sorted(w - o for o in offsets if (w - o) + offset_at(tz, w - o) == w)
    if showing_w:
        return showing_w[0]  # exists once, or twice: the first (earlier) instant
    for at, before, after in trans:
        if before < after and at + before <= w < at + after:
            return w - before  # in the gap this transition opened: the offset before it
    raise AssertionError(f"{wall} in {tz}: neither a valid local time nor in a gap")


def parse_local(text):
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?", text or ""):
        raise CaseError(f"dtstart {text!r} must be a local date-time without offset")
    return datetime.fromisoformat(text)


def parse_instant(text, what):
    if not isinstance(text, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", text):
        raise CaseError(f"{what} {text!r} must be an RFC 3339 instant with Z or an offset")
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t.astimezone(UTC)


def instant_seconds(t):
    return (t.replace(tzinfo=None) - EPOCH) // timedelta(seconds=1) if t.tzinfo is None else (t - EPOCH.replace(tzinfo=UTC)) // timedelta(seconds=1)


def case_rule(case):
    if "rrule" in case and "pattern" in case:
        raise CaseError("give either rrule or pattern")
    if "rrule" in case:
        for field in ("interval", "until", "limit"):
            if field in case:
                raise CaseError(f"{field} belongs to the pattern form")
        rule = case["rrule"].strip()
        return rule[6:] if rule.upper().startswith("RRULE:") else rule
    if "pattern" not in case:
        raise CaseError("rrule or pattern is required")
    freq = {"daily": "DAILY", "weekly": "WEEKLY", "monthly": "MONTHLY", "yearly": "YEARLY"}.get(case["pattern"])
    if freq is None:
        raise CaseError(f"unknown pattern {case['pattern']!r}")
    interval = case.get("interval", 1)
    if not isinstance(interval, int) or interval < 1:
        raise CaseError("interval must be an integer >= 1")
    rule = f"FREQ={freq};INTERVAL={interval}"
    if "until" in case and "limit" in case:
        raise CaseError("until and limit cannot be combined")
    if "until" in case:
        rule += ";UNTIL=" + parse_instant(case["until"], "until").strftime("%Y%m%dT%H%M%SZ")
    if "limit" in case:
        if not isinstance(case["limit"], int) or case["limit"] < 1:
            raise CaseError("limit must be an integer >= 1")
        rule += f";COUNT={case['limit']}"
    return rule


def split_until(rule):
    """Takes UNTIL out of the rule (SPEC §3): it is compared with resolved instants."""
    parts, until = [], None
    for part in rule.upper().split(";"):
        name, _, value = part.partition("=")
        if name == "UNTIL":
            if not re.fullmatch(r"\d{8}T\d{6}Z", value):
                raise CaseError(f"UNTIL={value} must be a UTC date-time like 20261231T235959Z")
            until = wall_seconds(datetime.strptime(value, "%Y%m%dT%H%M%SZ"))
        else:
            parts.append(part)
    names = [p.partition("=")[0] for p in rule.upper().split(";")]
    if "COUNT" in names and until is not None:
        raise CaseError("COUNT and UNTIL must not occur together")
    return ";".join(parts), until


def answer(case):
    unknown = set(case) - ALLOWED_FIELDS
    if unknown:
        raise CaseError(f"unknown fields {sorted(unknown)}")
    rule, until = split_until(case_rule(case))
    dtstart = parse_local(case.get("dtstart"))
    try:
        tz = zoneinfo.ZoneInfo(case.get("tz"))
    except Exception:
        raise CaseError(f"unknown zone {case.get('tz')!r}")
    after = instant_seconds(parse_instant(case["after"], "after")) if "after" in case else None
    count = case.get("count")
    if not isinstance(count, int) or count < 0:
        raise CaseError("count must be an integer >= 0")
    if count == 0:
        return []
    try:
        expansion = rrulestr(rule, dtstart=dtstart)
    except ValueError as e:
        raise CaseError(f"invalid rule: {e}")
    best = []  # the `count` earliest instants so far, sorted
    examined = 0
    for wall in expansion:
        examined += 1
        if examined > MAX_EXAMINED:
            raise CaseError("more than 5,000,000 wall-clock instances examined")
        w = wall_seconds(wall)
        # Every instant from this wall time on is later than w - MARGIN.
        if until is not None and w - MARGIN > until:
            break
        if len(best) == count and w - MARGIN > best[-1]:
            break
        if after is not None and w + MARGIN <= after:
            continue
        u = resolve(tz, wall)
        if (after is None or u > after) and (until is None or u <= until) and u not in best:
            bisect.insort(best, u)
            del best[count:]
    return [(EPOCH + timedelta(seconds=u)).strftime("%Y-%m-%dT%H:%M:%SZ") for u in best]


class Budget(Exception):
    pass


def first_walls(items):
    """First instance of each rule from its start, if DTSTART = that instance matches the rule
    (SPEC §6). A search longer than two seconds (a rule that almost never matches) gives null."""

    def out_of_time(*_):
        raise Budget()

    signal.signal(signal.SIGALRM, out_of_time)
    out = []
    for item in items:
        signal.alarm(2)
        try:
            start = datetime.fromisoformat(item["start"])
            first = next(iter(rrulestr(item["rule"], dtstart=start)), None)
            if first is not None and next(iter(rrulestr(item["rule"], dtstart=first)), None) != first:
                first = None
        except (ValueError, Budget):
            first = None
        finally:
            signal.alarm(0)
        out.append(first.isoformat() if first is not None else None)
    return out


def main():
    args = sys.argv[1:]
    if args == ["--tzdata-version"]:
        print(tzdata.IANA_VERSION)
        return 0
    data = json.load(sys.stdin)
    if args == ["--first-walls"]:
        json.dump(first_walls(data), sys.stdout)
        return 0
    if args == ["--transitions"]:
        lo = instant_seconds(parse_instant(data["from"], "from"))
        hi = instant_seconds(parse_instant(data["to"], "to"))
        json.dump({z: transitions(zoneinfo.ZoneInfo(z), lo, hi, 43200) for z in data["zones"]}, sys.stdout)
        return 0
    status = 0
    for case in data:
        try:
            line = {"id": case.get("id"), "occurrences": answer(case)}
        except CaseError as e:
            line, status = {"id": case.get("id"), "error": str(e)}, 1
        print(json.dumps(line))
    return status


if __name__ == "__main__":
    sys.exit(main())
