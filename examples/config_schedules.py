"""Schedules in YAML and Hydra configs, as spec strings or as dicts.

    python examples/config_schedules.py      # pip install 'lrkit[torch]' pyyaml hydra-core

A spec string is what ``str(schedule)`` prints; lrkit's own grammar reads it back (never
``eval``). A dict is what ``schedule.to_dict()`` returns. Both go straight into
``lrkit.torch.scheduler`` (and the Keras / optax adapters), so a config needs no code.
"""

from __future__ import annotations

import os
import tempfile

import torch
import yaml

import lrkit.torch as lt
from lrkit import schedules as S

CONFIG = """
optimizer: {lr: 0.1, momentum: 0.9}
# a spec string (quote it: YAML would read the commas and brackets otherwise)
schedule: "join([warmup(0, 0.1, 100), cosine(0.1, 900)], boundaries=[100])"
# the same schedule as a dict: every field by name
schedule_as_dict:
  name: join
  schedules:
    - {name: warmup, start_lr: 0.0, end_lr: 0.1, warmup_steps: 100}
    - {name: cosine, lr: 0.1, total_steps: 900}
  boundaries: [100]
"""

# ---------------------------------------------------------------- plain YAML
cfg = yaml.safe_load(CONFIG)
from_string = S.parse(cfg["schedule"])
from_dict = S.from_dict(cfg["schedule_as_dict"])
assert from_string == from_dict
print("YAML:", from_string)

model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), **cfg["optimizer"])
sched = lt.scheduler(opt, cfg["schedule"])  # a spec string or a dict, as read
print("lr at steps 0, 100, 999:", [from_string(k) for k in (0, 100, 999)])

# writing a config back: both forms round-trip exactly through YAML
text = yaml.safe_dump({"schedule": str(from_string), "schedule_as_dict": from_string.to_dict()})
again = yaml.safe_load(text)
assert S.parse(again["schedule"]) == S.from_dict(again["schedule_as_dict"]) == from_string

# ---------------------------------------------------------------- Hydra
from hydra import compose, initialize_config_dir  # noqa: E402
from hydra.utils import instantiate  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

HYDRA_CONFIG = """
schedule: "cosine(0.1, 1000)"
# or let Hydra build the object
lr_schedule:
  _target_: lrkit.schedules.parse
  spec: "onecycle(max_lr=0.1, total_steps=1000)"
dict_schedule:
  _target_: lrkit.schedules.from_dict
  _convert_: all          # plain dicts and lists, not OmegaConf containers
  d: {name: step, lr: 0.1, step_size: 300, gamma: 0.5}
"""
with tempfile.TemporaryDirectory() as conf_dir:
    with open(os.path.join(conf_dir, "train.yaml"), "w") as f:
        f.write(HYDRA_CONFIG)
    with initialize_config_dir(config_dir=conf_dir, version_base=None):
        # a command-line override: quote the spec (it holds commas and parentheses)
        hcfg = compose(config_name="train", overrides=["schedule='cosine(0.05, 500)'"])

print("Hydra override:", S.parse(hcfg.schedule))
print("Hydra instantiate:", instantiate(hcfg.lr_schedule))
print("Hydra instantiate from a dict:", instantiate(hcfg.dict_schedule))
sched = lt.scheduler(opt, hcfg.dict_schedule.d)  # a DictConfig is read as it is
assert sched.schedules[0] == S.from_dict(OmegaConf.to_container(hcfg.dict_schedule.d))
assert S.parse(hcfg.schedule) == S.cosine(0.05, total_steps=500)
