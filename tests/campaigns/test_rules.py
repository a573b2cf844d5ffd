"""The marketing rules in pure Python: unsubscribe keywords, the opt-out wording, quiet hours."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaigns.rules import (
    SMS_OPT_OUT_WORDING,
    bucket_for,
    group_for,
    is_opt_out_reply,
    quiet_until,
    render,
    template_problem,
    uplift_for,
    variable_names,
    wechat_fields,
    with_opt_out_wording,
)

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")
NIGHT: dict[str, Any] = {"time_zone": "Asia/Shanghai", "quiet_from": dt.time(21), "quiet_until": dt.time(9)}


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, 12, day, hour, minute, second, tzinfo=SHANGHAI)


@pytest.mark.parametrize("reply", ["TD", "td", " T ", "N", "n。", "退订", "退订!", "ＴＤ", "T\n", "退 订"])
def test_an_unsubscribe_keyword_in_any_dress_is_an_opt_out(reply: str) -> None:
    assert is_opt_out_reply(reply)


@pytest.mark.parametrize("reply", ["", "好的", "TDD", "退订了吗老师明天几点上课", "NO", "谢谢", "T D 谢谢", "不退订"])
def test_anything_else_is_a_message_for_a_person(reply: str) -> None:
    assert not is_opt_out_reply(reply)


def test_the_opt_out_wording_is_added_once() -> None:
    once = with_opt_out_wording("【SCRM】小明好久没来上课啦，本周回来免费体验一节。")
    assert once.endswith(SMS_OPT_OUT_WORDING)
    assert with_opt_out_wording(once) == once


@pytest.mark.parametrize(
    ("now", "until"),
    [
        (at(3, 20, 59, 59), None),
        (at(3, 21), at(4, 9)),
        (at(3, 23, 30), at(4, 9)),
        (at(4, 0), at(4, 9)),
        (at(4, 8, 59, 59), at(4, 9)),
        (at(4, 9), None),
        (at(4, 13), None),
    ],
)
def test_quiet_hours_cross_midnight_in_the_campus_zone(now: dt.datetime, until: dt.datetime | None) -> None:
    assert quiet_until(now, **NIGHT) == until


def test_the_clock_is_read_in_the_campus_zone_whatever_the_zone_of_now() -> None:
    # 13:00 UTC is 21:00 in Shanghai; 01:00 UTC is 09:00.
    assert quiet_until(dt.datetime(2026, 12, 3, 13, tzinfo=dt.UTC), **NIGHT) == at(4, 9)
    assert quiet_until(dt.datetime(2026, 12, 4, 1, tzinfo=dt.UTC), **NIGHT) is None
    # The same instant in another campus's zone is still daytime there.
    assert quiet_until(at(3, 21), time_zone="Europe/London", quiet_from=dt.time(21), quiet_until=dt.time(9)) is None


def test_a_window_within_one_day_and_an_empty_window() -> None:
    noon: dict[str, Any] = {"time_zone": "Asia/Shanghai", "quiet_from": dt.time(12), "quiet_until": dt.time(14)}
    assert quiet_until(at(3, 11, 59), **noon) is None
    assert quiet_until(at(3, 12), **noon) == at(3, 14)
    assert quiet_until(at(3, 14), **noon) is None
    assert quiet_until(at(3, 22), time_zone="Asia/Shanghai", quiet_from=dt.time(9), quiet_until=dt.time(9)) is None


@given(
    moment=st.datetimes(
        min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2035, 1, 1), timezones=st.just(dt.UTC)
    ),
    start=st.times(),
    end=st.times(),
    zone=st.sampled_from(["Asia/Shanghai", "Asia/Urumqi", "Europe/Berlin", "America/New_York"]),
)
def test_waiting_ends_later_within_a_day_and_outside_the_window(
    moment: dt.datetime, start: dt.time, end: dt.time, zone: str
) -> None:
    until = quiet_until(moment, time_zone=zone, quiet_from=start, quiet_until=end)
    if until is None:
        return
    assert moment < until <= moment + dt.timedelta(hours=25)
    assert quiet_until(until, time_zone=zone, quiet_from=start, quiet_until=end) is None


def test_uplift_and_its_interval_equal_the_hand_computation() -> None:
    # Reached: 60 of 400 came back (15%); holdout: 10 of 100 (10%). Uplift 5 points;
    # standard error sqrt(.15*.85/400 + .10*.90/100) = sqrt(.00031875 + .0009) = .0349106;
    # 1.96 of them: .0684235, so the interval is -1.84 to +11.84 points.
    result = uplift_for(converted=60, members=400, holdout_converted=10, holdout_members=100)
    assert result.treated_rate == pytest.approx(0.15)
    assert result.holdout_rate == pytest.approx(0.10)
    assert result.uplift == pytest.approx(0.05)
    assert result.low == pytest.approx(0.05 - 0.0684235, abs=1e-6)
    assert result.high == pytest.approx(0.05 + 0.0684235, abs=1e-6)


def test_no_holdout_no_uplift() -> None:
    assert uplift_for(converted=3, members=10, holdout_converted=0, holdout_members=0).uplift is None


@given(
    seed=st.integers(0, 2**31 - 1),
    student_id=st.integers(1, 10**9),
    holdout=st.integers(0, 90),
    split=st.integers(1, 99),
)
def test_groups_follow_the_percentages(seed: int, student_id: int, holdout: int, split: int) -> None:
    bucket = bucket_for(seed, student_id)
    group = group_for(seed=seed, student_id=student_id, holdout_pct=holdout, split_a_pct=split, has_b=True)
    assert 0 <= bucket < 100
    assert (group == "holdout") == (bucket < holdout)
    assert group_for(seed=seed, student_id=student_id, holdout_pct=holdout, split_a_pct=split, has_b=False) in (
        "holdout",
        "A",
    )


def test_the_draw_is_spread_evenly() -> None:
    groups = [group_for(seed=7, student_id=i, holdout_pct=20, split_a_pct=50, has_b=True) for i in range(1, 10001)]
    assert 1800 < groups.count("holdout") < 2200
    assert 3700 < groups.count("A") < 4300


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("{student}好", None),
        ("{{括号}}", None),
        ("{student.__class__}", "student.__class__"),
        ("{x}", "x"),
        ("{hours_left:>10}", "hours_left"),
        ("{", "braces"),
        ("{0}", "0"),
        ("{}", "{}"),
    ],
)
def test_templates_read_only_plain_variables(template: str, problem: str | None) -> None:
    assert template_problem(template) == problem


def test_a_template_is_filled_in() -> None:
    values = {"student": "小明", "guardian": "王妈妈", "hours_left": "4", "consultant": "李老师"}
    assert (
        render("{guardian}您好，{student}还剩{hours_left}课时 {{李老师}}", values)
        == "王妈妈您好，小明还剩4课时 {李老师}"
    )


def test_chinese_variable_names_are_the_same_variables() -> None:
    values = {"student": "小明", "guardian": "王妈妈", "hours_left": "4", "consultant": "李老师"}
    assert template_problem("{家长}您好，{学员}还剩{剩余课时}课时，{顾问}") is None
    assert render("{家长}您好，{学员}还剩{剩余课时}课时，{顾问}", values) == "王妈妈您好，小明还剩4课时，李老师"
    assert variable_names(chinese=True) == ["{学员}", "{家长}", "{剩余课时}", "{顾问}"]


def test_a_wechat_message_is_its_template_fields() -> None:
    assert wechat_fields("thing1=小明的寒假体验课\n\ntime2：12月20日 10:00\nthing3=" + "长" * 30) == {
        "thing1": "小明的寒假体验课",
        "time2": "12月20日 10:00",
        "thing3": "长" * 20,
    }
    assert wechat_fields("小明好久没来上课了") is None
    assert wechat_fields("") is None
