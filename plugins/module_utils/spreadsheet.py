# -*- coding: utf-8 -*-
# Copyright: Contributors to the maas.threescale collection
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0), or at your option
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: Apache-2.0 OR GPL-3.0-or-later
"""Cells of the CSV files the collection writes for a person and a spreadsheet (usage.csv, the
workshop credentials file): the one rule that keeps a cell from being read as a formula."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# OWASP "CSV injection": a spreadsheet evaluates a cell that starts with one of these.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_cell(value):
    """A value as a spreadsheet shows it, never as a formula: text starting with = + - @ tab or CR gets
    a leading apostrophe; numbers stay numbers."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
