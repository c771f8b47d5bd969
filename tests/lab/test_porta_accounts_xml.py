"""porta's XML account list: the one list that carries each account's users (username, email) and
bought plans, which the JSON list does not (threescale_application's bulk mode resolves usernames with it).

Upstream: porta app/controllers/admin/api/accounts_controller.rb (index, ``paginate only: :index``,
``state`` filter), app/models/account.rb (Account#to_xml: ``bought_plans.to_xml(root: 'plans')``,
``users.to_xml(root: 'users')``), app/models/user.rb (User#to_xml), app/models/plan.rb (Plan#xml_builder),
app/models/service_plan.rb (``default="true"`` for the product's default service plan, ``service_id``),
app/lib/three_scale/api/collection.rb (pagination attributes on the root only when there is more than one
page), app/representers/account_representer.rb (the JSON list has no users).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
import requests
from test_porta import Lab, account_id


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab = Lab(tmp_path_factory.mktemp("porta-accounts-xml"), users=5)
    yield lab
    lab.stop()


def xml_get(lab: Lab, path: str, **params) -> ET.Element:
    r = lab.get(path, params=params)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/xml"), (r.status_code, r.text)
    return ET.fromstring(r.content)


def test_accounts_xml_lists_users_and_bought_plans(lab):
    root = xml_get(lab, "/admin/api/accounts.xml")
    assert root.tag == "accounts" and not root.attrib  # one page: no pagination attributes (as JSON's metadata)
    by_user = {u.findtext("username"): (a, u) for a in root.findall("account") for u in a.findall("users/user")}
    account, user = by_user["user2"]
    assert int(account.findtext("id")) == account_id(lab, "user2") == int(user.findtext("account_id"))
    assert user.findtext("email") == "user2@example.com" and user.findtext("role") == "admin"
    assert account.findtext("org_name") and account.find("plans/plan[type='account_plan']") is not None
    json_ids = [a["account"]["id"] for a in lab.ok("GET", "/admin/api/accounts.json")["accounts"]]
    assert [int(a.findtext("id")) for a in root.findall("account")] == json_ids
    assert "users" not in lab.ok("GET", "/admin/api/accounts.json")["accounts"][0]["account"]  # JSON: no users


def test_accounts_xml_shows_a_new_subscription_and_paginates(lab):
    sid = lab.ok("POST", "/admin/api/services.json", 201, data={"name": "xmlprod"})["service"]["id"]
    plan = lab.ok("POST", f"/admin/api/services/{sid}/application_plans.json", 201,
                  data={"name": "Standard"})["application_plan"]
    aid = account_id(lab, "user3")
    lab.ok("POST", f"/admin/api/accounts/{aid}/applications.json", 201, data={"plan_id": plan["id"], "name": "x"})
    root = xml_get(lab, "/admin/api/accounts.xml")
    account = next(a for a in root.findall("account") if int(a.findtext("id")) == aid)
    types = {(p.findtext("type"), p.findtext("service_id")) for p in account.findall("plans/plan")}
    assert ("service_plan", str(sid)) in types and ("application_plan", str(sid)) in types  # implicit subscription
    page = xml_get(lab, "/admin/api/accounts.xml", per_page=2, page=2)
    total = len(lab.ok("GET", "/admin/api/accounts.json")["accounts"])
    assert page.attrib == {"per_page": "2", "total_entries": str(total), "total_pages": str(-(-total // 2)),
                           "current_page": "2"}
    assert len(page.findall("account")) == 2


def test_accounts_xml_errors_and_other_xml_refused(lab):
    r = requests.get(lab.url + "/admin/api/accounts.xml", verify=lab.ca, auth=("", "wrong-token"), timeout=10)
    assert (r.status_code, r.text) == (403, "<error>Access denied</error>")
    assert lab.get("/admin/api/services.xml").status_code == 406
    assert lab.get("/admin/api/accounts/find.xml", params={"username": "user1"}).status_code == 406
