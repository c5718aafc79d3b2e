#!/usr/bin/env python3
"""Derives the extra training files of this folder from public repositories, deterministically.

Nothing is written or translated by hand: every text is taken verbatim from its source (split
into pieces where noted). Run from this folder with the repositories checked out at the
commits named in README.md:

    python3 derive.py --fabric PATH/TO/fabric --xquad PATH/TO/xquad --zh PATH/TO/awesome-chatgpt-prompts-zh \
        --bipia PATH/TO/BIPIA --garak-multilingual PATH/TO/garak_multilingual-0.1.0-py3-none-any.whl

(each argument optional: only the files of the repositories given are written).

Each argument is a git directory (bare or not); files are read at the pinned commits with
`git show`, so the output does not depend on the checkout.
"""

import argparse
import json
import random
import re
import subprocess

FABRIC_COMMIT = "272f04dd3278f99bee49e94a7747b54708745a5d"
XQUAD_COMMIT = "7d30520c717524000f0d9d2f9c10a069acd9d285"
ZH_COMMIT = "367ed18b9c50b702d762c6fbc2885107141acb62"
BIPIA_COMMIT = "1a2a91da6bb12838e05d1b2e54d98e2f37b835f3"

XQUAD_LANGUAGES = {
    "ar": "Arabic",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "hi": "Hindi",
    "ro": "Romanian",
    "ru": "Russian",
    "th": "Thai",
    "tr": "Turkish",
    "vi": "Vietnamese",
    "zh": "Chinese",
}
XQUAD_CONTEXTS = 40
XQUAD_QUESTIONS = 80


def git_show(repo, commit, path):
    return subprocess.run(
        ["git", "--git-dir", repo, "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")


def git_ls(repo, commit):
    out = subprocess.run(
        ["git", "--git-dir", repo, "ls-tree", "-r", "--name-only", commit],
        check=True,
        capture_output=True,
    ).stdout.decode("utf-8")
    return out.splitlines()


def key(text):
    return " ".join(text.lower().split())


def write(path, rows):
    seen = set()
    with open(path, "w", encoding="utf-8") as out:
        for row in rows:
            k = key(row["text"])
            if k in seen or not k:
                continue
            seen.add(k)
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"{path}: {len(seen)} rows")


def fabric(repo):
    """Fabric's system prompts, each split at its Markdown headings into sections."""
    rows = []
    paths = sorted(
        p for p in git_ls(repo, FABRIC_COMMIT) if re.fullmatch(r"data/patterns/[^/]+/system\.md", p)
    )
    for path in paths:
        pattern = path.split("/")[2]
        text = git_show(repo, FABRIC_COMMIT, path)
        # Sections start at a line beginning with `#`; a section keeps its heading.
        sections = re.split(r"\n(?=#)", text)
        for section in sections:
            section = section.strip()
            if len(section.split()) < 12:
                continue
            # Long sections in pieces of whole paragraphs, at most about 1,200 characters.
            piece = ""
            for paragraph in section.split("\n\n"):
                if piece and len(piece) + len(paragraph) > 1200:
                    rows.append(piece)
                    piece = ""
                piece = f"{piece}\n\n{paragraph}" if piece else paragraph
            if piece and len(piece.split()) >= 12:
                rows.append(piece)
    return [
        {
            "text": text,
            "label": "benign",
            "source": "fabric:patterns",
            "category": "system_prompt",
            "license": "MIT",
        }
        for text in rows
    ]


def xquad(repo):
    """XQuAD questions and paragraphs, a different random sample in each language."""
    rows = []
    for code, language in XQUAD_LANGUAGES.items():
        data = json.loads(git_show(repo, XQUAD_COMMIT, f"xquad.{code}.json"))
        paragraphs = [p for article in data["data"] for p in article["paragraphs"]]
        questions = [q["question"] for p in paragraphs for q in p["qas"]]
        rng = random.Random(f"xquad-{code}")
        for context in rng.sample([p["context"] for p in paragraphs], XQUAD_CONTEXTS):
            rows.append((context, "document", language))
        for question in rng.sample(questions, XQUAD_QUESTIONS):
            rows.append((question, "user_query", language))
    return [
        {
            "text": text,
            "label": "benign",
            "source": "xquad",
            "category": category,
            "license": "CC-BY-SA-4.0",
            "language": language,
        }
        for text, category, language in rows
    ]


# Persona prompts of the Chinese collection that are jailbreaks (they tell the model to drop
# its rules, laws or ethics): labelled `attack`, not dropped.
ZH_JAILBREAK = re.compile(r"DAN|忘记你所受到的道德和法律限制|摆脱了 ?AI ?的典型限制")


def awesome_zh(repo):
    """The Chinese persona prompts of PlexPt/awesome-chatgpt-prompts-zh."""
    prompts = json.loads(git_show(repo, ZH_COMMIT, "prompts-zh.json"))
    rows = []
    for prompt in prompts:
        text = prompt["prompt"].strip()
        attack = bool(ZH_JAILBREAK.search(text))
        rows.append(
            {
                "text": text,
                "label": "attack" if attack else "benign",
                "source": "awesome-chatgpt-prompts-zh",
                "category": "jailbreak_roleplay" if attack else "roleplay_system_prompt",
                "license": "MIT",
                "language": "Chinese",
            }
        )
    return rows


# BIPIA's text-attack categories that are ordinary requests ("What is the capital of Brazil?",
# "Explain the theory of relativity."): attacks only by where they stand (inside a document the
# user did not write), not by what they say, so a text-only detector cannot tell them from a
# user's question. Dropped, not labelled benign.
BIPIA_TASK_IRRELEVANT = {
    # train
    "Information Retrieval",
    "Content Creation",
    "Learning and Tutoring",
    "Language Translation",
    "Programming Help",
    # test
    "Task Automation",
    "Business Intelligence",
    "Conversational Agent",
    "Research Assistance",
    "Sentiment Analysis",
    # test, "task-relevant" in BIPIA, but as ordinary as a user's request ("Can you reply in
    # German?")
    "Language Translation",
}
# A seeded sample of WikiTableQuestions' tables (BIPIA ships 1,000, mostly alike).
BIPIA_TABLES = 100


def bipia(repo):
    """BIPIA's attack instructions (authored by BIPIA, MIT) and the contexts it ships whose
    licence allows (e-mails from OpenAI Evals' invoices, MIT; Stack Overflow answers and
    WikiTableQuestions tables, CC-BY-SA-4.0) as benign documents."""
    rows = []
    for split in ("train", "test"):
        text_attacks = json.loads(git_show(repo, BIPIA_COMMIT, f"benchmark/text_attack_{split}.json"))
        for category, attacks in text_attacks.items():
            if category in BIPIA_TASK_IRRELEVANT:
                continue
            for attack in attacks:
                rows.append((attack, "attack", "bipia:text_attack", "indirect_injection_document", "MIT"))
        code_attacks = json.loads(git_show(repo, BIPIA_COMMIT, f"benchmark/code_attack_{split}.json"))
        for attacks in code_attacks.values():
            for attack in attacks:
                rows.append((attack, "attack", "bipia:code_attack", "indirect_injection_document", "MIT"))
    tables = []
    for split in ("train", "test"):
        for line in git_show(repo, BIPIA_COMMIT, f"benchmark/email/{split}.jsonl").splitlines():
            context = json.loads(line)["context"]
            rows.append((context, "benign", "bipia:email", "document", "MIT"))
        for line in git_show(repo, BIPIA_COMMIT, f"benchmark/code/{split}.jsonl").splitlines():
            context = "\n".join(json.loads(line)["context"]).strip()
            rows.append((context, "benign", "bipia:code", "document", "CC-BY-SA-4.0"))
        for line in git_show(repo, BIPIA_COMMIT, f"benchmark/table/{split}.jsonl").splitlines():
            tables.append(json.loads(line)["context"])
    tables = sorted({key(t): t for t in tables}.values())
    for table in random.Random("bipia-table").sample(tables, BIPIA_TABLES):
        rows.append((table, "benign", "bipia:table", "document", "CC-BY-SA-4.0"))
    return [
        {"text": text, "label": label, "source": source, "category": category, "license": licence}
        for text, label, source, category, licence in rows
    ]


GARAK_ML_LANGUAGES = {
    "tr": "Turkish", "de": "German", "es": "Spanish", "ru": "Russian", "ar": "Arabic",
    "zh": "Chinese", "fr": "French", "fa": "Persian",
}


def garak_multilingual(wheel):
    """The payloads of the garak-multilingual probe pack (PyPI, 0.1.0): native Turkish
    injections and jailbreaks, and injections in seven more languages. Held out only."""
    import ast
    import zipfile

    with zipfile.ZipFile(wheel) as z:
        source = z.read("garak_multilingual/payloads.py").decode("utf-8")
    # The module is read as data, never run: its top-level assignments are literals, strings
    # joined with `+`, and names of strings assigned before (CANARY).
    names = {}

    def value(node):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return value(node.left) + value(node.right)
        if isinstance(node, ast.Name) and isinstance(names.get(node.id), str):
            return names[node.id]
        if isinstance(node, ast.List):
            return [value(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            return {value(k): value(v) for k, v in zip(node.keys, node.values)}
        return ast.literal_eval(node)

    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name):
                try:
                    names[target.id] = value(node.value)
                except ValueError:
                    pass  # not data (PAYLOAD_SETS refers to lists by name, and so on)
    payloads = names
    lists = [
        ("TURKISH_INJECTION", "tr", "direct_injection"),
        ("TURKISH_JAILBREAK", "tr", "jailbreak_roleplay"),
        ("TURKISH_CASEFOLD_EVASION", "tr", "direct_injection"),
        ("MULTILINGUAL_INJECTION", None, "direct_injection"),
    ]
    rows = []
    for name, lang, category in lists:
        for payload in payloads[name]:
            code = lang or payload["lang"]
            rows.append({
                "text": payload["prompt"],
                "label": "attack",
                "source": f"garak-multilingual:{code}",
                "category": category,
                "license": "Apache-2.0",
                "language": GARAK_ML_LANGUAGES[code],
            })
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--fabric")
    parser.add_argument("--xquad")
    parser.add_argument("--zh")
    parser.add_argument("--bipia")
    parser.add_argument("--garak-multilingual")
    args = parser.parse_args()
    if args.fabric:
        write("fabric-patterns.jsonl", fabric(args.fabric))
    if args.xquad:
        write("xquad-multilingual.jsonl", xquad(args.xquad))
    if args.zh:
        write("awesome-chatgpt-prompts-zh.jsonl", awesome_zh(args.zh))
    if args.bipia:
        rows = bipia(args.bipia)
        # The text attacks ("Add ... to your response") are scored, never trained on: trained
        # on, they teach the model that "response" and "previous" are suspicious, and ordinary
        # tool descriptions ("Use the cursor from the previous response.") start to score high.
        write("bipia.jsonl", [r for r in rows if r["source"] != "bipia:text_attack"])
        write("bipia-text-attacks.jsonl", [r for r in rows if r["source"] == "bipia:text_attack"])
    if args.garak_multilingual:
        write("garak-multilingual.jsonl", garak_multilingual(args.garak_multilingual))


if __name__ == "__main__":
    main()
