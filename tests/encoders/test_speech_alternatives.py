"""What else the recogniser heard (issue 27): each utterance's alternatives, from PocketSphinx's n-best list, through
the real models on speech espeak-ng makes now. They are words the best hypothesis does not have, bounded in number,
and the readings that brought them are whole hypotheses of that utterance; turned off, none are looked for."""

import pytest

pytest.importorskip("pocketsphinx")
pytest.importorskip("onnxruntime")
if __import__("importlib.util").util.find_spec("silero_vad") is None:
    pytest.skip("silero-vad is not installed", allow_module_level=True)

from encoders import speech  # noqa: E402
from tests.encoders.test_speech import espeak  # noqa: E402

MEMO = "Buy milk, bread and coffee on the way home."


@pytest.fixture(scope="module", autouse=True)
def models():
    speech.warmup()


def test_alternatives_are_new_words_of_the_next_hypotheses_and_bounded():
    transcript = speech.transcribe(*espeak(MEMO))
    [utterance] = [u for u in transcript.utterances if u.words]
    said = {word.text for word in utterance.words}
    assert utterance.alternatives, "the n-best list of a misheard memo has other words"
    assert len(utterance.alternatives) == len(set(utterance.alternatives)) <= speech.MAX_ALTERNATIVES
    assert not said & set(utterance.alternatives)
    assert all(not speech._NOT_A_WORD.match(word) and "(" not in word for word in utterance.alternatives)
    assert 0 < len(utterance.readings) <= speech.MAX_READINGS
    # Every alternative a reading brought is one of the utterance's alternatives, or a word of its best hypothesis.
    assert {word for reading in utterance.readings for word in reading.split()} <= said | set(utterance.alternatives)
    # The transcript itself is the best hypothesis only.
    assert transcript.text == utterance.text


def test_without_alternatives_the_transcript_is_the_same_and_has_none():
    waveform, rate = espeak(MEMO)
    with_them, without = speech.transcribe(waveform, rate), speech.transcribe(waveform, rate, alternatives=False)
    assert with_them.text == without.text
    assert all(not u.alternatives and not u.readings for u in without.utterances)


def test_alternatives_of_a_list_of_hypotheses():
    heard, readings = speech._alternatives(["the", "real", "man"], [
        "the real man", "the real men", "the(2) real man <sil>", "a real man [NOISE]", "the real men a",
    ])
    assert heard == ("men", "a") and readings == ("the real men",)  # "a" alone is too common to keep a reading
