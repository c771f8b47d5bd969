"""porta's Analytics API cuts time as porta does (issue 12): `period` windows (rolling without `since`),
since/until ranges widened to whole granularity steps, one value per step, time zones, the previous period
only with `skip_change=false`, and its 400 answers. Traffic of the current hour goes through the real
backend listener (authrep); traffic of past hours is written into the backend's hourly counters, as the
backend listener would have counted it then."""
from __future__ import annotations

import datetime

import pytest
import requests
from test_porta import Lab, account_id, metric_id, new_plan, new_product

from maaslab.porta.db import iso

UTC = datetime.timezone.utc


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("porta-stats"))
    yield lab
    lab.stop()


@pytest.fixture(scope="module")
def app(lab):
    sid = new_product(lab, "Stats Product")["id"]
    plan = new_plan(lab, sid)
    app = lab.ok("POST", f"/admin/api/accounts/{account_id(lab, 'user1')}/applications.json", 201,
                 data={"plan_id": plan["id"], "name": "stats"})["application"]
    lab.ok("POST", f"/admin/api/services/{sid}/proxy/deploy.json", 201)
    return dict(app, hits=metric_id(lab, sid, "hits"))


def past_hits(lab: Lab, app: dict, when: str, n: int) -> None:
    """n hits counted by the backend listener in the hour that contains `when` (UTC)."""
    t = datetime.datetime.fromisoformat(when).replace(minute=0, second=0, tzinfo=UTC)
    st = lab.porta.store
    with st.lock:
        for period, start in (("hour", t), ("eternity", datetime.datetime(1970, 1, 1, tzinfo=UTC))):
            st.add_usage(app["id"], app["hits"], period, iso(start), n)


def usage(lab: Lab, app: dict, status: int = 200, **params) -> dict:
    return lab.ok("GET", f"/stats/applications/{app['id']}/usage.json", status,
                  params={"metric_name": "hits", **params})


@pytest.fixture(scope="module")
def traffic(lab, app):
    past_hits(lab, app, "2025-03-10T09:15:00", 2)
    past_hits(lab, app, "2025-03-10T23:40:00", 5)  # 2025-03-11 00:40 in Madrid (UTC+1)
    past_hits(lab, app, "2025-07-01T00:10:00", 7)
    latest = lab.ok("GET", f"/admin/api/services/{app['service_id']}/proxy/configs/sandbox/latest.json")
    content = latest["proxy_config"]["content"]
    for _ in range(3):  # this hour's traffic, through the backend listener
        r = requests.get(content["backend"]["endpoint"] + "/transactions/authrep.xml", timeout=10,
                         params={"service_token": content["backend_authentication_value"], "service_id": content["id"],
                                 "user_key": app["user_key"], "usage[hits]": 1})
        assert r.status_code == 200, r.text
    return app


def test_since_until_is_cut_into_whole_granularity_steps(lab, traffic):
    """Without `period`: one value per hour, day, 6 hours or month from the step containing `since` to the
    step containing `until`; `period.name` is null.
    Upstream: porta app/lib/stats/views/usage.rb (extract_range_and_granularity, sanitize_range_and_granularity),
    lib/time_hacks.rb (beginning_of_cycle, end_of_cycle), 3scale_time_range lib/3scale_time_range.rb (round),
    app/lib/stats/storage.rb (values_in_range)."""
    days = usage(lab, traffic, granularity="day", since="2025-03-01", until="2025-03-31")
    assert days["period"] == {"name": None, "since": "2025-03-01T00:00:00Z", "until": "2025-03-31T23:59:59Z",
                              "timezone": "Etc/UTC", "granularity": "day"}
    assert len(days["values"]) == 31 and days["values"][9] == 7 and days["total"] == 7
    assert "previous_total" not in days and "change" not in days  # skip_change defaults to true
    hours = usage(lab, traffic, granularity="hour", since="2025-03-10T08:30:00", until="2025-03-10T23:05:00")
    assert (hours["period"]["since"], hours["period"]["until"]) == ("2025-03-10T08:00:00Z", "2025-03-10T23:59:59Z")
    assert len(hours["values"]) == 16 and (hours["values"][1], hours["values"][15], hours["total"]) == (2, 5, 7)
    quarters = usage(lab, traffic, granularity="21600", since="2025-03-10", until="2025-03-10T23:59:59")
    assert quarters["period"]["granularity"] == 21600 and quarters["values"] == [0, 2, 0, 5]
    months = usage(lab, traffic, granularity="month", since="2025-01-15", until="2025-12-02")
    assert (months["period"]["since"], months["period"]["until"]) == ("2025-01-01T00:00:00Z", "2025-12-31T23:59:59Z")
    assert months["values"] == [0, 0, 7, 0, 0, 0, 7, 0, 0, 0, 0, 0]


def test_a_period_is_a_window_of_its_length(lab, traffic):
    """`period` with `since` starts there and lasts one day/week/month/year; without `since` it ends now
    (rolling), so this hour's traffic is in it; default granularity by period.
    Upstream: porta app/lib/stats/views/usage.rb (GRANULARITIES, range_since + length - 1.second)."""
    month = usage(lab, traffic, period="month", since="2025-03-01")
    assert (month["period"]["name"], month["period"]["granularity"]) == ("month", "day")
    assert (month["period"]["since"], month["period"]["until"]) == ("2025-03-01T00:00:00Z", "2025-03-31T23:59:59Z")
    assert len(month["values"]) == 31 and month["total"] == 7
    year = usage(lab, traffic, period="year", since="2025-01-01")
    assert year["period"]["granularity"] == "month" and year["values"][2] == 7 and year["values"][6] == 7
    day = usage(lab, traffic, period="day", since="2025-03-10")
    assert day["period"]["granularity"] == "hour" and len(day["values"]) == 24 and day["values"][9] == 2
    now = datetime.datetime.now(UTC)
    rolling = usage(lab, traffic, period="day")
    since = datetime.datetime.fromisoformat(rolling["period"]["since"].replace("Z", "+00:00"))
    assert now - datetime.timedelta(days=1, hours=1) <= since <= now - datetime.timedelta(hours=23)
    until = datetime.datetime.fromisoformat(rolling["period"]["until"].replace("Z", "+00:00"))
    hours = round((until - since).total_seconds() / 3600)
    # 25 hours, 24 only in the first second of an hour (the window ends a second before now)
    assert len(rolling["values"]) == hours and hours in (24, 25) and rolling["total"] == 3
    week = usage(lab, traffic, period="week")
    assert week["period"]["granularity"] == 21600 and week["total"] == 3 and len(week["values"]) in (28, 29)
    eternity = usage(lab, traffic, period="eternity")
    assert eternity["values"] == [17] and eternity["period"]["granularity"] == "eternity"


def test_time_zone_steps_are_local(lab, traffic):
    """`timezone` reads since/until as local times and cuts local days: a hit at 23:40 UTC on March 10 is on
    March 11 in Madrid (UTC+1 then).
    Upstream: porta app/lib/stats/base.rb (extract_timezone, period_detail), app/lib/stats/storage.rb
    (use_aggregated_values with a time shift)."""
    madrid = usage(lab, traffic, granularity="day", since="2025-03-09", until="2025-03-12", timezone="Europe/Madrid")
    assert madrid["period"]["since"] == "2025-03-09T00:00:00+01:00" and madrid["period"]["timezone"] == "Europe/Madrid"
    assert madrid["values"] == [0, 2, 5, 0]
    utc = usage(lab, traffic, granularity="day", since="2025-03-09", until="2025-03-12")
    assert utc["values"] == [0, 7, 0, 0]


def test_previous_period_only_when_asked(lab, traffic):
    """`skip_change=false` adds the previous range of the same length and the change in percent.
    Upstream: porta app/controllers/stats/data/base_controller.rb (slice_and_use_defaults),
    3scale_time_range (TimeRange#previous), lib/numeric_hacks.rb (percentage_change_from)."""
    r = usage(lab, traffic, granularity="day", since="2025-03-11", until="2025-03-20", skip_change="false")
    assert (r["total"], r["previous_total"], r["change"]) == (0, 7, -100.0)
    r = usage(lab, traffic, granularity="day", since="2025-03-01", until="2025-03-10", skip_change="false")
    assert (r["total"], r["previous_total"], r["change"]) == (7, 0, 100.0)


@pytest.mark.parametrize("params, message", [
    ({"granularity": "week", "since": "2025-03-01", "until": "2025-03-02"}, "Granularity must be one of"),
    ({"granularity": "day", "since": "2025-03-01"}, "You need to specify either 'range' or 'since' and 'until'"),
    ({"granularity": "hour", "since": "2025-01-01", "until": "2025-06-01"}, "must be less than 90 days"),
    ({"granularity": "day", "since": "2024-01-01", "until": "2025-06-01"}, "must be less than 1 year"),
    ({"period": "hour"}, "Period must be one of"),
    ({"period": "month", "granularity": "eternity"}, "Granularity 'eternity' is only supported for period 'eternity'"),
    ({"granularity": "day", "since": "March first", "until": "2025-03-02"}, "valid date/time format"),
    ({"period": "day", "metric_name": "nope"}, "metric nope not found"),
])
def test_invalid_requests_are_400(lab, app, params, message):
    """Stats::InvalidParameterError is answered 400 `{"error": ...}`.
    Upstream: porta app/controllers/stats/data/base_controller.rb (render_usage rescue),
    app/lib/stats/views/usage.rb, app/lib/stats/base.rb (extract_metric, to_time)."""
    r = lab.get(f"/stats/applications/{app['id']}/usage.json", params={"metric_name": "hits", **params})
    assert r.status_code == 400 and message in r.json()["error"], r.text


def test_service_usage_sums_its_applications_by_step(lab, traffic):
    """The product's usage over a range is its applications' counts per step.
    Upstream: porta app/controllers/stats/data/services_controller.rb."""
    r = lab.ok("GET", f"/stats/services/{traffic['service_id']}/usage.json",
               params={"metric_name": "hits", "granularity": "month", "since": "2025-01-01", "until": "2025-12-31"})
    assert r["values"][2] == 7 and r["service"]["id"] == traffic["service_id"]
    assert lab.get("/stats/applications/999999/usage.json", params={"metric_name": "hits", "period": "day"}
                   ).status_code == 404
