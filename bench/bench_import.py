"""Acceptance 5: a 50,000-row students file (guardians and tags) commits in 30 s or less.

Generates the file an institution would upload (csv, siblings sharing a phone, phones in
mixed formats, two or three tags a row, owners by username), then through the one import
service (crm.services.imports.import_rows, which the admin, page, command and task call):
a preview, the commit into an empty campus, and a re-import that must change nothing.

Run by bench/__main__.py with Django set up and DATABASE_URL pointing at a bench database,
or alone:

    DJANGO_SETTINGS_MODULE=config.settings DATABASE_URL=postgres://postgres@127.0.0.1:5432/scrm_bench_import \\
        .venv/bin/python -m bench.bench_import
"""

from __future__ import annotations

import csv
import io
import random
import time
from typing import Any

ROWS = 50_000
LIMIT_SECONDS = 30.0
CAMPUS_CODE = "bench-import"
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
GIVEN = (
    "子涵欣怡梓涵诗涵梓萱紫涵一诺依诺欣妍可馨语桐雨桐梓睿浩宇宇轩子轩浩然一鸣博文俊熙皓轩明轩天佑思远嘉懿"
    "若汐沐辰锦程承泽奕辰书瑶雅琪佳怡"
)
GRADES = ["幼儿园大班", "一年级", "二年级", "三年级", "四年级", "五年级", "六年级", "初一", "初二", "初三"]
SCHOOLS = ["实验小学", "朝阳小学", "望京小学", "中关村一小", "人大附中", "北师大附小", "海淀实验", ""]
CHANNELS = ["抖音", "小红书", "地推", "转介绍", "官网", "到店", "微信", "其他"]
RELATIONS = ["妈妈", "爸爸", "奶奶", "爷爷", "外婆"]
TAGS = {
    "意向": ["高", "中", "低"],
    "兴趣": ["美术", "音乐", "数学", "编程", "舞蹈", "英语"],
    "目标": ["升学型", "兴趣拓展型"],
}
MOBILE_PREFIXES = ["130", "133", "135", "137", "138", "139", "150", "152", "158", "177", "186", "189"]
OWNERS = [f"bench_fd{i}" for i in range(5)]


def _header() -> list[str]:
    """The Chinese headers institutions use, as the import itself defines them."""
    from crm.services.imports.columns import STUDENT_COLUMNS

    return [column.header for column in STUDENT_COLUMNS]


def _phone_formats(national: str) -> list[str]:
    return [
        national,
        f"+86 {national[:3]} {national[3:7]} {national[7:]}",
        f"{national[:3]}-{national[3:7]}-{national[7:]}",
        f"0086{national}",
    ]


def generate_students_csv(rows: int = ROWS, seed: int = 20240901, offset: int = 97_000_000) -> bytes:
    """A students csv as institutions keep it: about one family in five has two children."""
    from crm.services.imports.columns import STUDENT_COLUMNS

    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(_header())
    written = family = 0
    while written < rows:
        family += 1
        national = f"{rng.choice(MOBILE_PREFIXES)}{(offset + family) % 100_000_000:08d}"
        surname = rng.choice(SURNAMES)
        parent = surname + rng.choice(GIVEN) + rng.choice(GIVEN)
        relation = rng.choice(RELATIONS)
        children = 2 if rng.random() < 0.2 else 1
        names: set[str] = set()
        for _child in range(children):
            if written >= rows:
                break
            name = surname + rng.choice(GIVEN) + rng.choice(GIVEN)
            while name in names:
                name += rng.choice(GIVEN)
            names.add(name)
            tags = [f"意向:{rng.choice(TAGS['意向'])}", f"兴趣:{rng.choice(TAGS['兴趣'])}"]
            if rng.random() < 0.5:
                tags.append(f"目标:{rng.choice(TAGS['目标'])}")
            values = {
                "name": name,
                "gender": rng.choice(["男", "女"]),
                "birth_date": f"{rng.randint(2010, 2020)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "grade": rng.choice(GRADES),
                "school": rng.choice(SCHOOLS),
                "channel": rng.choice(CHANNELS),
                "guardian_name": parent,
                "relation": relation,
                "phone": rng.choice(_phone_formats(national)),
                "tags": ";".join(tags),
                "notes": "" if rng.random() < 0.7 else "家长希望周末上课",
                "owner": rng.choice(OWNERS),
            }
            # By the import's own columns, so a column added there is an empty cell here.
            writer.writerow([values.get(column.key, "") for column in STUDENT_COLUMNS])
            written += 1
    return out.getvalue().encode("utf-8")


def _reset(campus_id: int) -> None:
    """Remove a previous run's data from the bench campus.

    Raw SQL (50,000 ORM deletes take minutes): first every row that points at these
    students (tags, family links, audit, and whatever later apps keep per student, such
    as the lifecycle's), then the students, then guardians left without a child.
    """
    from django.db import connection, transaction

    from crm.models import Student, StudentGuardian

    quote = connection.ops.quote_name
    referencing: list[tuple[str, str]] = []
    tables: list[Any] = [
        rel.through if rel.many_to_many else rel.related_model  # type: ignore[attr-defined]
        for rel in Student._meta.related_objects
    ]
    tables += [field.remote_field.through for field in Student._meta.many_to_many]  # type: ignore[attr-defined]
    # The family link is both a related model and the guardians' through table: once.
    for model in dict.fromkeys(tables):
        for f in model._meta.concrete_fields:
            if f.related_model is Student:
                referencing.append((model._meta.db_table, f.column))
    guardian_links = quote(StudentGuardian._meta.db_table)
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_students ON COMMIT DROP AS SELECT id FROM crm_student WHERE campus_id = %s",
            [campus_id],
        )
        cursor.execute(
            "CREATE TEMP TABLE bench_guardians ON COMMIT DROP AS SELECT DISTINCT guardian_id AS id "
            f"FROM {guardian_links} WHERE student_id IN (SELECT id FROM bench_students)"
        )
        for table, column in referencing:
            cursor.execute(f"DELETE FROM {quote(table)} WHERE {quote(column)} IN (SELECT id FROM bench_students)")
        cursor.execute("DELETE FROM crm_student WHERE id IN (SELECT id FROM bench_students)")
        cursor.execute(
            "DELETE FROM crm_guardian WHERE id IN (SELECT id FROM bench_guardians) "
            f"AND NOT EXISTS (SELECT 1 FROM {guardian_links} sg WHERE sg.guardian_id = crm_guardian.id)"
        )


def main() -> list[str]:
    from django.conf import settings
    from django.db import connection

    from crm.models import Campus, Guardian, Role, Student, StudentTag, User
    from crm.phones import normalize_phone
    from crm.services.imports import import_rows, read_table

    campus, _created = Campus.objects.get_or_create(code=CAMPUS_CODE, defaults={"name": "压测校区"})
    actor, _created = User.objects.get_or_create(
        username="bench_import_manager", defaults={"campus": campus, "display_name": "压测校长"}
    )
    from django.contrib.auth.models import Group

    actor.groups.add(Group.objects.get(name=Role.MANAGER))
    for username in OWNERS:
        owner, _created = User.objects.get_or_create(
            username=username, defaults={"campus": campus, "display_name": username}
        )
        owner.groups.add(Group.objects.get(name=Role.FRONT_DESK))  # only a consultant may own a student
    _reset(campus.pk)

    # The bench database may hold other benchmarks' families: pick phones nobody has.
    for offset in range(97_000_000, 0, -7_000_000):
        content = generate_students_csv(offset=offset)
        phones = {row.cells[8] for row in read_table(content, "bench_students.csv").rows}
        taken = Guardian.objects.filter(phone__in=[normalize_phone(p) for p in phones]).exists()
        if not taken:
            break
    else:
        raise AssertionError("every phone range of the generator is taken in this database")

    started = time.perf_counter()
    table = read_table(content, "bench_students.csv")
    read_seconds = time.perf_counter() - started

    started = time.perf_counter()
    preview = import_rows(kind="students", table=table, campus=campus, actor=actor, dry_run=True)
    preview_seconds = time.perf_counter() - started
    if not preview.ok:
        raise AssertionError("bench file does not preview cleanly: " + "; ".join(preview.lines()[:5]))

    started = time.perf_counter()
    table = read_table(content, "bench_students.csv")
    commit = import_rows(kind="students", table=table, campus=campus, actor=actor, dry_run=False)
    total_seconds = time.perf_counter() - started
    if not commit.committed:
        raise AssertionError("bench commit failed: " + "; ".join(commit.lines()[:5]))
    # Reading the file again counts: the task reads the stored upload before importing it.
    commit_seconds = total_seconds - commit.seconds + commit.commit_seconds
    listeners_seconds = total_seconds - commit_seconds
    students = Student.objects.filter(campus=campus).count()
    guardians = Guardian.objects.filter(students__campus=campus).distinct().count()
    tags = StudentTag.objects.filter(student__campus=campus).count()

    started = time.perf_counter()
    table = read_table(content, "bench_students.csv")
    again = import_rows(kind="students", table=table, campus=campus, actor=actor, dry_run=False)
    again_seconds = time.perf_counter() - started
    unchanged = again.counts["unchanged"]

    _reset(campus.pk)
    ok = commit_seconds <= LIMIT_SECONDS and unchanged == ROWS and students == ROWS
    return [
        f"import students ({connection.vendor}): {ROWS} rows csv ({len(content) / 1e6:.1f} MB), "
        f"tasks {'in-process' if settings.CELERY_TASK_ALWAYS_EAGER else 'queued'}",
        f"  read file                {read_seconds:6.2f} s",
        f"  preview                  {preview_seconds:6.2f} s  ({ROWS / preview_seconds:,.0f} rows/s)",
        f"  commit (read to COMMIT)  {commit_seconds:6.2f} s  ({ROWS / commit_seconds:,.0f} rows/s; "
        f"limit {LIMIT_SECONDS:.0f} s) {'PASS' if ok else 'FAIL'}",
        f"    wrote {students} students, {guardians} guardians, {tags} student tags",
        f"  after-commit listeners   {listeners_seconds:6.2f} s  (student_facts_changed for {students} students)",
        f"  re-import (unchanged)    {again_seconds:6.2f} s  ({unchanged} of {ROWS} rows unchanged)",
    ]


if __name__ == "__main__":
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    for line in main():
        print(line)
