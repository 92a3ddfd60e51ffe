"""The demo project `make run` seeds: arithmetic word problems, a rubric, the SmolLM2 policy."""

import random
import secrets

from django.contrib.auth import get_user_model
from django.db import transaction

from webapp.accounts.services import (
    user_create_with_generated_password,
    user_password_set,
)
from webapp.datasets.parsing import PromptRow
from webapp.datasets.services import dataset_create
from webapp.experiments.models import PolicyModel
from webapp.feedback.services import rubric_create
from webapp.projects.models import Project
from webapp.projects.services import project_create

DEMO_USERNAME = "demo"
DEMO_PROJECT = "Arithmetic demo"
SYSTEM_PROMPT = "Solve the word problem. Think briefly, then end with 'The answer is N.'"

TEMPLATES = [
    ("{name} has {a} apples and buys {b} more. How many apples does {name} have now?", lambda a, b: a + b),
    ("A box holds {a} pencils. {name} takes {b} of them. How many pencils are left in the box?", lambda a, b: a - b),
    ("{name} reads {a} pages every day for {b} days. How many pages does {name} read in total?", lambda a, b: a * b),
    ("There are {a} chairs in each of {b} rows. How many chairs are there?", lambda a, b: a * b),
    ("{name} had {a} coins, then found {b} more and spent 3. How many coins does {name} have?", lambda a, b: a + b - 3),
    ("{a} stickers are shared equally among {b} friends. How many stickers does each friend get?", None),
]
NAMES = ["Maya", "Tom", "Aisha", "Lucas", "Mei", "Omar", "Sofia", "Ivan"]


def arithmetic_problems(n: int = 64, seed: int = 7) -> list[PromptRow]:
    """Deterministic word problems with integer reference answers."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        template, answer = TEMPLATES[i % len(TEMPLATES)]
        name = rng.choice(NAMES)
        if answer is None:  # division with an exact quotient
            b = rng.randint(2, 9)
            q = rng.randint(2, 12)
            a, result = b * q, q
        else:
            a, b = rng.randint(5, 40), rng.randint(2, 12)
            a = max(a, b + 3)
            result = answer(a, b)
        question = template.format(name=name, a=a, b=b)
        rows.append(PromptRow(
            messages=[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": question}],
            reference=str(result),
            metadata={"template": i % len(TEMPLATES)},
        ))
    return rows


DEMO_RUBRIC = [
    {"name": "Correct answer", "description": "The final answer equals the reference.", "weight": 2.0, "scale": "binary"},
    {"name": "Clear reasoning", "description": "Each step follows from the last; no **padding**.", "weight": 1.0, "scale": "likert5"},
    {"name": "Follows the format", "description": "Ends with `The answer is N.`", "weight": 0.5, "scale": "binary"},
]


@transaction.atomic
def seed_demo() -> tuple[Project, str | None]:
    """Create the demo user and project if absent. Returns the project and the new password (None if the user existed)."""
    User = get_user_model()
    user = User.objects.filter(username=DEMO_USERNAME).first()
    password = None
    if user is None:
        user, password = user_create_with_generated_password(username=DEMO_USERNAME)
    project = Project.objects.filter(name=DEMO_PROJECT, memberships__user=user).first()
    if project is None:
        project = project_create(
            name=DEMO_PROJECT, owner=user,
            description="Teach a small instruct model grade-school arithmetic with verifiable rewards and human feedback.",
            annotation_guidelines="Prefer the completion whose **final answer is correct**; among correct ones, "
                                  "prefer the clearer and shorter reasoning. Mark *both bad* when neither answers.",
        )
        dataset_create(project=project, name="arithmetic-word-problems", rows=arithmetic_problems(), user=user,
                       description="64 generated word problems (+, −, ×, ÷) with integer reference answers.")
        rubric_create(project=project, name="Arithmetic answer quality", criteria=DEMO_RUBRIC, user=user,
                      description="How good is a worked answer to a word problem?")
        PolicyModel.objects.create(project=project, name="SmolLM2-135M-Instruct",
                                   source=PolicyModel.Source.BUILTIN, reference="smollm2-135m-instruct")
        PolicyModel.objects.create(project=project, name="tiny-random (smoke tests)", source=PolicyModel.Source.TINY)
    return project, password


def demo_password_reset() -> tuple[str, int]:
    """A new password for the demo user, and the number of its API tokens revoked with the old one."""
    User = get_user_model()
    user = User.objects.get(username=DEMO_USERNAME)
    password = secrets.token_urlsafe(12)
    return password, user_password_set(user=user, password=password)
