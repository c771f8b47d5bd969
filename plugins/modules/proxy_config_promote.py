#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
# Documentation only: the action plugin of the same name (plugins/action/proxy_config_promote.py) does
# the work on the controller, as ansible-core does for its action-backed modules.

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: proxy_config_promote
short_description: Promote 3scale products to production with ProxyConfigPromote CRs, replacing failed ones
version_added: 1.1.0
description:
  - Promotes the configuration of each model's 3scale product to production through the 3scale operator,
    only for the models whose configuration is not in production yet, and retries a failed promotion
    a bounded number of times.
  - A model needs a promotion when staging is ahead of production, when production has no configuration
    yet, or when its Backend/Product specs were never promoted (its C(config_hash) differs from the hash
    O(promoted) records; the versions alone miss a change that an interrupted run applied, because the
    Product reconcile never deploys to staging).
  - "Each attempt: one ProxyConfigPromote (C(production: true), C(deleteCR: true)) per model still behind,
    created together in one Kubernetes call, then watched together with M(maas.threescale.cr_wait). A
    promotion that succeeds deletes its CR. A Failed ProxyConfigPromote stays Failed for good (C(no product
    changes detected)); upstream's master fails it on the first error of its promote call, 3scale 2.14's
    operator after retrying the call inside the same CR. So a Failed (or timed out) one is deleted, the
    staging and production versions are read from the admin API with
    M(maas.threescale.threescale_product_info), and while production is still behind staging a new
    ProxyConfigPromote is tried, at most O(attempts) in all. A failed attempt after which production
    equals staging means nothing was left to promote."
  - The name of a ProxyConfigPromote is C(<model>-<first 8 characters of config_hash>-<attempt>), so a
    run that was interrupted is resumed by the next one, which finds the same object (already Failed, it
    is replaced; still running, it is waited for).
  - A ProxyConfigPromote the Kubernetes API refuses (for example a 403 or 422) sets that model aside at
    once with the API's message; transient answers (429, 5xx, a dropped connection) are retried
    O(k8s_retries) times.
  - "Connection: each call is the module a task would run, with that module's own options and the
    C(module_defaults) a task of it gets (C(group/kubernetes.core.k8s) for kubernetes.core.k8s,
    C(group/maas.threescale.k8s) for cr_wait, C(group/maas.threescale.threescale) for
    threescale_product_info, or the modules' names), else the E(K8S_AUTH_*) and E(THREESCALE_*)
    environment. This task takes no connection option itself: the Kubernetes and the admin API
    options have the same names (C(validate_certs)) and mean different things."
author:
  - Models-as-a-Service automation maintainers (@maas-threescale)
requirements:
  - the kubernetes.core collection and the kubernetes Python package (on the host the modules run on)
options:
  models:
    description:
      - The models to promote if needed. Each needs C(name) (the Product CR's name), C(system_name)
        (the 3scale product's system name) and C(config_hash) (a hash of its Backend and Product specs);
        other keys are ignored, so the maas_product role passes its own items.
    type: list
    elements: dict
    required: true
  promoted:
    description:
      - Per model name, the C(config_hash) last promoted (recorded on the Product by the caller), as the
        hash or as a dict with key C(promoted_config). A model missing here counts as never promoted.
    type: dict
    default: {}
  namespace:
    description: Namespace of the Product CRs, where the ProxyConfigPromotes are created.
    type: str
    required: true
  api_version:
    description: apiVersion of the ProxyConfigPromote CRs.
    type: str
    default: capabilities.3scale.net/v1beta1
  attempts:
    description: ProxyConfigPromotes tried per model at most, the first included.
    type: int
    default: 3
  timeout:
    description:
      - Seconds to wait for the ProxyConfigPromotes of one attempt (a promotion not done by then counts as
        failed, is deleted and replaced), and for a Failed one to be gone after its delete.
    type: float
    default: 300
  terminal_failure_regex:
    description: Passed to M(maas.threescale.cr_wait); a C(Failed) message matching it ends the wait for that CR.
    type: str
    default: "no product changes detected|code: 422"
  k8s_retries:
    description: Further tries of a Kubernetes create or delete that got a transient answer (429, 5xx, no answer).
    type: int
    default: 5
  k8s_retry_delay:
    description: Seconds between those tries.
    type: float
    default: 2
attributes:
  check_mode:
    support: full
    description:
      - Reads the versions, then creates the first attempt's ProxyConfigPromotes as a server-side dry run
        (which shows them, and writes nothing) and waits for nothing; RV(models) says C(would_promote).
  diff_mode:
    support: full
    description: The ProxyConfigPromotes created (or, in check mode, that would be created).
  action:
    support: full
    description: Runs on the controller; the modules it calls run where the task's connection says.
  async:
    support: none
    description: No async.
  platform:
    support: full
    platforms: all
    description: Any platform the modules it calls run on.
notes:
  - The result never carries the connection options of the modules it calls (their C(invocation) is dropped).
  - When a promotion took more than one attempt, or failed, the task's result is shown without C(-v).
  - "Upstream: 3scale-operator controllers/capabilities/proxyconfigpromote_controller.go."
seealso:
  - module: maas.threescale.cr_wait
  - module: maas.threescale.threescale_product_info
  - module: kubernetes.core.k8s
"""

EXAMPLES = r"""
- name: Promote the models whose configuration is not in production
  module_defaults:
    group/kubernetes.core.k8s: {kubeconfig: ~/.kube/config}
    group/maas.threescale.k8s: {kubeconfig: ~/.kube/config}
    group/maas.threescale.threescale: {admin_url: "https://3scale-admin.apps.example.com"}  # token from THREESCALE_ACCESS_TOKEN
  maas.threescale.proxy_config_promote:
    models:
      - {name: tinyllama, system_name: tinyllama, config_hash: 0a1b2c3d4e5f}
    promoted:
      tinyllama: 9f8e7d6c5b4a
    namespace: 3scale
    attempts: 3
  register: promotion

- name: Fail with the operator's messages of the models that could not be promoted
  ansible.builtin.assert:
    that: promotion.failures | length == 0
    fail_msg: "{{ promotion.failures | map(attribute='message') | join(' | ') }}"
"""

RETURN = r"""
models:
  description: One entry per model given, in that order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The model (Product CR) name.
      type: str
    system_name:
      description: The 3scale product's system name.
      type: str
    outcome:
      description:
        - C(promoted) (a ProxyConfigPromote succeeded), C(nothing_to_promote) (not needed, or an attempt
          failed and production already ran the staging configuration), C(failed) (every attempt failed,
          or the API refused the CR), C(would_promote) (check mode).
      type: str
      sample: promoted
    attempts:
      description: The attempts made for this model (0 when no ProxyConfigPromote was needed).
      type: int
    pcps:
      description: The names of the ProxyConfigPromotes used, one per attempt.
      type: list
      elements: str
    messages:
      description: Every distinct message of its failed attempts (the operator's, with the versions read after it).
      type: list
      elements: str
promoted:
  description:
    - The models that needed a promotion and whose production now runs the staging configuration
      (promoted, or nothing was left to promote); in check mode those the dry run would promote. The
      caller records their C(config_hash) as promoted.
  returned: always
  type: list
  elements: str
failures:
  description:
    - The models that could not be promoted, as C({name, phase, message}); C(message) names the attempts
      and carries every distinct message of the operator. The task itself does not fail for them.
  returned: always
  type: list
  elements: dict
attempts:
  description: One entry per attempt made, with the ProxyConfigPromotes C(created), C(refused) by the API, C(failed), and the models still C(pending) after it.
  returned: always
  type: list
  elements: dict
  sample: [{"attempt": 1, "created": ["tinyllama-0a1b2c3d-1"], "refused": [], "failed": ["tinyllama-0a1b2c3d-1"], "pending": ["tinyllama"]}]
max_attempts:
  description: The most attempts a model could get (1 in check mode).
  returned: always
  type: int
msg:
  description: One line per model that needed a ProxyConfigPromote.
  returned: always
  type: str
"""
