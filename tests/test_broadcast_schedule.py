"""Notice schedules: one-offs and daily / weekly / monthly recurrences in Asia/Tokyo, with an end date and excluded dates."""

from __future__ import annotations

import datetime as dt

import pytest

from broadcast.schedule import (
    JST,
    LAST_DAY,
    Schedule,
    ScheduleError,
    parse_every,
    parse_local_datetime,
)

UTC = dt.UTC


def jst(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=JST)


def occurrences(schedule: Schedule, after: dt.datetime, n: int = 6) -> list[str]:
    return [f"{t.astimezone(JST):%Y-%m-%d %a %H:%M}" for t in schedule.upcoming(after, n)]


def test_weekly_on_monday_and_thursday_at_nine_in_tokyo() -> None:
    # 2026-12-02 is a Wednesday.
    schedule = Schedule.recurring("weekly:mon,thu", jst(2026, 12, 2, 9, 0))
    schedule.validate()
    assert occurrences(schedule, jst(2026, 12, 2, 0, 0), 4) == [
        "2026-12-03 Thu 09:00", "2026-12-07 Mon 09:00", "2026-12-10 Thu 09:00", "2026-12-14 Mon 09:00",
    ]
    # 09:00 in Tokyo is 00:00 UTC: the stored UTC instant is the Japanese wall-clock time.
    first = schedule.first()
    assert first is not None and first.astimezone(UTC) == dt.datetime(2026, 12, 3, 0, 0, tzinfo=UTC)


def test_the_day_boundary_is_tokyos_not_utcs() -> None:
    # 2026-12-01T15:30Z is already 2026-12-02 00:30 in Tokyo, so "daily 08:00" next fires on the 2nd (= 23:00Z on the 1st).
    schedule = Schedule.recurring("daily", jst(2026, 11, 1, 8, 0))
    nxt = schedule.next_after(dt.datetime(2026, 12, 1, 15, 30, tzinfo=UTC))
    assert nxt == jst(2026, 12, 2, 8, 0)
    assert nxt.astimezone(UTC) == dt.datetime(2026, 12, 1, 23, 0, tzinfo=UTC)
    # A weekly Monday 07:00 in Tokyo is Sunday 22:00 UTC: the weekday is Tokyo's.
    weekly = Schedule.recurring("weekly:mon", jst(2026, 12, 1, 7, 0))
    monday = weekly.first()
    assert monday is not None and monday.weekday() == 0 and monday.astimezone(UTC).weekday() == 6


def test_monthly_on_the_last_day_follows_month_lengths_and_leap_years() -> None:
    schedule = Schedule.recurring("monthly:last", jst(2027, 1, 1, 18, 0))
    assert occurrences(schedule, jst(2027, 1, 1, 0, 0), 4) == [
        "2027-01-31 Sun 18:00", "2027-02-28 Sun 18:00", "2027-03-31 Wed 18:00", "2027-04-30 Fri 18:00",
    ]
    leap = Schedule.recurring("monthly:last", jst(2028, 2, 1, 18, 0))
    assert occurrences(leap, jst(2028, 2, 1, 0, 0), 1) == ["2028-02-29 Tue 18:00"]


def test_monthly_on_a_day_and_days_that_some_months_lack_are_refused() -> None:
    schedule = Schedule.recurring("monthly:15", jst(2026, 12, 20, 10, 0))
    # The 15th of December is before the start: the first is in January.
    assert occurrences(schedule, jst(2026, 12, 1), 2) == ["2027-01-15 Fri 10:00", "2027-02-15 Mon 10:00"]
    with pytest.raises(ScheduleError, match="monthly:last"):
        parse_every("monthly:31")


def test_excluded_dates_are_skipped_and_until_is_inclusive() -> None:
    schedule = Schedule.recurring(
        "daily", jst(2026, 12, 28, 9, 0), until=dt.date(2027, 1, 4),
        excluded=[dt.date(2026, 12, 31), dt.date(2027, 1, 1), dt.date(2027, 1, 2)],
    )
    schedule.validate()
    assert occurrences(schedule, jst(2026, 12, 27), 10) == [
        "2026-12-28 Mon 09:00", "2026-12-29 Tue 09:00", "2026-12-30 Wed 09:00",
        "2027-01-03 Sun 09:00", "2027-01-04 Mon 09:00",
    ]
    assert schedule.next_after(jst(2027, 1, 4, 9, 0)) is None


def test_the_start_time_itself_is_the_first_occurrence_when_it_matches() -> None:
    schedule = Schedule.recurring("weekly:thu", jst(2026, 12, 3, 9, 0))
    assert schedule.first() == jst(2026, 12, 3, 9, 0)
    assert schedule.next_after(jst(2026, 12, 3, 9, 0)) == jst(2026, 12, 10, 9, 0)


def test_once_happens_once() -> None:
    schedule = Schedule.once(jst(2026, 12, 1, 9, 0))
    assert schedule.first() == jst(2026, 12, 1, 9, 0)
    assert schedule.next_after(jst(2026, 12, 1, 9, 0)) is None
    assert schedule.describe() == "2026-12-01(火) 09:00 に1回"


def test_round_trip_through_json_keeps_every_field() -> None:
    schedule = Schedule.recurring("weekly:mon,thu", jst(2026, 12, 1, 9, 30), until=dt.date(2027, 3, 31), excluded=[dt.date(2026, 12, 31)])
    data = schedule.to_dict()
    assert data == {
        "kind": "weekly", "start": "2026-12-01T09:30:00+09:00", "weekdays": ["mon", "thu"],
        "until": "2027-03-31", "excluded": ["2026-12-31"],
    }
    assert Schedule.from_dict(data) == schedule
    monthly = Schedule.recurring("monthly:last", jst(2026, 12, 1, 9, 30))
    assert Schedule.from_dict(monthly.to_dict()).month_day == LAST_DAY


def test_describe_in_japanese() -> None:
    assert Schedule.recurring("weekly:mon,thu", jst(2026, 12, 1, 9, 0), until=dt.date(2026, 12, 31)).describe() == (
        "毎週 月・木 09:00（2026-12-01から 2026-12-31まで）"
    )
    assert Schedule.recurring("monthly:last", jst(2026, 12, 1, 17, 0)).describe().startswith("毎月月末 17:00")
    assert Schedule.recurring("daily", jst(2026, 12, 1, 7, 5), excluded=[dt.date(2026, 12, 24)]).describe() == (
        "毎日 07:05（2026-12-01から 除外: 12/24）"
    )


@pytest.mark.parametrize(
    ("every", "message"),
    [("hourly", "daily / weekly"), ("weekly", "曜日"), ("weekly:mon,xyz", "xyz"), ("monthly:0", "1〜28"), ("monthly:", "daily")],
)
def test_bad_recurrences_are_refused_in_japanese(every: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_every(every)


def test_inconsistent_schedules_are_refused() -> None:
    with pytest.raises(ScheduleError, match="終了日が開始日より前"):
        Schedule.recurring("daily", jst(2026, 12, 10, 9, 0), until=dt.date(2026, 12, 1)).validate()
    with pytest.raises(ScheduleError, match="配信日がありません"):
        Schedule.recurring("weekly:sun", jst(2026, 12, 7, 9, 0), until=dt.date(2026, 12, 12)).validate()
    with pytest.raises(ScheduleError, match="繰り返し配信のときだけ"):
        Schedule("once", jst(2026, 12, 7, 9, 0), until=dt.date(2026, 12, 12)).validate()


def test_times_without_an_offset_are_tokyo_time() -> None:
    assert parse_local_datetime("2026-12-01T09:00") == jst(2026, 12, 1, 9, 0)
    assert parse_local_datetime("2026-12-01T00:00:00+00:00") == jst(2026, 12, 1, 9, 0)
    with pytest.raises(ScheduleError, match="読み取れません"):
        parse_local_datetime("明日の朝")
