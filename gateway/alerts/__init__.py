"""Alarms that find a person: notification rules, channels (WeCom, DingTalk, Feishu,
e-mail) and escalation."""
