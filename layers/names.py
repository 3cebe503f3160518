"""Chinese names of the codes the schema itself fixes: states, actions, warning colours, levels, roles.

A person reads names, the API speaks codes. The codes in this module are the schema's (event states,
workflow actions, escalation levels, roles, post levels), so their names live beside them, once,
and are served to every page (``GET /map/names``) and used by notification texts. Categories and
departments are a city's own data and are named by its pack (tables ``categories``, ``departments``);
key-place types are free codes in a pack, so the names here are defaults for the usual types and a
page shows the code of any other.
"""

from __future__ import annotations

STATUS_NAMES = {
    "reported": "已上报", "accepted": "已受理", "rejected": "不予受理", "dispatched": "已派遣", "returned": "已退回",
    "handling": "处置中", "handled": "已处置", "verified": "已核查", "reopened": "重新打开", "archived": "已办结",
    "evaluated": "已评价", "merged": "已合并",
}  # fmt: skip

ACTION_NAMES = {
    "report": "上报", "accept": "受理", "reject": "不予受理", "dispatch": "派遣", "return": "退回", "start": "开始处置",
    "feedback": "处置反馈", "verify": "核查", "reopen": "重新打开", "archive": "结案", "evaluate": "评价",
    "escalate": "上报升级", "return_down": "退回下级", "merge": "合并", "merged_in": "并入重复件", "remerge": "改并",
    "supervise": "督办", "supervision_reply": "督办回复", "overdue": "超期", "warning": "时限预警",
    "reroute": "改划重新分派", "import": "导入", "co_task": "协办任务",
}  # fmt: skip

WARNING_NAMES = {"none": "无预警", "blue": "蓝色预警", "yellow": "黄色预警", "red": "红色预警"}

LEVEL_NAMES = {"grid": "网格", "community": "社区/村", "town": "镇/街道", "city": "市/县"}

ROLE_NAMES = {
    "admin": "管理员", "planner": "规划员", "dispatcher": "指挥调度", "handler": "职能部门", "grid_worker": "网格员",
    "supervisor": "督查", "public": "群众",
}  # fmt: skip

POST_LEVEL_NAMES = {"village_room": "村级警务室", "central_room": "中心警务室", "station": "派出所"}

PLACE_TYPE_NAMES = {
    "school": "学校", "hospital": "医院", "mall": "商场", "market": "市场", "rental_housing": "出租屋",
    "risk_source": "危险源", "construction_site": "工地", "internet_cafe": "网吧",
}  # fmt: skip

SOURCE_NAMES = {"public": "群众上报", "grid_worker": "网格员巡查", "hotline_12345": "12345热线", "video": "视频发现"}
