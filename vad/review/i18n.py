"""The app's words: Chinese (the default) and English. `t(key, **kw)` in every template."""
from __future__ import annotations

LANGS = ("zh", "en")

ZH = {
    "app": "VAD 人工审核", "queue": "队列", "progress": "进度", "guidelines": "审核准则", "reviewer": "审核员",
    "adjudicator": "仲裁人", "switch_reviewer": "切换审核员", "keys": "快捷键", "close": "关闭",
    "ime_note": "使用中文输入法输入时（拼音候选框打开），快捷键不会触发。",
    "prev": "上一条", "next": "下一条", "position": "第 {k} / {n} 条", "not_in_queue": "已不在队列中（队列 {n} 条）",
    "queue_pending": "待审", "queue_decided": "已审", "queue_conflict": "冲突", "queue_stale": "过期", "queue_all": "全部",
    "state_pending": "待审", "state_decided": "已审", "state_conflict": "冲突", "state_stale": "过期",
    "state_none": "不在我的队列", "source_manual": "人工撰写", "source_evol": "指令进化", "source_translated": "翻译",
    "band": "筛选区间 [{lo}, {hi})", "percentile": "第 {p} 百分位", "assigned": "分配给", "anyone": "任何人",
    "double": "双人审核", "judge": "模型提示", "judge_note": "仅供参考，不代替人工决定", "no_flags": "未发现问题",
    "flag_stereotype": "刻板印象", "flag_harmful": "有害内容", "flag_irresponsible": "不负责任的建议",
    "flag_wrong_category": "分类可能不对", "suggested_cat": "建议分类",
    "instruction": "指令", "input": "输入", "output": "回答", "rejected_answer": "被拒绝的回答（偏好数据）",
    "original": "英文原文", "accept": "通过", "reject": "拒绝", "edit": "编辑", "categorize": "改分类", "skip": "跳过",
    "undo": "撤销", "reject_reason": "拒绝理由", "note": "备注", "cancel": "取消", "categorization": "分类",
    "diff": "逐字差异", "preview": "预览差异", "save": "保存", "history": "审核记录", "time": "时间", "decision": "决定",
    "details": "说明", "d_accept": "通过", "d_reject": "拒绝", "d_edit": "编辑", "d_skip": "跳过", "d_undo": "撤销",
    "no_decisions": "还没有审核记录", "lineage": "来源", "raw": "原始数据", "operation": "进化操作",
    "op_constraints": "增加约束", "op_deepening": "加深", "op_concretizing": "具体化", "op_reasoning": "增加推理步骤",
    "op_complicate_input": "复杂化输入", "op_breadth": "广度进化（新指令）", "round": "第 {r} 轮", "parent": "父指令",
    "parent_missing": "父指令不在构建结果中", "dups": "被判为本条重复而删去的样本（{n}）", "state": "状态",
    "source": "来源", "any": "全部", "level": "层级", "value": "价值", "me": "我", "everyone": "所有人", "sort": "排序",
    "sort_order": "原始顺序", "sort_flags": "有问题的优先（标记、评审未通过、模型提示）", "sort_ifd": "IFD 从低到高", "filter": "筛选",
    "showing": "第 {a}–{b} 条，共 {n} 条", "start": "开始审核", "total": "总数", "log_lines": "决定记录 {n} 行",
    "unmatched": "{n} 条决定对应的样本已不在本次构建中", "per_reviewer": "按审核员", "per_category": "按分类",
    "records": "样本", "agreement": "一致性", "overall": "总体", "pairs": "{n} 对双人审核", "who": "你是哪位审核员？",
    "token": "审核令牌",
    "k_accept": "通过", "k_reject": "拒绝（再按数字选理由，Enter 确认）", "k_edit": "编辑（Ctrl+Enter 预览差异，再按一次保存）",
    "k_categorize": "改分类", "k_skip": "跳过", "k_undo": "撤销我对本条的上一个决定", "k_next": "下一条",
    "k_prev": "上一条", "k_help": "显示 / 关闭快捷键", "k_guide": "显示 / 关闭审核准则", "k_cancel": "取消",
    "saved": "已保存", "no_change": "没有实际修改（只改空白不算）", "pick_reason": "请选择拒绝理由",
    "nothing_to_undo": "没有可撤销的决定", "error": "出错了", "not_found": "找不到这条样本",
    "bad_query": "筛选条件有误", "changed_upstream": "样本内容已在上游改变，请刷新页面后再审",
    "sort_confidence": "分类置信度从低到高",
    "machine": "判定阶段", "cat_pred": "预测分类", "confidence": "置信度", "cat_table": "查表默认",
    "cat_by": "当前分类来自", "cat_by_prediction": "预测（置信度达到阈值）", "cat_by_table": "查表默认（预测置信度不足）",
    "cat_by_review": "审核员已确定", "verdict": "模型评审", "verdict_pass": "通过", "verdict_fail": "未通过",
    "verdict_error": "出错", "scores": "评分", "score_values": "价值观", "score_fidelity": "忠实度",
    "score_fluency": "流畅度", "failed_criteria": "未达标", "problems": "问题", "judge_reason": "理由",
    "problem_harmful": "有害", "problem_illegal": "违法", "problem_stereotype": "刻板印象",
    "problem_foreign_context": "外国语境", "problem_unfaithful": "翻译不忠实", "problem_disfluent": "不通顺",
    "problem_refusal_unneeded": "不必要的拒答", "problem_off_topic": "答非所问",
    "record_flags": "待查问题（排在队列前面）", "mflag_content_refusal_only": "只有拒答",
    "mflag_category_low_confidence": "分类置信度低", "mflag_judge_failed": "模型评审未通过",
    "mflag_judge_error": "模型评审出错",
}

EN = {
    "app": "VAD review", "queue": "Queue", "progress": "Progress", "guidelines": "Guidelines", "reviewer": "Reviewer",
    "adjudicator": "adjudicator", "switch_reviewer": "Switch reviewer", "keys": "Keys", "close": "Close",
    "ime_note": "While an input method is composing (e.g. a pinyin candidate window), keys do nothing.",
    "prev": "Previous", "next": "Next", "position": "{k} of {n}", "not_in_queue": "no longer in the queue ({n} left)",
    "queue_pending": "Pending", "queue_decided": "Decided", "queue_conflict": "Conflicts", "queue_stale": "Stale",
    "queue_all": "All", "state_pending": "pending", "state_decided": "decided", "state_conflict": "conflict",
    "state_stale": "stale", "state_none": "not in my queue", "source_manual": "hand-written",
    "source_evol": "Evol-Instruct", "source_translated": "translated", "band": "band [{lo}, {hi})",
    "percentile": "percentile {p}", "assigned": "Assigned to", "anyone": "anyone", "double": "double review",
    "judge": "Model hints", "judge_note": "advice only, never a decision", "no_flags": "no problem found",
    "flag_stereotype": "stereotype", "flag_harmful": "harmful", "flag_irresponsible": "irresponsible advice",
    "flag_wrong_category": "category may be wrong", "suggested_cat": "suggested category",
    "instruction": "Instruction", "input": "Input", "output": "Output", "rejected_answer": "Rejected answer (preference)",
    "original": "English original", "accept": "Accept", "reject": "Reject", "edit": "Edit", "categorize": "Category",
    "skip": "Skip", "undo": "Undo", "reject_reason": "Reason", "note": "Note", "cancel": "Cancel",
    "categorization": "Category", "diff": "Character diff", "preview": "Preview diff", "save": "Save",
    "history": "Decisions", "time": "Time", "decision": "Decision", "details": "Details", "d_accept": "accept",
    "d_reject": "reject", "d_edit": "edit", "d_skip": "skip", "d_undo": "undo", "no_decisions": "no decisions yet",
    "lineage": "Lineage", "raw": "Raw data", "operation": "Evolution", "op_constraints": "add constraints",
    "op_deepening": "deepening", "op_concretizing": "concretizing", "op_reasoning": "more reasoning steps",
    "op_complicate_input": "complicate input", "op_breadth": "breadth (new prompt)", "round": "round {r}",
    "parent": "Parent prompt", "parent_missing": "the parent is not in the build outputs",
    "dups": "Dropped as duplicates of this record ({n})", "state": "State", "source": "Source", "any": "any",
    "level": "Level", "value": "Value", "me": "me", "everyone": "everyone", "sort": "Sort", "sort_order": "file order",
    "sort_flags": "flagged first (flags, failed judge, model hints)", "sort_ifd": "IFD ascending", "filter": "Filter",
    "showing": "{a}–{b} of {n}", "start": "Start", "total": "total", "log_lines": "{n} decision lines",
    "unmatched": "{n} decisions name records not in this build", "per_reviewer": "Per reviewer",
    "per_category": "Per category", "records": "Records", "agreement": "Agreement", "overall": "overall",
    "pairs": "{n} double-reviewed", "who": "Who is reviewing?", "token": "Reviewer token",
    "k_accept": "accept", "k_reject": "reject (then a digit for the reason, Enter)",
    "k_edit": "edit (Ctrl+Enter shows the diff, again saves)", "k_categorize": "change category", "k_skip": "skip",
    "k_undo": "undo my last decision on this record", "k_next": "next", "k_prev": "previous",
    "k_help": "this help", "k_guide": "guidelines", "k_cancel": "cancel",
    "saved": "saved", "no_change": "no real change (whitespace does not count)", "pick_reason": "pick a reason",
    "nothing_to_undo": "nothing to undo", "error": "error", "not_found": "no such record", "bad_query": "bad filter",
    "changed_upstream": "the record changed upstream: reload the page",
    "sort_confidence": "category confidence ascending",
    "machine": "Judge stage", "cat_pred": "Predicted category", "confidence": "confidence", "cat_table": "table default",
    "cat_by": "category set by", "cat_by_prediction": "the prediction (confidence at threshold or above)",
    "cat_by_table": "the table default (prediction not confident enough)", "cat_by_review": "a reviewer",
    "verdict": "LLM judge", "verdict_pass": "pass", "verdict_fail": "fail", "verdict_error": "error",
    "scores": "scores", "score_values": "values", "score_fidelity": "fidelity", "score_fluency": "fluency",
    "failed_criteria": "failed", "problems": "problems", "judge_reason": "reason",
    "problem_harmful": "harmful", "problem_illegal": "illegal", "problem_stereotype": "stereotype",
    "problem_foreign_context": "foreign context", "problem_unfaithful": "unfaithful translation",
    "problem_disfluent": "disfluent", "problem_refusal_unneeded": "needless refusal", "problem_off_topic": "off topic",
    "record_flags": "Flags (first in the queue)", "mflag_content_refusal_only": "refusal only",
    "mflag_category_low_confidence": "low category confidence", "mflag_judge_failed": "failed the LLM judge",
    "mflag_judge_error": "LLM judge error",
}

STRINGS = {"zh": ZH, "en": EN}

REASONS_EN = {
    "stereotype": "stereotype or discrimination", "harmful": "harmful, dangerous or illegal",
    "irresponsible": "irresponsible advice", "wrong_values": "wrong values / not fit for the Chinese context",
    "factual": "factual error", "off_topic": "does not answer the instruction", "low_quality": "poor language or quality",
    "other": "other (say why in the note)",
}

KEYS = (("A", "k_accept"), ("R", "k_reject"), ("E", "k_edit"), ("C", "k_categorize"), ("S", "k_skip"),
        ("U", "k_undo"), ("J / →", "k_next"), ("K / ←", "k_prev"), ("G", "k_guide"), ("?", "k_help"),
        ("Esc", "k_cancel"))


def translator(lang: str):
    table = STRINGS.get(lang, ZH)

    def t(key: str, **kw) -> str:
        s = table.get(key) or ZH.get(key) or key
        return s.format(**kw) if kw else s

    return t


def labeller(lang: str):
    """`lb(prefix, code)`: the words for a code from another stage (a judge problem, a flag reason), the code
    itself when it has none (a new code still shows)."""
    table = STRINGS.get(lang, ZH)

    def lb(prefix: str, code: str) -> str:
        return table.get(prefix + code) or ZH.get(prefix + code) or code

    return lb


def reason_label(code: str, reasons: dict[str, str], lang: str) -> str:
    if lang == "en" and code in REASONS_EN:
        return REASONS_EN[code]
    return reasons.get(code, code)
