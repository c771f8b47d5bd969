"""Decision logic of maas.threescale.k8s_lease (module_utils/k8s_lease.py) against an in-memory Lease
store that answers like the API server (409 AlreadyExists on a second create, 409 Conflict on a stale
resourceVersion, DeleteOptions preconditions), with a fake clock: no network, no sleeping.

Upstream: kubernetes staging/src/k8s.io/client-go/tools/leaderelection/leaderelection.go
(tryAcquireOrRenew: a Lease is held while renewTime + leaseDurationSeconds is in the future; our own
identity keeps acquireTime and leaseTransitions, a take-over adds one transition), resourcelock/leaselock.go
(Create, Update at the resourceVersion read), apiserver pkg/registry/rest/delete.go (preconditions)."""
from __future__ import annotations

import copy
import datetime
import itertools

import pytest

from ansible_collections.maas.threescale.plugins.module_utils.k8s_lease import (
    UTC, LeaseApi, LeaseError, LeaseLocker, TransientError, decide, expires_at, lease_body, micro_time, parse_time)

T0 = datetime.datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)
NS = "3scale"
BASE = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"


class Clock:
    def __init__(self):
        self.t = 0.0
        self.sleeps = []

    def now(self):
        return T0 + datetime.timedelta(seconds=self.t)

    def monotonic(self):
        return self.t

    def sleep(self, s):
        self.sleeps.append(s)
        self.t += s


def status(code, reason, message):
    return {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason, "message": message}


class Store:
    """Leases of one namespace, answering (status, body, headers) per request like the API server.
    `script` is a list of callables run before each request; one may return a canned answer or raise."""

    def __init__(self):
        self.objects = {}
        self.rv = itertools.count(100)
        self.log = []
        self.script = []
        self.hooks = []   # called after each request: (method, name) -> None (simulate other writers)

    def put_lease(self, name, holder, renewed, duration=60, transitions=0):
        obj = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
               "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}-{next(self.rv)}", "resourceVersion": ""},
               "spec": {"holderIdentity": holder, "leaseDurationSeconds": duration, "acquireTime": micro_time(renewed),
                        "renewTime": micro_time(renewed), "leaseTransitions": transitions}}
        obj["metadata"]["resourceVersion"] = str(next(self.rv))
        self.objects[name] = obj
        return obj

    def __call__(self, method, path, body, content_type):
        name = path[len(BASE) + 1:] if path != BASE else (body or {}).get("metadata", {}).get("name")
        self.log.append((method, name))
        if self.script:
            canned = self.script.pop(0)(method, name)
            if canned is not None:
                return canned
        answer = self.serve(method, name, body, content_type)
        for hook in self.hooks:
            hook(method, name)
        return answer

    def serve(self, method, name, body, content_type):
        cur = self.objects.get(name)
        if method == "GET":
            return (200, copy.deepcopy(cur), {}) if cur else (404, status(404, "NotFound", "not found"), {})
        if method == "POST":
            if cur:
                return 409, status(409, "AlreadyExists", f'leases.coordination.k8s.io "{name}" already exists'), {}
            obj = copy.deepcopy(body)
            obj["metadata"].update(uid=f"uid-{name}-{next(self.rv)}", resourceVersion=str(next(self.rv)))
            self.objects[name] = obj
            return 201, copy.deepcopy(obj), {}
        if cur is None:
            return 404, status(404, "NotFound", "not found"), {}
        if method in ("PUT", "PATCH"):
            want = body["metadata"].get("resourceVersion")
            if want != cur["metadata"]["resourceVersion"]:
                return 409, status(409, "Conflict", "the object has been modified"), {}
            if method == "PUT":
                obj = copy.deepcopy(body)
            else:
                obj = copy.deepcopy(cur)
                obj["spec"].update(body["spec"])
            obj["metadata"].update(uid=cur["metadata"]["uid"], resourceVersion=str(next(self.rv)))
            self.objects[name] = obj
            return 200, copy.deepcopy(obj), {}
        if method == "DELETE":
            pre = body["preconditions"]
            if pre["uid"] != cur["metadata"]["uid"] or pre["resourceVersion"] != cur["metadata"]["resourceVersion"]:
                return 409, status(409, "Conflict", "Precondition failed"), {}
            del self.objects[name]
            return 200, status(200, "", ""), {}
        raise AssertionError(method)


def locker(store, clock, holder="me", duration=60, retries=3):
    api = LeaseApi(store, NS, retries=retries, retry_delay=2.0, sleep=clock.sleep)
    return LeaseLocker(api, holder, duration, clock=clock.now, sleep=clock.sleep, monotonic=clock.monotonic)


# -- pure decisions ------------------------------------------------------------------------------

def test_decide_covers_every_state_of_a_lease():
    store = Store()
    assert decide(None, "me", T0) == "create"
    assert decide(store.put_lease("a", "me", T0), "me", T0 + datetime.timedelta(hours=5)) == "take_own"
    assert decide(store.put_lease("b", "", T0), "me", T0) == "take_free"
    assert decide(store.put_lease("c", "other", T0, 60), "me", T0 + datetime.timedelta(seconds=61)) == "take_expired"
    assert decide(store.put_lease("d", "other", T0, 60), "me", T0 + datetime.timedelta(seconds=59)) == "wait"
    stale = store.put_lease("e", "other", T0)
    del stale["spec"]["renewTime"], stale["spec"]["acquireTime"]
    assert decide(stale, "me", T0) == "take_expired"   # a Lease with no time holds nothing


def test_expiry_uses_renew_time_before_acquire_time():
    lease = {"spec": {"acquireTime": "2026-11-30T10:00:00.000000Z", "renewTime": "2026-11-30T11:59:30.5Z",
                      "leaseDurationSeconds": 60}}
    assert expires_at(lease) == datetime.datetime(2026, 11, 30, 12, 0, 30, 500000, tzinfo=UTC)


@pytest.mark.parametrize("text,expected", [
    ("2026-11-30T12:00:00.123456Z", T0.replace(microsecond=123456)),
    ("2026-11-30T12:00:00Z", T0),
    ("2026-11-30T14:00:00.5+02:00", T0.replace(microsecond=500000)),
    ("", None), ("garbage", None)])
def test_parse_time_reads_micro_time_and_rfc3339(text, expected):
    assert parse_time(text) == expected


def test_lease_body_counts_transitions_like_leaderelection():
    store = Store()
    mine = store.put_lease("a", "me", T0, transitions=3)
    theirs = store.put_lease("b", "other", T0, transitions=3)
    later = T0 + datetime.timedelta(seconds=10)
    own = lease_body("a", NS, "me", 60, later, old=mine)
    assert own["spec"]["acquireTime"] == mine["spec"]["acquireTime"] and own["spec"]["leaseTransitions"] == 3
    assert own["metadata"]["resourceVersion"] == mine["metadata"]["resourceVersion"]
    taken = lease_body("b", NS, "me", 60, later, old=theirs)
    assert taken["spec"]["leaseTransitions"] == 4 and taken["spec"]["acquireTime"] == micro_time(later)
    new = lease_body("c", NS, "me", 60, later)
    assert "resourceVersion" not in new["metadata"] and new["spec"]["leaseTransitions"] == 0
    assert new["spec"]["renewTime"] == "2026-11-30T12:00:10.000000Z"


# -- acquire -------------------------------------------------------------------------------------

def test_ten_free_names_cost_two_requests_each_in_sorted_order():
    store, clock = Store(), Clock()
    names = [f"m{i}" for i in (3, 1, 9, 0, 2, 8, 4, 7, 5, 6)]
    report = locker(store, clock).acquire(names, 10, 1)
    assert [e["name"] for e in report] == sorted(names)
    assert store.log == [(m, n) for n in sorted(names) for m in ("GET", "POST")]
    assert all(store.objects[n]["spec"]["holderIdentity"] == "me" for n in names)
    assert clock.sleeps == []


def test_live_lease_is_waited_for_and_taken_when_released():
    store, clock = Store(), Clock()
    theirs = store.put_lease("b", "other", T0, 60)

    def release_after_three_reads(method, name):
        if method == "GET" and name == "b" and store.log.count(("GET", "b")) == 3:
            store.objects.pop("b")
    store.hooks.append(release_after_three_reads)
    lk = locker(store, clock)
    report = lk.acquire(["b", "a"], 30, 0.5)
    assert [(e["name"], e["action"]) for e in report] == [("a", "create"), ("b", "create")]
    assert report[1]["waited"] == 1.5 and clock.sleeps == [0.5, 0.5, 0.5]   # three reads saw it held
    assert store.objects["b"]["metadata"]["uid"] != theirs["metadata"]["uid"]


def test_expired_lease_is_taken_over_at_the_resource_version_read():
    store, clock = Store(), Clock()
    old = store.put_lease("a", "killed-run", T0 - datetime.timedelta(seconds=3600), 60, transitions=2)
    report = locker(store, clock).acquire(["a"], 30, 1)
    assert report[0]["action"] == "take_expired" and report[0]["holder_seen"] == "killed-run"
    assert store.log == [("GET", "a"), ("PUT", "a")]
    now = store.objects["a"]
    assert now["metadata"]["uid"] == old["metadata"]["uid"] and now["spec"]["leaseTransitions"] == 3


def test_a_lease_expiring_during_the_wait_is_taken_right_after_its_expiry():
    store, clock = Store(), Clock()
    store.put_lease("a", "other", T0 - datetime.timedelta(seconds=55), 60)   # 5 s left
    report = locker(store, clock).acquire(["a"], 30, 10)
    assert report[0]["action"] == "take_expired"
    assert clock.sleeps == [pytest.approx(5.05)]   # slept until the expiry, not a whole poll interval


def test_timeout_releases_the_leases_taken_and_names_the_holder():
    store, clock = Store(), Clock()
    store.put_lease("c", "other-run", T0, 600)
    lk = locker(store, clock)
    with pytest.raises(LeaseError) as err:
        lk.acquire(["a", "b", "c"], 3, 1)
    assert err.value.details == {"name": "c", "holder": "other-run"}
    assert "held by other-run" in err.value.msg and "within 3 s" in err.value.msg
    assert sorted(store.objects) == ["c"]            # a and b given back
    assert ("DELETE", "a") in store.log and ("DELETE", "b") in store.log


def test_create_race_lost_then_the_winner_is_waited_for():
    store, clock = Store(), Clock()

    def other_run_creates_first(method, name):
        if method == "POST" and "a" not in store.objects:
            store.put_lease("a", "winner", clock.now(), 2)
        return None
    store.script.append(lambda m, n: None)           # GET: 404
    store.script.append(other_run_creates_first)     # then our POST finds it created: 409 AlreadyExists
    report = locker(store, clock).acquire(["a"], 30, 1)
    assert store.log[:3] == [("GET", "a"), ("POST", "a"), ("GET", "a")]
    assert report[0]["action"] == "take_expired" and report[0]["holder_seen"] == "winner"
    assert report[0]["waited"] > 0


def test_update_race_lost_reads_again():
    store, clock = Store(), Clock()
    store.put_lease("a", "dead", T0 - datetime.timedelta(hours=1), 60)

    def other_run_takes_it_over(method, name):
        if method == "PUT" and store.objects["a"]["spec"]["holderIdentity"] == "dead":
            store.put_lease("a", "quicker", clock.now(), 60)
        return None
    store.script += [lambda m, n: None, other_run_takes_it_over]
    with pytest.raises(LeaseError) as err:
        locker(store, clock).acquire(["a"], 2, 1)
    assert err.value.details["holder"] == "quicker"
    assert store.log[:3] == [("GET", "a"), ("PUT", "a"), ("GET", "a")]


def test_our_own_lease_is_taken_at_once_keeping_acquire_time():
    store, clock = Store(), Clock()
    mine = store.put_lease("a", "job-42", T0 - datetime.timedelta(seconds=5), 900, transitions=1)
    report = locker(store, clock, holder="job-42").acquire(["a"], 30, 1)
    assert report[0]["action"] == "take_own" and clock.sleeps == []
    assert store.objects["a"]["spec"]["acquireTime"] == mine["spec"]["acquireTime"]
    assert store.objects["a"]["spec"]["leaseTransitions"] == 1


def test_dropped_create_that_happened_is_recognised_as_ours():
    store, clock = Store(), Clock()

    def create_then_drop(method, name):
        if method == "POST" and not store.objects:
            store.serve(method, name, lease_body(name, NS, "me", 60, clock.now()), None)
            raise TransientError("Connection aborted")
        return None
    store.script += [lambda m, n: None, create_then_drop]
    lk = locker(store, clock)
    report = lk.acquire(["a"], 30, 1)
    # the retried POST got 409 AlreadyExists; the read showed our own identity: taken at once
    assert [m for m, _n in store.log] == ["GET", "POST", "POST", "GET", "PUT"]
    assert report[0]["action"] == "take_own" and lk.api.retried == 1 and clock.sleeps == [2.0]


def test_429_waits_for_retry_after_and_5xx_for_the_retry_delay():
    store, clock = Store(), Clock()
    store.script += [lambda m, n: (429, status(429, "TooManyRequests", "storage is (re)initializing"), {"Retry-After": "7"}),
                     lambda m, n: (503, status(503, "ServiceUnavailable", "apiserver is shutting down"), {}),
                     lambda m, n: None, lambda m, n: None]
    lk = locker(store, clock)
    lk.acquire(["a"], 30, 1)
    assert clock.sleeps == [7.0, 2.0] and lk.api.requests == 4
    assert "answered HTTP 429 TooManyRequests" in lk.api.retry_log[0]


def test_retries_are_bounded():
    store, clock = Store(), Clock()
    store.script += [lambda m, n: (500, status(500, "InternalError", "etcdserver: leader changed"), {})] * 10
    with pytest.raises(LeaseError) as err:
        locker(store, clock, retries=2).acquire(["a"], 30, 1)
    assert "etcdserver: leader changed" in err.value.msg and store.log == [("GET", "a")] * 3


def test_plan_reads_only():
    store, clock = Store(), Clock()
    store.put_lease("b", "other", T0, 60)
    store.put_lease("c", "dead", T0 - datetime.timedelta(hours=1), 60)
    plan = locker(store, clock).plan(["c", "b", "a"])
    assert [(e["name"], e["action"]) for e in plan] == [("a", "create"), ("b", "wait"), ("c", "take_expired")]
    assert {m for m, _n in store.log} == {"GET"}


def test_leases_taken_are_renewed_while_waiting_for_a_later_one():
    store, clock = Store(), Clock()
    store.put_lease("b", "other", T0, 100)
    lk = locker(store, clock, duration=20)
    lk.acquire(["a", "b"], 200, 5)
    patches = [n for m, n in store.log if m == "PATCH"]
    assert patches and set(patches) == {"a"}      # a renewed at least every 10 s of the 100 s wait
    assert len(patches) >= 9


# -- renew and release ---------------------------------------------------------------------------

def held_of(store, name):
    md = store.objects[name]["metadata"]
    return {"name": name, "uid": md["uid"], "resource_version": md["resourceVersion"]}


def test_renew_patches_at_our_resource_version_and_detects_a_take_over():
    store, clock = Store(), Clock()
    lk = locker(store, clock)
    lk.acquire(["a", "b"], 5, 1)
    held = [held_of(store, "a"), held_of(store, "b")]
    clock.t += 30
    out = lk.renew(held)
    assert [e["name"] for e in out] == ["a", "b"] and not lk.lost
    assert store.objects["a"]["spec"]["renewTime"] == micro_time(T0 + datetime.timedelta(seconds=30))
    stale = held_of(store, "b")
    store.put_lease("b", "thief", clock.now(), 60)    # b expired and another run took it
    out = lk.renew([held_of(store, "a"), stale])
    assert [e["name"] for e in out] == ["a"]
    assert lk.lost[0].details == {"name": "b", "holder": "thief", "gone": False} and "holder now thief" in lk.lost[0].msg


def test_renew_whose_answer_was_lost_is_recognised():
    store, clock = Store(), Clock()
    lk = locker(store, clock)
    lk.acquire(["a"], 5, 1)

    def patch_then_drop(method, name):
        if method == "PATCH" and store.log.count(("PATCH", "a")) == 1:
            held = held_of(store, "a")
            store.serve("PATCH", "a", {"metadata": {"resourceVersion": held["resource_version"]},
                                       "spec": {"renewTime": micro_time(clock.now()), "holderIdentity": "me"}}, None)
            raise TransientError("Connection reset by peer")
        return None
    store.script.append(patch_then_drop)
    out = lk.renew([held_of(store, "a")])
    assert out[0]["lease"]["metadata"]["resourceVersion"] == store.objects["a"]["metadata"]["resourceVersion"]
    assert not lk.lost


def test_release_deletes_only_what_is_still_ours():
    store, clock = Store(), Clock()
    lk = locker(store, clock)
    lk.acquire(["a", "b"], 5, 1)
    mine_b = held_of(store, "b")
    store.put_lease("b", "next-run", clock.now(), 60)   # expired and taken by another run meanwhile
    out = lk.release([held_of(store, "a"), mine_b])
    assert {e["name"]: e["action"] for e in out} == {"a": "released", "b": "not_ours"}
    assert out[0]["holder_seen"] == "next-run" and sorted(store.objects) == ["b"]
    assert lk.release([mine_b])[0]["action"] == "not_ours"
    store.objects.pop("b")
    assert lk.release([mine_b])[0]["action"] == "gone"


# -- keep (issue 19 item 7: short Leases renewed for as long as the run lives) -------------------

def test_keep_renews_every_third_of_the_duration_while_the_run_lives_then_stops():
    store, clock = Store(), Clock()
    lk = locker(store, clock, duration=60)
    lk.acquire(["a", "b"], 5, 1)
    held = [held_of(store, "a"), held_of(store, "b")]
    assert lk.keep(held, alive=lambda: clock.t < 100) == "ended"   # the run's process went away at t=100
    patches = [n for m, n in store.log if m == "PATCH"]
    assert patches == ["a", "b"] * 5                                 # at once, then t=20, 40, 60, 80; gone at 100
    # Never expired while kept; after the run ended it expires one duration after the last renewal.
    last = parse_time(store.objects["a"]["spec"]["renewTime"])
    assert (last - T0).total_seconds() >= 80 and expires_at(store.objects["a"]) == last + datetime.timedelta(seconds=60)
    assert sorted(store.objects) == ["a", "b"]                       # keeping never deletes


def test_keep_stops_when_the_run_releases_or_another_holder_has_one():
    store, clock = Store(), Clock()
    lk = locker(store, clock, duration=30)
    lk.acquire(["a"], 5, 1)
    held = [held_of(store, "a")]
    store.hooks.append(lambda m, n: store.objects.pop("a", None) if clock.t >= 25 else None)  # the run released it
    assert lk.keep(held, alive=lambda: True) == "released"
    store, clock = Store(), Clock()
    lk = locker(store, clock, duration=30)
    lk.acquire(["a"], 5, 1)
    held = [held_of(store, "a")]
    store.put_lease("a", "thief", clock.now(), 30)
    assert lk.keep(held, alive=lambda: True) == "lost"


def test_the_run_renews_and_releases_leases_its_keeper_renewed_meanwhile():
    """The keeper's renewals move the resourceVersion on: the run's own renew and release see a 409,
    read the Lease, find their uid and holder, and act at the version read."""
    store, clock = Store(), Clock()
    lk = locker(store, clock)
    lk.acquire(["a"], 5, 1)
    stale = held_of(store, "a")
    keeper = locker(store, clock)
    keeper.renew([stale])                         # the keeper renewed: stale is one version behind
    assert held_of(store, "a")["resource_version"] != stale["resource_version"]
    clock.t += 5
    out = lk.renew([stale])
    assert out[0]["name"] == "a" and not lk.lost
    keeper.renew([held_of(store, "a")])
    assert lk.release([stale])[0]["action"] == "released" and store.objects == {}
    # Another run's Lease of the same name is never released by a stale entry.
    store.put_lease("a", "me", clock.now(), 60)   # same holder name but a new object (new uid)
    assert lk.release([stale])[0]["action"] == "not_ours" and "a" in store.objects
