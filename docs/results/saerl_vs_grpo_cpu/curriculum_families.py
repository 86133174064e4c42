"""Which families each arm's 20 steps (80 prompts) trained on: the curriculum arms' order is a pure function of the
data, the options and the seed (CurriculumRepeatSampler.batches), so it is rebuilt here without a model.

    python curriculum_families.py /tmp/svg_prep/55fca9d460a2   # the cpu preset's prepared data (--prep-cache)
"""

import json
import re
import sys
from collections import Counter

from datasets import load_from_disk

from hf_saerl.integrations.trl import CurriculumRepeatSampler

prep = sys.argv[1]


def family(prompt):
    q = prompt[0]["content"]
    if "GCD" in q or "Greatest Common" in q:
        return "gcd"
    if "*" in q or "multiplication" in q.lower() or "product" in q.lower():
        return "products"
    nums = [int(x) for x in re.findall(r"\d+", q.split("\n")[0])]
    return "chain_sum_2digit" if nums and max(nums) >= 10 else "chain_sum"


out = {}
for arm, mix in (("saerl", 0.25), ("saerl_nomix", 0.0), ("oracle", 0.25)):
    ds = load_from_disk(f"{prep}/{'saerl' if arm != 'oracle' else 'oracle'}")
    fam = [family(p) for p in ds["prompt"]]
    for seed in (0, 1, 2):
        s = CurriculumRepeatSampler(ds, mini_repeat_count=1, batch_size=4, seed=seed, mix_ratio=mix)
        first = [i for b in s.batches(0) for i in b][:80]
        out[f"{arm}_seed{seed}"] = dict(Counter(fam[i] for i in first))
ds = load_from_disk(f"{prep}/saerl")
out["filtered_pool"] = dict(Counter(family(p) for p in ds["prompt"]))
print(json.dumps(out, indent=1))
