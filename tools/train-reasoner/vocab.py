"""The reasoner's SentencePiece-style vocabulary: control tokens, the 256 byte-fallback tokens,
then single characters only. With no multi-character pieces the SPM merge loop never merges, so
the ids below are exactly what weft's SPM tokenizer produces for the same text (the GGUF sets
add_space_prefix = false, so nothing is prepended); test/reasoner-tokenizer.test.ts checks it."""

UNK, BOS, EOS = 0, 1, 2
SPACE = "\u2581"  # SPM writes every space as U+2581

# GGUF tokenizer.ggml.token_type values
TYPE_NORMAL, TYPE_UNKNOWN, TYPE_CONTROL, TYPE_BYTE = 1, 2, 3, 6

CHARS = (
    [SPACE, "\n"]
    + [chr(c) for c in range(ord("0"), ord("9") + 1)]
    + [chr(c) for c in range(ord("a"), ord("z") + 1)]
    + [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    + list(".,?!:;=+-*/()'\"%$")
)

# Every word the templates in tools/reasoning-data/problems.ts put after a space.
WORDS = """at Add Subtract Multiply by Divide has She He she he finds buys gets more gives away loses
sells doubles them triples makes the pile times as big keeps half of a third quarter splits into
equal piles and one Then How many does have now Mia Leo Ava Sam Noah Zoe Eli Ivy Max Lily Omar Ruth
shells apples stamps marbles coins cards stickers beads pens books""".split()


def word_pieces():
    pieces = []
    for w in WORDS:
        for k in range(1, len(w) + 1):
            p = SPACE + w[:k]
            if p not in pieces:
                pieces.append(p)
    return pieces


def build():
    """(tokens, scores, token_types) in id order."""
    normal = CHARS + word_pieces()
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(256)] + normal
    types = [TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL] + [TYPE_BYTE] * 256 + [TYPE_NORMAL] * len(normal)
    # Scores order competing merges; with prefix-closed word pieces no two merges compete, so
    # any distinct values do.
    scores = [0.0] * 259 + [-float(i) for i in range(len(normal))]
    return tokens, scores, types


TOKENS, SCORES, TYPES = build()
_ID = {t: i for i, t in enumerate(TOKENS)}
N_VOCAB = len(TOKENS)


def encode(text):
    """Token ids of text, without BOS/EOS: each "\u2581" grows into the longest word piece that
    prefixes what follows it; every other character is its own token, or its UTF-8 bytes as
    <0xNN> tokens when it is not in the vocabulary (SPM byte fallback)."""
    s = text.replace(" ", SPACE)
    out = []
    i = 0
    while i < len(s):
        j = i + 1
        if s[i] == SPACE:
            while j < len(s) and s[i:j + 1] in _ID:
                j += 1
        piece = s[i:j]
        t = _ID.get(piece)
        if t is not None and TYPES[t] == TYPE_NORMAL:
            out.append(t)
        else:
            out.extend(3 + b for b in piece.encode("utf-8"))
        i = j
    return out


def decode(ids):
    buf = bytearray()
    for i in ids:
        t = TYPES[i]
        if t == TYPE_NORMAL:
            buf += TOKENS[i].replace(SPACE, " ").encode("utf-8")
        elif t == TYPE_BYTE:
            buf.append(i - 3)
    return buf.decode("utf-8", errors="replace")
