"""What a Beijing training institution is made of: campuses, staff, courses, tags, and
the pools of names, schools and phrases the demo history is drawn from."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

DEMO_PASSWORD = "scrm-demo"


@dataclass(frozen=True)
class CampusSpec:
    code: str
    name: str
    address: str
    prefix: str  # of the staff usernames
    schools: tuple[str, ...]


CAMPUSES = (
    CampusSpec(
        code="wangjing",
        name="望京校区",
        address="北京市朝阳区望京街 9 号望京 SOHO T2 3 层",
        prefix="wj",
        schools=("望京实验学校", "朝阳实验小学", "花家地实验小学", "陈经纶中学分校", "北京中学", "望京花园幼儿园"),
    ),
    CampusSpec(
        code="zhongguancun",
        name="中关村校区",
        address="北京市海淀区中关村大街 27 号 5 层",
        prefix="zgc",
        schools=("中关村第一小学", "中关村第三小学", "人大附小", "北大附小", "清华附小", "北京市十一学校"),
    ),
)


@dataclass(frozen=True)
class StaffSpec:
    key: str  # username suffix: wj_front1, zgc_teacher2...
    role: str
    name: str
    subjects: tuple[str, ...] = ()  # what a teacher teaches


# Per campus, in campus order. Teachers' subjects cover every course.
STAFF: dict[str, tuple[StaffSpec, ...]] = {
    "wangjing": (
        StaffSpec("front1", "front_desk", "李婷"),
        StaffSpec("front2", "front_desk", "陈晨"),
        StaffSpec("teacher1", "teacher", "王磊", ("编程", "数学")),
        StaffSpec("teacher2", "teacher", "林小雨", ("美术", "音乐")),
        StaffSpec("teacher3", "teacher", "周敏", ("英语",)),
        StaffSpec("manager", "manager", "张伟"),
    ),
    "zhongguancun": (
        StaffSpec("front1", "front_desk", "赵颖"),
        StaffSpec("front2", "front_desk", "孙悦"),
        StaffSpec("teacher1", "teacher", "刘洋", ("编程", "数学")),
        StaffSpec("teacher2", "teacher", "何静", ("美术", "音乐")),
        StaffSpec("teacher3", "teacher", "吴凡", ("英语",)),
        StaffSpec("manager", "manager", "郑华"),
    ),
}
ADMIN_USERNAME = "admin"
ADMIN_NAME = "系统管理员"
# The demo parent, printed by `make run` to log in to the H5 parent app at /m/: one family with a
# child at each campus (the second active student of each). The builder marks the number taken,
# so no random family draws it.
DEMO_PARENT_PHONE = "13912345678"
DEMO_PARENT_NAME = "林静"
DEMO_PARENT_SURNAME = "周"


@dataclass(frozen=True)
class CourseSpec:
    subject: str
    name: str
    level: str
    price_per_hour: Decimal
    hours_per_lesson: Decimal


COURSES = (
    CourseSpec("编程", "Scratch 创意编程", "L1", Decimal("180"), Decimal("1.5")),
    CourseSpec("编程", "Python 算法编程", "L2", Decimal("240"), Decimal("2")),
    CourseSpec("美术", "创意美术启蒙", "L1", Decimal("150"), Decimal("1.5")),
    CourseSpec("美术", "素描与色彩", "L2", Decimal("180"), Decimal("2")),
    CourseSpec("音乐", "少儿钢琴", "L1", Decimal("260"), Decimal("1")),
    CourseSpec("音乐", "声乐合唱", "L1", Decimal("160"), Decimal("1.5")),
    CourseSpec("英语", "自然拼读", "L1", Decimal("170"), Decimal("1.5")),
    CourseSpec("英语", "英语阅读写作", "L2", Decimal("200"), Decimal("2")),
    CourseSpec("数学", "数学思维", "L1", Decimal("180"), Decimal("1.5")),
    CourseSpec("数学", "竞赛数学", "L3", Decimal("260"), Decimal("2")),
)
SUBJECTS = ("编程", "美术", "音乐", "英语", "数学")

# Tag group -> (exclusive, tags)
INTENT_GROUP = "意向"
INTEREST_GROUP = "兴趣"
GOAL_GROUP = "目标"
INTENT_TAGS = {"high": "高意向", "medium": "中意向", "low": "低意向"}
GOAL_EXAM = "升学型"
GOAL_INTEREST = "兴趣拓展型"
TAG_GROUPS: dict[str, tuple[bool, tuple[str, ...]]] = {
    INTENT_GROUP: (True, tuple(INTENT_TAGS.values())),
    INTEREST_GROUP: (False, SUBJECTS),
    GOAL_GROUP: (True, (GOAL_EXAM, GOAL_INTEREST)),
    "风险": (False, ("积极性下降",)),
}

# Source channels (crm.models.Channel values) with their share of leads.
CHANNEL_WEIGHTS = (
    ("douyin", 25),
    ("xiaohongshu", 15),
    ("flyer", 14),
    ("referral", 14),
    ("website", 10),
    ("walk_in", 12),
    ("wechat", 10),
)

# How a consultant writes each channel in a note (crm.models.Channel values).
CHANNEL_WORDS = {
    "douyin": "抖音",
    "xiaohongshu": "小红书",
    "flyer": "地推传单",
    "referral": "朋友转介绍",
    "website": "官网",
    "walk_in": "路过到店",
    "wechat": "微信公众号",
}

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
BOY_NAMES = [
    "子轩",
    "浩然",
    "宇航",
    "梓豪",
    "俊熙",
    "一鸣",
    "博文",
    "晨阳",
    "思远",
    "嘉树",
    "明哲",
    "天佑",
    "睿",
    "泽宇",
    "航",
    "皓轩",
    "铭",
    "奕辰",
    "家乐",
    "子墨",
    "宇轩",
    "俊杰",
    "乐天",
    "书恒",
    "逸飞",
    "启航",
    "嘉懿",
    "煜城",
    "懿轩",
    "烨华",
]
GIRL_NAMES = [
    "欣怡",
    "梓涵",
    "诗琪",
    "雨桐",
    "可馨",
    "若汐",
    "一诺",
    "思彤",
    "语嫣",
    "佳琪",
    "沐晴",
    "安然",
    "芷若",
    "梦瑶",
    "紫萱",
    "雨欣",
    "子琪",
    "悦",
    "晓彤",
    "佳怡",
    "诗涵",
    "静怡",
    "芊芊",
    "雅琪",
    "若曦",
    "梓萱",
    "乐瑶",
    "美琳",
    "心怡",
    "依诺",
]
MOTHER_NAMES = [
    "丽",
    "娜",
    "静",
    "敏",
    "婷",
    "芳",
    "洁",
    "雪",
    "倩",
    "颖",
    "晶",
    "慧",
    "琳",
    "燕",
    "红",
    "霞",
    "莉",
    "蕾",
    "薇",
    "晓燕",
]
FATHER_NAMES = [
    "伟",
    "强",
    "磊",
    "军",
    "勇",
    "杰",
    "涛",
    "斌",
    "鹏",
    "超",
    "明",
    "峰",
    "刚",
    "辉",
    "波",
    "宁",
    "浩",
    "亮",
    "鑫",
    "志强",
]

# Grade -> age in years on their birthday this school year.
GRADES = (
    ("幼儿园大班", 5),
    ("一年级", 6),
    ("二年级", 7),
    ("三年级", 8),
    ("四年级", 9),
    ("五年级", 10),
    ("六年级", 11),
    ("初一", 12),
    ("初二", 13),
)

MOBILE_PREFIXES = [
    "130",
    "131",
    "132",
    "133",
    "135",
    "136",
    "137",
    "138",
    "139",
    "150",
    "151",
    "152",
    "153",
    "155",
    "156",
    "157",
    "158",
    "159",
    "166",
    "176",
    "177",
    "178",
    "180",
    "181",
    "182",
    "183",
    "185",
    "186",
    "187",
    "188",
    "189",
    "198",
    "199",
]

NOTES = (
    "",
    "",
    "",
    "周末上午有空",
    "工作日只能 18:00 以后",
    "孩子比较内向，需要多鼓励",
    "家长希望小班授课",
    "对机器人课程也感兴趣",
    "需要停车位",
    "哥哥在隔壁机构学围棋",
)

CONSULTATION_CONTENT = (
    "家长电话咨询{subject}课程，孩子{grade}，想了解课程体系和上课时间。",
    "到店参观，家长关注师资和班级人数，对{subject}比较感兴趣。",
    "微信沟通《{course}》的课程安排，家长希望周末上课。",
    "回访：家长在比较两家机构，对价格有顾虑，已介绍课时包优惠。",
    "家长通过{channel}了解到我们，询问{course}的试听安排。",
    "回访：孩子最近学校作业多，家长想等期中考试后再定。",
    "沟通试听反馈，孩子很喜欢老师，家长考虑报名《{course}》。",
)
OUTCOMES = ("约试听", "发送课程资料", "考虑中", "价格有顾虑", "等家长商量", "已约到店")
LOST_REASONS = ("价格太高", "距离太远", "选择了其他机构", "孩子没兴趣", "时间不合适", "联系不上")
REFUND_REASONS = ("搬家离开北京", "孩子课业太忙", "对课程效果不满意", "上课时间冲突")
TRIAL_COMMENTS = (
    "课堂专注，能独立完成练习，建议从{level}开始。",
    "反应很快，和老师互动积极，基础不错，推荐{level}。",
    "一开始有些拘谨，后半节进入状态，适合{level}小班。",
    "动手能力强，对作品很有成就感，建议{level}。",
    "注意力稍弱，需要家长配合练习，建议先上{level}。",
)
ATTENDANCE_FEEDBACK = (
    "",
    "",
    "",
    "",
    "本节课完成了作品，表现很棒。",
    "课堂专注，回家请复习今天的内容。",
    "今天状态一般，作业需要加强。",
    "进步明显，继续保持！",
)
