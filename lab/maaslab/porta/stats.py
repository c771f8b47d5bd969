"""Analytics API: usage of an application or of a product over a period or a since/until range.

Upstream (read, not copied): porta app/controllers/stats/data/base_controller.rb (parameters, 400 answers,
`skip_change` true unless "false"), app/controllers/stats/data/{applications,services}_controller.rb,
app/lib/stats/views/usage.rb (GRANULARITIES, ALLOWED_TIME_RANGES, how a period or a range is cut),
app/lib/stats/base.rb (period detail, timezone, metric lookup), app/lib/stats/storage.rb (values per step),
lib/time_hacks.rb (beginning_of_cycle / end_of_cycle) and the 3scale_time_range gem (TimeRange#round,
#previous, step enumeration).

How porta cuts time, and so the lab:
* `period` (day|week|month|year|eternity) is a window of that length starting at `since`, or ending now
  without `since` (a rolling window, not the calendar period); its end is `since + length - 1s` (end of
  minute). Default granularity: day → hour, week → 6 hours (21600), month → day, year → month.
* Without `period`, `granularity` (hour|day|month|21600) and both `since` and `until` are required.
* The range is then widened to whole steps of the granularity (start of the first step, end of the last),
  and `values` holds one count per step. Longest ranges: hour 90 days, 6 hours 6 months, day 1 year,
  month 10 years.
* Times are read in `timezone` (default the account's, UTC here); steps are local days/months.

The lab counts every authorized hit in hourly buckets (backend listener, porta.sqlite3) and sums them per
step, so any range, granularity and whole-hour time zone gives what the gateway counted.
"""
from __future__ import annotations

import bisect
import calendar
import datetime
import math
import zoneinfo

from .db import iso
from .server import ID, Reply, Req, route

UTC = datetime.timezone.utc
SIX_HOURS = 21600
# Stats::Views::Usage::GRANULARITIES: period -> default granularity
PERIOD_GRANULARITY = {"eternity": "eternity", "year": "month", "month": "day", "week": SIX_HOURS, "day": "hour"}
ALLOWED_GRANULARITIES = ("eternity", "month", "day", SIX_HOURS, "hour")
# ALLOWED_TIME_RANGES (ActiveSupport durations: a year is 365.2425 days, a month a twelfth of it)
_YEAR = datetime.timedelta(days=365.2425)
MAX_RANGE = {"month": 10 * _YEAR, "day": _YEAR, SIX_HOURS: _YEAR / 2, "hour": datetime.timedelta(days=90)}
MAX_RANGE_TEXT = {"month": "10 years", "day": "1 year", SIX_HOURS: "6 months", "hour": "90 days"}


def bad(message: str) -> Reply:
    """render_error(e.to_s, status: :bad_request) for a JSON request."""
    return Reply(400, {"error": message})


def add_months(t: datetime.datetime, n: int) -> datetime.datetime:
    """`t + n.months` as ActiveSupport does it: same day, clamped to the month's last day."""
    y, m = divmod(t.month - 1 + n, 12)
    year, month = t.year + y, m + 1
    return t.replace(year=year, month=month, day=min(t.day, calendar.monthrange(year, month)[1]))


def add_period(t: datetime.datetime, period: str, n: int = 1) -> datetime.datetime:
    if period == "year":
        return add_months(t, 12 * n)
    if period == "month":
        return add_months(t, n)
    return t + datetime.timedelta(days=(7 if period == "week" else 1) * n)


def beginning_of(g, t: datetime.datetime) -> datetime.datetime:
    """Time#beginning_of_cycle (lib/time_hacks.rb): a named period, or whole 6-hour steps from midnight."""
    t = t.replace(microsecond=0)
    if g == "hour":
        return t.replace(minute=0, second=0)
    day = t.replace(hour=0, minute=0, second=0)
    if g == SIX_HOURS:
        return day + datetime.timedelta(seconds=SIX_HOURS * math.floor((t - day).total_seconds() / SIX_HOURS))
    if g == "day":
        return day
    if g == "month":
        return day.replace(day=1)
    raise ValueError(g)


def end_of(g, t: datetime.datetime) -> datetime.datetime:
    """Time#end_of_cycle: the last second of the step that contains `t`."""
    if g == SIX_HOURS:
        day = t.replace(hour=0, minute=0, second=0, microsecond=0)
        steps = math.ceil((t - day).total_seconds() / SIX_HOURS)
        return day + datetime.timedelta(seconds=SIX_HOURS * steps - 1)
    return next_step(g, beginning_of(g, t)) - datetime.timedelta(seconds=1)


def next_step(g, t: datetime.datetime) -> datetime.datetime:
    if g == "month":
        return add_months(t, 1)
    if g == "day":
        return t + datetime.timedelta(days=1)  # a local calendar day (23 or 25 hours across DST)
    return t + datetime.timedelta(seconds=3600 if g == "hour" else SIX_HOURS)


def parse_granularity(raw: str):
    """Stats::Aggregation.normalize_granularity: digits are seconds, 3600/86400 name their unit."""
    text = str(raw).strip()
    if text.isdigit():
        return {3600: "hour", 86400: "day"}.get(int(text), int(text))
    return text


def parse_time(raw: str, tz: datetime.tzinfo) -> datetime.datetime:
    """`zone.parse(since)`: a date is its local midnight, a time without offset is local time."""
    try:
        t = datetime.datetime.fromisoformat(str(raw).strip().replace(" ", "T", 1))
    except ValueError:
        raise bad("Date parameters should have valid date/time format.") from None
    return t.replace(tzinfo=tz) if t.tzinfo is None else t.astimezone(tz)


def zone(name: str | None) -> tuple[datetime.tzinfo, str]:
    if not name or name in ("UTC", "Etc/UTC"):
        return zoneinfo.ZoneInfo("Etc/UTC"), "Etc/UTC"
    try:
        return zoneinfo.ZoneInfo(name), name
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise bad(f"invalid timezone {name}") from None


def stamp(t: datetime.datetime) -> str:
    """TimeWithZone#as_json with time_precision 0 (config/initializers/time_with_zone.rb)."""
    text = t.replace(microsecond=0).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def cut(req: Req, now: datetime.datetime):
    """(begin, end, granularity, timezone name) of a usage request (Stats::Views::Usage#extract_range_and_granularity)."""
    tz, tz_name = zone(req.get("timezone"))
    period = req.get("period") or None
    raw_gran = req.get("granularity") or None
    if raw_gran == "eternity" and period != "eternity":
        raise bad("Granularity 'eternity' is only supported for period 'eternity'")
    if period:
        if period not in PERIOD_GRANULARITY:
            raise bad(f"Period must be one of {list(PERIOD_GRANULARITY)} not {period!r}")
        gran = parse_granularity(raw_gran) if raw_gran else PERIOD_GRANULARITY[period]
        if period == "eternity":
            if gran != "eternity":
                raise bad("Only 'eternity' granularity is supported for period 'eternity'")
            day = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
            return (datetime.datetime(1970, 1, 1, tzinfo=UTC), day + datetime.timedelta(days=1, seconds=-1),
                    "eternity", tz_name)
        local_now = now.astimezone(tz).replace(microsecond=0)
        since = parse_time(req.get("since"), tz) if req.get("since") else add_period(local_now, period, -1)
        until = (add_period(since, period) - datetime.timedelta(seconds=1)).replace(second=59)
    else:
        if not raw_gran:
            raise bad("Missing parameter :granularity")
        gran = parse_granularity(raw_gran)
        if not (req.get("since") and req.get("until")):
            raise bad("You need to specify either 'range' or 'since' and 'until'")
        since, until = parse_time(req.get("since"), tz), parse_time(req.get("until"), tz)
    if gran not in ALLOWED_GRANULARITIES or gran == "eternity":
        raise bad(f"Granularity must be one of [:eternity, :month, :day, 21600, :hour], not {raw_gran}")
    begin, end = beginning_of(gran, since), end_of(gran, until)
    if end - begin > MAX_RANGE[gran]:
        raise bad(f"Time range for the granularity must be less than {MAX_RANGE_TEXT[gran]}")
    return begin, end, gran, tz_name


def steps(begin: datetime.datetime, end: datetime.datetime, gran) -> list[tuple[datetime.datetime, datetime.datetime]]:
    out, t = [], begin
    while t <= end:
        nxt = next_step(gran, t)
        out.append((t, nxt))
        t = nxt
    return out


def values(store, app_ids: list[int], metric_id: int, begin, end, gran) -> list[int]:
    if gran == "eternity":
        return [sum(store.usage(a, metric_id, "eternity", iso(datetime.datetime(1970, 1, 1, tzinfo=UTC)))
                    for a in app_ids)]
    cuts = steps(begin, end, gran)
    hourly = store.hourly_usage(app_ids, metric_id, iso(begin.astimezone(UTC)), iso(end.astimezone(UTC)))
    buckets = [0] * len(cuts)
    edges = [a.astimezone(UTC) for a, _ in cuts]
    for start, value in hourly.items():
        t = datetime.datetime.strptime(start, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        i = bisect.bisect_right(edges, t) - 1  # the step whose start is the last one not after the hour
        if i >= 0:
            buckets[i] += value
    return buckets


def _series(api, req: Req, service_id: int, app_ids: list[int]) -> dict:
    # Stats::Data::BaseController#usage_params: params.require → 400 plain text (ApplicationController)
    for name in ["metric_name"] + ([] if req.get("period") else ["granularity", "since"]):
        if not req.get(name):
            raise Reply(400, f"Required parameter missing: {name}", "text/plain; charset=utf-8")
    begin, end, gran, tz_name = cut(req, datetime.datetime.now(UTC))
    metrics = api.store.all("metric", owner="service", owner_id=service_id)
    m = next((x for x in metrics if x["system_name"] == req.get("metric_name")), None)
    if m is None:  # Stats::Base#extract_metric
        raise bad(f"metric {req.get('metric_name')} not found")
    data = values(api.store, app_ids, m["id"], begin, end, gran)
    out = {"metric": {"id": m["id"], "name": m["friendly_name"], "system_name": m["system_name"],
                      "unit": m.get("unit") or "hit"},
           "period": {"name": req.get("period") or None, "since": stamp(begin), "until": stamp(end),
                      "timezone": tz_name, "granularity": gran},
           "total": sum(data), "values": data}
    # skip_change is true unless it is the string "false"; eternity has no previous period
    if req.get("skip_change") == "false" and req.get("period") != "eternity":
        length = end - begin + datetime.timedelta(seconds=1)  # TimeRange#previous: same length, ends at begin
        previous = sum(values(api.store, app_ids, m["id"], begin - length, begin - datetime.timedelta(seconds=1),
                              gran))
        out["previous_total"] = previous
        diff = out["total"] - previous  # Numeric#percentage_change_from (lib/numeric_hacks.rb)
        out["change"] = 0.0 if diff == 0 else (100.0 if previous == 0 else diff * 100.0 / previous)
    return out


@route("GET", "/stats/applications/" + ID + "/usage")
def app_usage(api, req: Req, id):
    app = api.store.get("application", id)
    if app is None:  # Stats::Data::ApplicationsController#find_cinstance
        raise Reply(404, {"error": "Application not found"})
    out = _series(api, req, app["service_id"], [app["id"]])
    plan = api.store.get("plan", app["plan_id"]) or {}
    acc = api.store.get("account", app["account_id"]) or {}
    out["application"] = {"id": app["id"], "name": app.get("name"), "state": app["state"],
                          "description": app.get("description"),
                          "plan": {"id": plan.get("id"), "name": plan.get("name")},
                          "account": {"id": acc.get("id"), "name": acc.get("org_name")},
                          "service": {"id": app["service_id"]}}
    return out


@route("GET", "/stats/services/" + ID + "/usage")
def service_usage(api, req: Req, id):
    svc = api.need_service(id)
    out = _series(api, req, svc["id"], [a["id"] for a in api.store.all("application", service_id=svc["id"])])
    out["service"] = {"id": svc["id"], "name": svc["name"], "system_name": svc["system_name"],
                      "state": svc["state"]}
    return out
