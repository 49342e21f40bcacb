"""Instruction data shared by the lab, evaluation and sanitizing: Alpaca records and task presets."""

from crowguard.data.alpaca import Record, load_records
from crowguard.data.tasks import TASKS, Task, get_task

__all__ = ["TASKS", "Record", "Task", "get_task", "load_records"]
