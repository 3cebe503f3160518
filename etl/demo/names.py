"""Plausible Chinese names for places and people, drawn deterministically from the caller's rng.

Character lists lean towards those common in the Jianghuai plain (如皋, 南通, 泰州), so a demo map
reads like the region it is drawn on. Nothing here claims to be a real village or person.
"""

from __future__ import annotations

import numpy as np

RUGAO_ADCODE = "320682"
RUGAO_STREETS = ("如城街道", "城北街道", "城南街道")
RUGAO_TOWNS = (
    "东陈镇", "丁堰镇", "白蒲镇", "下原镇", "九华镇", "石庄镇",
    "长江镇", "吴窑镇", "江安镇", "搬经镇", "磨头镇",
)  # fmt: skip

PLACE_FIRST = (
    "东西南北新长安和平永丰福宁兴华建胜利红星花桃李金银石龙凤云海江青白马丁薛许陈顾张钱孙周吴郑"
    "冯徐沈葛季冒缪范朱仲殷卢蒋邵夏庞姜严汤高田林杨柳双三五八前后中上下大小万广益寿仁义德宝"
)
PLACE_SECOND = "桥港庄河园湖林圩集坝沟舍墩垛堡埭场湾坊街苑里门城店堰口塘岸兴安平华丰和新阳明光荣盛泰昌"
ROAD_SECOND = "阳宁安康泰兴昌平和华丰明福寿海城"

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏"
    "吕丁任沈姚卢姜崔钟谭陆汪范金石贾夏付方白邹孟秦邱江薛顾毛钱严戴冒缪季仲葛殷"
)
# The surnames above are listed roughly by frequency; weights fall off accordingly.
GIVEN = (
    "建国华明丽军红伟芳英平勇敏静磊强洁燕杰娟涛峰霞超秀兰玉海波宁刚云辉斌鹏飞丹慧琳晨浩宇子轩欣怡梓涵俊博文"
)

CHINESE_DIGITS = "零一二三四五六七八九"


def chinese_number(n: int) -> str:
    """1 → 一, 10 → 十, 23 → 二十三 (up to 99), as used in 第三小学 or 第十二中学."""
    if n < 10:
        return CHINESE_DIGITS[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else CHINESE_DIGITS[tens]
    return head + "十" + (CHINESE_DIGITS[ones] if ones else "") if n < 100 else str(n)


def short_name(name: str) -> str:
    """如城街道 → 如城, 白蒲镇 → 白蒲, 海阳社区 → 海阳, 丁家村 → 丁家: the stem used in other names."""
    for suffix in ("街道", "社区", "镇", "村", "乡"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def two_char_stems(n: int, rng: np.random.Generator, *, taken: set[str] | None = None) -> list[str]:
    """``n`` distinct two-character place stems (海阳, 丁堰 …), none in ``taken``."""
    taken = set(taken or ())
    if n <= 0:
        return []
    firsts = np.array(list(PLACE_FIRST))
    seconds = np.array(list(PLACE_SECOND))
    pairs = [a + b for a in firsts for b in seconds if a != b]
    out: list[str] = []
    for k in rng.permutation(len(pairs)).tolist():
        stem = pairs[k]
        if stem not in taken:
            out.append(stem)
            taken.add(stem)
            if len(out) == n:
                return out
    raise ValueError(f"cannot make {n} distinct place names")


def town_names(
    n_streets: int, n_towns: int, adcode: str, rng: np.random.Generator
) -> tuple[list[str], list[str]]:
    """Names of the streets (街道) and towns (镇): 如皋's real ones for 320682, generated otherwise."""
    streets, towns = [], []
    if adcode.startswith(RUGAO_ADCODE):
        streets = list(RUGAO_STREETS[:n_streets])
        towns = list(RUGAO_TOWNS[:n_towns])
    need_streets, need_towns = n_streets - len(streets), n_towns - len(towns)
    taken = {short_name(x) for x in streets + towns}
    extra = two_char_stems(need_streets + need_towns, rng, taken=taken)
    streets += [stem + "街道" for stem in extra[:need_streets]]
    towns += [stem + "镇" for stem in extra[need_streets:]]
    return streets, towns


def road_names(n: int, rng: np.random.Generator) -> list[str]:
    """Road names such as 海阳路 or 福寿大道, for addresses of places."""
    firsts = np.array(list(PLACE_FIRST))
    seconds = np.array(list(ROAD_SECOND))
    kind = rng.choice(["路", "路", "路", "街", "大道"], n)
    a = firsts[rng.integers(len(firsts), size=n)]
    b = seconds[rng.integers(len(seconds), size=n)]
    return [x + y + z for x, y, z in zip(a.tolist(), b.tolist(), kind.tolist(), strict=True)]


def person_names(n: int, rng: np.random.Generator) -> list[str]:
    """``n`` person names: a frequency-weighted surname and one or two given-name characters."""
    surnames = np.array(list(SURNAMES))
    weights = 1.0 / (np.arange(len(surnames)) + 8.0)
    surname = surnames[rng.choice(len(surnames), size=n, p=weights / weights.sum())]
    given = np.array(list(GIVEN))
    first = given[rng.integers(len(given), size=n)]
    second = given[rng.integers(len(given), size=n)]
    single = rng.random(n) < 0.25
    second = np.where(single, "", second)
    return [a + b + c for a, b, c in zip(surname.tolist(), first.tolist(), second.tolist(), strict=True)]
