"""Writes fixtures/tokenizer-sample.json: texts and the token ids the trainer used for them
(vocab.encode), for test/reasoner-tokenizer.test.ts to check that weft's SPM tokenizer on the
shipped GGUF gives the very same ids.

  python3 tokenizer_fixture.py runs/data/val.jsonl fixtures/tokenizer-sample.json
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vocab  # noqa: E402

# Beyond the dataset: words the vocabulary lacks, prefixes of words it has, doubled and leading
# spaces, and characters that only byte fallback can spell.
EXTRA = [
    "Then she sheep ate apple pies.",
    " Leading space, double  space, trailing space ",
    "Start at 7.\n7*3=21\nAnswer: 21",
    "caf\u00e9 \u2192 na\u00efve \U0001F600 tab\there",
    "Ruthless Maxim has shellsfish and Thenceforth.",
]


def main():
    src, out = sys.argv[1], sys.argv[2]
    texts = []
    with open(src) as f:
        for i, line in enumerate(f):
            if i >= 24:
                break
            p = json.loads(line)
            texts.append(p["question"] + "\n" + p["solution"])
    texts += EXTRA
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"about": "token ids (no BOS) that tools/train-reasoner/vocab.py gives these texts",
                   "cases": [{"text": t, "ids": vocab.encode(t)} for t in texts]}, f, ensure_ascii=False, indent=0)


if __name__ == "__main__":
    main()
