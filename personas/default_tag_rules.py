"""The tag rules every campus starts with (issue 10): plain data, read by the data migration that
gave the existing campuses theirs, by `tag_rules_ship_defaults` (a new campus, the demo) and by
their tests. A campus's manager edits or deletes its copies freely; nothing re-creates them.

Within an exclusive group the rule written first wins a student both select (see
`personas.services.tag_rules`), so 升学型 comes before 兴趣拓展型: a ninth-grader in maths and
coding is exam-driven.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# The demo catalogue's groups (crm/management/demo/catalogue.py) where it has them.
GOAL_GROUP = "目标"
RISK_GROUP = "风险"
VALUE_GROUP = "价值"
RENEWAL_GROUP = "续费"

# A year before a school-leaving exam (小升初, 中考, 高考) and the year of it.
EXAM_GRADES = ["五年级", "六年级", "初二", "初三", "高二", "高三"]
EXAM_SUBJECTS = ["数学", "英语", "语文", "物理", "化学"]
INTEREST_SUBJECTS = ["美术", "音乐", "钢琴", "舞蹈", "编程", "体育", "围棋", "书法"]


@dataclass(frozen=True)
class DefaultRule:
    group: str
    exclusive: bool
    tag: str
    name: str
    conditions: dict[str, Any]


def _subject_any(subjects: list[str]) -> dict[str, Any]:
    return {"any": [{"field": "subject", "op": "contains", "value": subject} for subject in subjects]}


DEFAULT_RULES: tuple[DefaultRule, ...] = (
    DefaultRule(
        GOAL_GROUP,
        True,
        "升学型",
        "升学型：临近升学考试且学习考试科目",
        {"all": [{"field": "grade", "op": "in", "value": EXAM_GRADES}, _subject_any(EXAM_SUBJECTS)]},
    ),
    DefaultRule(
        GOAL_GROUP, True, "兴趣拓展型", "兴趣拓展型：学习艺术、编程或体育类课程", _subject_any(INTEREST_SUBJECTS)
    ),
    DefaultRule(
        RISK_GROUP,
        False,
        "积极性下降",
        "积极性下降：出勤明显减少",
        {"all": [{"field": "at_risk", "op": "is", "value": True}]},
    ),
    DefaultRule(
        VALUE_GROUP,
        False,
        "高价值",
        "高价值：价值分层为高",
        {"all": [{"field": "value_tier", "op": "in", "value": ["high"]}]},
    ),
    DefaultRule(
        RENEWAL_GROUP,
        False,
        "续费关键期",
        "续费关键期：课时将尽或合同将到期",
        {"all": [{"field": "renewal_due", "op": "is", "value": True}]},
    ),
)
