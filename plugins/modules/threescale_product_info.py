#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: threescale_product_info
short_description: Read a 3scale product, its gateway endpoints, promotion state and plans
version_added: 1.0.0
description:
  - Reads a 3scale product (service) by system name or id through the Account Management API.
  - Returns the production and staging gateway URLs, the latest staging and production proxy
    configuration versions, whether staging is ahead of production, and the product's plans.
  - A product that does not exist is not an error; RV(exists) is V(false) so roles can branch on it.
  - With O(products), reads several products in one run (one listing of the services for all the
    system names, then the proxy, configuration versions and plans of each product found) and
    returns them in RV(products), in the order given.
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
options:
  product:
    description:
      - System name (for example C(granite-3dot2-8b-instruct)) or numeric id of the product.
      - Exactly one of O(product) and O(products) is required.
    type: str
  products:
    description:
      - System names or numeric ids of several products, read in one module run.
      - The result is RV(products); the top-level keys then describe nothing.
    type: list
    elements: str
extends_documentation_fragment:
  - maas.threescale.threescale
  - maas.threescale.threescale.INFO_ATTRIBUTES
"""

EXAMPLES = r"""
- name: Read the product the model is published as
  maas.threescale.threescale_product_info:
    product: granite-3dot2-8b-instruct
  register: granite

- name: Promote only when staging is ahead of production
  ansible.builtin.debug:
    msg: "Production {{ granite.production_version }} is behind staging {{ granite.staging_version }}"
  when: granite.exists and granite.promotion_due

- name: Read every model's product in one run
  maas.threescale.threescale_product_info:
    products: [granite-3dot2-8b-instruct, tinyllama]
  register: catalog
"""

RETURN = r"""
products:
  description:
    - With O(products), one entry per product given, in that order, each with the keys below
      (RV(exists) … RV(service_plans)) and C(product), the name or id it was asked for.
  returned: when O(products) is given
  type: list
  elements: dict
  sample: [{"product": "tinyllama", "exists": true, "id": 7, "production_version": 2, "staging_version": 2}]
exists:
  description: Whether the product exists. All other keys are null or empty when it does not.
  returned: always
  type: bool
  sample: true
id:
  description: Product (service) id.
  returned: always
  type: int
  sample: 7
name:
  description: Product name.
  returned: always
  type: str
  sample: granite-3dot2-8b-instruct
system_name:
  description: Product system name.
  returned: always
  type: str
  sample: granite-3dot2-8b-instruct
state:
  description: Product state.
  returned: always
  type: str
  sample: incomplete
backend_version:
  description: Authentication mode, C(1) user_key, C(2) app_id/app_key, C(oauth) or C(oidc).
  returned: always
  type: str
  sample: "1"
endpoint:
  description: Production public base URL of the gateway.
  returned: always
  type: str
  sample: https://granite-3scale-apicast-production.apps.example.com:443
sandbox_endpoint:
  description: Staging public base URL of the gateway.
  returned: always
  type: str
  sample: https://granite-3scale-apicast-staging.apps.example.com:443
staging_version:
  description: Version of the latest staging proxy configuration, null when none was deployed.
  returned: always
  type: int
  sample: 3
production_version:
  description: Version of the latest production proxy configuration, null when never promoted.
  returned: always
  type: int
  sample: 2
promotion_due:
  description: True when the latest staging configuration is newer than production (or production has none).
  returned: always
  type: bool
  sample: false
application_plans:
  description: Application plans of the product.
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Plan id.
      type: int
    name:
      description: Plan name.
      type: str
    system_name:
      description: Plan system name (the key of C(spec.applicationPlans) in the Product CR).
      type: str
    state:
      description: C(published) or C(hidden).
      type: str
    default:
      description: Whether it is the default application plan.
      type: bool
service_plans:
  description: Service plans of the product (3scale service plans have no system name).
  returned: always
  type: list
  elements: dict
  contains:
    id:
      description: Plan id.
      type: int
    name:
      description: Plan name, usually C(Default).
      type: str
    system_name:
      description: Always null, kept for symmetry with RV(application_plans).
      type: str
    state:
      description: C(published) or C(hidden).
      type: str
    default:
      description: Whether it is the product's default service plan.
      type: bool
"""

from ansible_collections.maas.threescale.plugins.module_utils.threescale_api import ThreescaleModule


def plan_summary(plan):
    return dict(id=plan.get("id"), name=plan.get("name"), system_name=plan.get("system_name"),
                state=plan.get("state"), default=bool(plan.get("default")))


def latest_version(client, service_id, env):
    data = client.get("/services/%s/proxy/configs/%s/latest.json" % (service_id, env), expected_404=True)
    return ((data or {}).get("proxy_config") or {}).get("version")


EMPTY = dict(exists=False, id=None, name=None, system_name=None, state=None, backend_version=None,
             endpoint=None, sandbox_endpoint=None, staging_version=None, production_version=None,
             promotion_due=False, application_plans=[], service_plans=[])


def describe(client, service):
    """What the module returns for one product (``service`` as porta lists it, or None)."""
    if not service:
        return dict(EMPTY)
    sid = service["id"]
    proxy = (client.get("/services/%s/proxy.json" % sid, expected_404=True) or {}).get("proxy") or {}
    staging = latest_version(client, sid, "sandbox")
    production = latest_version(client, sid, "production")
    app_plans = client.list("/services/%s/application_plans.json" % sid, "plans", "application_plan")
    svc_plans = client.list("/services/%s/service_plans.json" % sid, "plans", "service_plan")
    return dict(EMPTY, exists=True, id=sid, name=service.get("name"), system_name=service.get("system_name"),
                state=service.get("state"), backend_version=service.get("backend_version"),
                endpoint=proxy.get("endpoint"), sandbox_endpoint=proxy.get("sandbox_endpoint"),
                staging_version=staging, production_version=production,
                promotion_due=staging is not None and (production is None or staging > production),
                application_plans=[plan_summary(p) for p in app_plans],
                service_plans=[plan_summary(p) for p in svc_plans])


def read_product(module):
    return dict(describe(module.client, module.client.find_product(module.params["product"])), changed=False)


def read_products(module):
    """Several products: one paginated listing resolves every system name; ids are read directly."""
    client = module.client
    wanted = [str(p).strip() for p in module.params["products"]]
    by_system_name = {}
    if any(not p.isdigit() for p in wanted):
        by_system_name = dict((s.get("system_name"), s) for s in client.paginate("/services.json", "services", "service"))
    products = []
    for ident in wanted:
        service = client.find_product(ident) if ident.isdigit() else by_system_name.get(ident)
        products.append(dict(describe(client, service), product=ident))
    return dict(EMPTY, changed=False, products=products)


def main():
    module = ThreescaleModule(argument_spec=dict(product=dict(type="str"), products=dict(type="list", elements="str")),
                              mutually_exclusive=[("product", "products")], required_one_of=[("product", "products")])
    module.run(lambda: read_products(module) if module.params["products"] is not None else read_product(module))


if __name__ == "__main__":
    main()
