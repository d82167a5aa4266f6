"""Long synthetic documents with one described thing deep inside: the test of passage search.

Each document is 600-1,200 words of everyday prose (meetings, trains, recipes: nothing the demo
world's pictures or sounds are made of) with one sentence, placed after the first ~150 words,
describing a picture or a sound of the demo world in caption words ("a large crimson star on a
dark background"). Its query names the same thing in other words ("a scarlet star"), so only a
search that reads the whole document, not its first sentences, finds it.
"""

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from encoders.demo import synth

_SUBJECTS = [
    "The committee", "Our neighbour", "The old librarian", "A visiting professor", "The new manager",
    "My cousin", "The harbour master", "A local farmer", "The night nurse", "Everyone in the office",
    "The bus driver", "Two of the students", "The baker on the corner", "Her grandfather", "The mayor",
]
_VERBS = [
    "talked about", "wrote a letter about", "complained about", "forgot about", "planned", "postponed",
    "argued over", "read a report on", "asked questions about", "laughed about", "kept notes on",
    "changed their mind about", "worried about", "voted on", "made a list of",
]
_OBJECTS = [
    "the budget for next year", "the delayed train to the coast", "a recipe for bread",
    "the history of the town", "the election results", "a broken window in the kitchen", "the price of coffee",
    "the football match on Sunday", "a long trip through the mountains", "the rules of the chess club",
    "the weather forecast", "an unpaid electricity bill", "the opening hours of the library",
    "the new parking regulations", "a wedding in the spring", "the leaking roof of the school",
]
_TAILS = [
    "", " before lunch", " for almost an hour", " without much interest", " once again", " late in the evening",
    " in great detail", " while it rained outside", " on the phone", " over breakfast",
]
_PICTURE_FRAMES = [
    "On the wall of the hallway hung a poster of {}.", "Someone had painted {} on the side of the shed.",
    "In the corner of the old photograph there was {}.", "The only drawing in the notebook showed {}.",
]
_SOUND_FRAMES = [
    "Later that night everyone heard {} coming from the basement.", "The tape began with {}.",
    "Through the thin wall came {}, again and again.", "The old radio made nothing but {}.",
]
MIN_WORDS, MAX_WORDS = 600, 1200
LEAD_WORDS = 150  # the description comes after at least this many words


@dataclass
class LongDocument:
    text: str
    query: str  # the described thing in other words
    start: int  # where the describing sentence is in `text`
    end: int
    labels: dict  # the demo world's labels of what it describes


def _filler(rng: np.random.Generator, words: int) -> list[str]:
    sentences, count = [], 0
    while count < words:
        sentence = (f"{_SUBJECTS[rng.integers(len(_SUBJECTS))]} {_VERBS[rng.integers(len(_VERBS))]} "
                    f"{_OBJECTS[rng.integers(len(_OBJECTS))]}{_TAILS[rng.integers(len(_TAILS))]}.")
        sentences.append(sentence)
        count += len(sentence.split())
    return sentences


def _described(rng: np.random.Generator, key: tuple) -> tuple[str, str, dict]:
    """The describing sentence, the query and the labels for one class of the demo world."""
    if key[0] in synth.COLOURS:
        labels = synth.image_labels(rng, colour=key[0], shape=key[1])
        if labels["count"] != 1:  # one thing, so the sentence reads naturally
            labels |= {"count": 1, "size": str(rng.choice(list(synth.SIZES))),
                       "position": str(rng.choice(list(synth.POSITIONS)))}
        frame = _PICTURE_FRAMES[rng.integers(len(_PICTURE_FRAMES))]
        return frame.format(synth.image_caption(rng, labels)), synth.image_query(rng, *key), labels
    labels = synth.audio_labels(rng, kind=key[0], pitch=key[1])
    frame = _SOUND_FRAMES[rng.integers(len(_SOUND_FRAMES))]
    return frame.format(synth.audio_caption(rng, labels)), synth.audio_query(rng, *key), labels


def long_documents(n: int, seed: int) -> Iterator[LongDocument]:
    """`n` documents, each describing a different class (pictures first, then sounds, shuffled)."""
    rng = np.random.default_rng(seed)
    pictures = [(colour, shape) for colour in synth.COLOURS for shape in synth.SHAPES]
    sounds = [(kind, pitch) for kind in synth.AUDIO_KINDS for pitch in synth.PITCHES]
    order = rng.permutation(len(pictures))
    sound_order = rng.permutation(len(sounds))
    # About one document in four describes a sound (while sound classes last); no class twice.
    keys, next_picture, next_sound = [], 0, 0
    for i in range(n):
        if i % 4 == 3 and next_sound < len(sounds):
            keys.append(sounds[sound_order[next_sound]])
            next_sound += 1
        else:
            keys.append(pictures[order[next_picture % len(pictures)]])
            next_picture += 1
    for key in keys:
        sentence, query, labels = _described(rng, key)
        sentences = _filler(rng, int(rng.integers(MIN_WORDS, MAX_WORDS)))
        lead, words = 0, 0
        while words < LEAD_WORDS:
            words += len(sentences[lead].split())
            lead += 1
        at = int(rng.integers(lead, len(sentences)))
        before = " ".join(sentences[:at])
        text = f"{before} {sentence} {' '.join(sentences[at:])}".strip()
        start = len(before) + 1
        yield LongDocument(text=text, query=query, start=start, end=start + len(sentence), labels=labels)
