"""Who hears of which step, through which channels: one table, pure data.

Keys are ``event_log.action`` values; an action missing here (``reroute``, ``import``) notifies nobody.
Actions whose name starts with a key ending in ``*`` (``co_task_*``) share that row. Audiences are the
names of ``recipients.AUDIENCES``; channels are ``inbox`` (the in-app inbox, and live push), ``sms``
(recipients with a phone) and ``webhook`` (every configured webhook target, once per step).

The public audiences (``FOLLOWERS``: the reporters, merged reporters included, and area subscribers)
hear in the inbox only, and only what the public may read; a step with a public progress note tells
them even when its row does not name them (``PROGRESS``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    """The audiences and channels of one action, and the inbox title (Chinese; ``{id}`` is the event)."""

    audiences: tuple[str, ...]
    channels: tuple[str, ...]
    title: str


DISPATCHERS = "unit_dispatchers"
FOLLOWERS = ("reporter", "subscribers")
PROGRESS = Rule(FOLLOWERS, ("inbox",), "您关注的事件 #{id} 有新进展")
RULES: dict[str, Rule] = {
    "report": Rule((DISPATCHERS, "grid_workers", "subscribers"), ("inbox", "webhook"), "新事件上报 #{id}"),
    "accept": Rule(FOLLOWERS, ("inbox",), "您关注的事件 #{id} 已受理"),
    "reject": Rule(("reporter",), ("inbox", "sms"), "您上报的事件 #{id} 未予受理"),
    "dispatch": Rule(("handler", "department"), ("inbox", "sms", "webhook"), "事件 #{id} 已派遣给您处置"),
    "return": Rule((DISPATCHERS,), ("inbox",), "事件 #{id} 被退回，请重新派遣"),
    "start": Rule(FOLLOWERS, ("inbox",), "您关注的事件 #{id} 正在处置"),
    "escalate": Rule((DISPATCHERS, "supervisors"), ("inbox", "sms", "webhook"), "事件 #{id} 已上报升级"),
    "return_down": Rule((DISPATCHERS, "department"), ("inbox",), "事件 #{id} 已退回下级处置"),
    "overdue": Rule((DISPATCHERS, "supervisors"), ("inbox", "sms"), "事件 #{id} 已超期"),
    "supervise": Rule(("handler", "department", DISPATCHERS), ("inbox", "sms"), "事件 #{id} 收到督办"),
    "supervision_reply": Rule(("supervisors",), ("inbox",), "事件 #{id} 督办已回复"),
    "co_task_*": Rule(("department", "handler"), ("inbox",), "事件 #{id} 协办任务更新"),
    "merge": Rule(("reporter", "handler"), ("inbox", "sms"), "事件 #{id} 已与同类事件合并"),
    "warning": Rule(("handler", "department", DISPATCHERS), ("inbox", "sms"), "事件 #{id} 时限预警"),
    "feedback": Rule((DISPATCHERS, *FOLLOWERS), ("inbox",), "事件 #{id} 已处置完毕，待核查"),
    "verify": Rule(("handler", *FOLLOWERS), ("inbox",), "事件 #{id} 已核查通过"),
    "reopen": Rule(("handler", "department"), ("inbox", "sms"), "事件 #{id} 核查未通过，已重新打开"),
    "archive": Rule(FOLLOWERS, ("inbox", "webhook"), "您关注的事件 #{id} 已办结"),
    "evaluate": Rule(("handler", "department"), ("inbox",), "事件 #{id} 收到评价"),
}
CHANNELS = ("inbox", "sms", "webhook")


def told_followers(rule: Rule | None) -> bool:
    """Whether the row already names a public audience (else a public note adds ``PROGRESS``)."""
    return rule is not None and bool(set(FOLLOWERS) & set(rule.audiences))


def rule_for(action: str) -> Rule | None:
    """The action's row, else the longest ``prefix*`` row it matches, else None (nobody is told)."""
    if action in RULES:
        return RULES[action]
    prefixes = [key for key in RULES if key.endswith("*") and action.startswith(key[:-1])]
    return RULES[max(prefixes, key=len)] if prefixes else None
